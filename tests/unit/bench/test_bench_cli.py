"""``python -m bench`` options, the reproducible command line, and the workload shapes."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest

from bench.base import BenchOptions
from bench.cli import add_cli, options_from_args
from bench.rows import ROWS
from bench.runner import command_line
from bench.workload import count_events, make_streams, split_among_writers


def _parse(*argv: str) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="careteam")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return options_from_args(parser.parse_args(["bench", *argv]))


def test_defaults_are_rows_1_2_4_with_1_and_16_writers_into_bench_results() -> None:
    options = _parse()
    assert options.rows == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert options.writers == (1, 16)
    assert options.events == 20_000
    assert options.runs == 3
    assert options.out == Path("bench-results")
    assert options.rate == 300.0
    assert options.pin and options.charts


def test_options_parse_and_the_report_command_reproduces_them() -> None:
    argv = ["--rows", "4,1", "--events", "1_000", "--writers", "2,8", "--runs", "5"]
    argv += ["--out", "somewhere", "--rate", "150", "--lag-seconds", "7.5", "--no-pin"]
    options = _parse(*argv)
    assert options.rows == (4, 1)
    assert options.events == 1000
    assert options.writers == (2, 8)
    assert options.runs == 5
    assert options.out == Path("somewhere")
    assert options.rate == 150.0
    assert options.lag_seconds == 7.5
    assert not options.pin
    command = command_line(options)
    assert command.startswith("python -m bench ")
    assert _parse(*command.split()[3:]) == options


@pytest.mark.parametrize(
    "argv",
    [
        ["--rows", "one"],
        ["--rows", "0"],
        ["--writers", ""],
        ["--events", "-5"],
        ["--runs", "0"],
        ["--rate", "0"],
        ["--lag-seconds", "inf"],
    ],
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)


def test_every_row_is_registered_and_runs_here() -> None:
    assert sorted(ROWS) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    for number, spec in ROWS.items():
        assert spec.number == number
        assert spec.title
    for number in ROWS:
        assert ROWS[number].available() is None, f"row {number}: {ROWS[number].available()}"


def test_workloads_have_exactly_the_events_asked_for_and_writers_own_whole_streams() -> None:
    streams = make_streams(95, seed=3, events_per_stream=20, single_event=True)
    assert sum(count_events(s) for s in streams) == 95
    assert all(len(c.events) == 1 for s in streams for c in s)
    kinds = Counter(type(e).EVENT_NAME for s in streams for c in s for e in c.events)
    assert kinds["patient.registered"] == len(streams) == 5
    work = split_among_writers(streams, 3)
    assert sum(count_events(w) for w in work) == 95
    owners = {c.stream_id: i for i, w in enumerate(work) for c in w}
    for i, commands in enumerate(work):
        versions: dict[object, int] = {}
        for c in commands:
            assert owners[c.stream_id] == i
            assert c.expected_version == versions.get(c.stream_id, 0)
            versions[c.stream_id] = c.expected_version + len(c.events)


def test_mixed_workloads_include_commands_with_several_events() -> None:
    streams = make_streams(400, seed=4, single_event=False)
    assert sum(count_events(s) for s in streams) == 400
    assert any(len(c.events) > 1 for s in streams for c in s)
