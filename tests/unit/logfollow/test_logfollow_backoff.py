"""The log follower's pure parts: the backoff schedule and the loop's pauses."""

from __future__ import annotations

import asyncio

import pytest

from services import locks, logfollow
from services.eventstore import LogPosition
from services.logfollow import Backoff, Wake, follow


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap_and_stays_there() -> None:
    backoff = Backoff(0.2, 1.0, jitter=False)
    assert [backoff.next_delay() for _ in range(6)] == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_reset_starts_the_schedule_over() -> None:
    backoff = Backoff(0.5, 10.0, jitter=False)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_draws_between_half_and_all_of_each_step() -> None:
    drawn: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        drawn.append((low, high))
        return low

    backoff = Backoff(1.0, 4.0, uniform=lowest)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert drawn == [(0.5, 1.0)] * 4


def test_real_jitter_stays_within_the_step() -> None:
    backoff = Backoff(2.0, 2.0)
    assert all(1.0 <= backoff.next_delay() <= 2.0 for _ in range(200))


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_backoff_times_must_be_positive(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Backoff(initial, cap)


def test_lock_keys_keep_the_values_the_running_processes_use() -> None:
    """A rolling deploy runs old and new processes side by side: a changed key would let
    two leaders of one follower run at once."""
    assert locks.MIGRATIONS == 7_361_001
    assert locks.AUDIT_CHAIN_SEAL == 7_361_002  # one-key space
    assert locks.RELAY_LEASE == 7_361_002  # two-key space: never meets the one above
    assert locks.PARTNER_LEASE == 7_361_003
    assert locks.PROJECTOR_MEMBER == 7_361_005
    assert locks.PROJECTOR_PARTITION == 7_361_006
    two_key = [
        locks.RELAY_LEASE,
        locks.PARTNER_LEASE,
        locks.FOLLOWER_LEASE,
        locks.PROJECTOR_MEMBER,
        locks.PROJECTOR_PARTITION,
    ]
    assert len(set(two_key)) == len(two_key)


async def test_the_loop_backs_off_after_each_failure_and_resets_after_a_success() -> None:
    """Two failures, one page, two failures: the pauses restart from the initial delay."""
    outcomes: list[int | Exception] = [
        RuntimeError("1"),
        RuntimeError("2"),
        5,
        RuntimeError("3"),
        RuntimeError("4"),
        0,
    ]
    delays: list[float | None] = []
    stop = asyncio.Event()

    async def step() -> int:
        outcome = outcomes.pop(0)
        if not outcomes:
            stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    backoff = Backoff(0.01, 1.0, jitter=False)
    schedule: list[float] = []
    real_next = backoff.next_delay

    def recorded() -> float:
        delay = real_next()
        schedule.append(delay)
        return delay

    backoff.next_delay = recorded  # type: ignore[method-assign]

    def on_error(exc: BaseException) -> None:
        delays.append(None)

    await follow(
        step, wake=Wake(), poll_seconds=0.01, backoff=backoff, stop=stop, on_error=on_error
    )
    assert schedule == [0.01, 0.02, 0.01, 0.02]
    assert len(delays) == 4


async def test_an_error_outside_the_retried_ones_ends_the_loop() -> None:
    async def step() -> int:
        raise KeyError("not a retried error")

    with pytest.raises(KeyError):
        await follow(
            step,
            wake=Wake(),
            poll_seconds=0.01,
            backoff=Backoff(0.01, 0.01),
            errors=(OSError,),
        )


async def test_at_the_end_of_the_log_a_wake_cuts_the_poll_short() -> None:
    wake = Wake()
    stop = asyncio.Event()
    steps = 0

    async def step() -> int:
        nonlocal steps
        steps += 1
        if steps == 2:
            stop.set()
        return 0

    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(
        follow(step, wake=wake, poll_seconds=30.0, backoff=Backoff(1.0, 1.0), stop=stop)
    )
    await asyncio.sleep(0.05)
    wake.set()
    await asyncio.wait_for(task, timeout=5.0)
    assert steps == 2
    assert loop.time() - started < 5.0


async def test_an_empty_read_while_owed_an_event_reads_again_without_waiting_the_poll() -> None:
    """An append held back by an older open transaction: the follower is owed it, so it
    reads again after milliseconds (doubling) instead of the hour-long poll."""
    stop = asyncio.Event()
    reads = [0, 0, 0, 1]
    steps = 0

    async def step() -> int:
        nonlocal steps
        read = reads[steps]
        steps += 1
        if steps == len(reads):
            stop.set()
        return read

    await asyncio.wait_for(
        follow(
            step,
            wake=Wake(),
            poll_seconds=3600.0,
            backoff=Backoff(1.0, 1.0),
            stop=stop,
            pending=lambda: steps < len(reads),
        ),
        timeout=30.0,
    )
    assert steps == len(reads)


async def test_an_empty_read_owed_nothing_waits_for_the_poll_or_a_wake() -> None:
    wake = Wake()
    stop = asyncio.Event()
    steps = 0

    async def step() -> int:
        nonlocal steps
        steps += 1
        if steps == 2:
            stop.set()
        return 0

    task = asyncio.create_task(
        follow(
            step,
            wake=wake,
            poll_seconds=3600.0,
            backoff=Backoff(1.0, 1.0),
            stop=stop,
            pending=lambda: False,
        )
    )
    await asyncio.sleep(0.05)
    assert steps == 1
    wake.set()
    await asyncio.wait_for(task, timeout=5.0)
    assert steps == 2


def test_the_wake_remembers_the_last_position_appended_in_this_process() -> None:
    wake = Wake()
    assert wake.appended is None
    wake._on_append(LogPosition(5, 9))
    wake._on_append(LogPosition(5, 7))
    assert wake.appended == LogPosition(5, 9)
    assert wake.is_set()


async def test_a_follower_owed_an_event_for_too_long_goes_back_to_the_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long transaction hiding the append: the short re-reads stop after the limit and
    the follower waits for the poll (or a wake) again."""
    monkeypatch.setattr(logfollow, "SETTLE_LIMIT_SECONDS", 0.03)
    wake = Wake()
    stop = asyncio.Event()
    steps = 0

    async def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    task = asyncio.create_task(
        follow(
            step,
            wake=wake,
            poll_seconds=3600.0,
            backoff=Backoff(1.0, 1.0),
            stop=stop,
            pending=lambda: True,
        )
    )
    await asyncio.sleep(0.3)
    settled = steps
    assert settled > 2  # read again several times, not at the hour's poll
    await asyncio.sleep(0.2)
    assert steps == settled
    stop.set()
    wake.set()
    await asyncio.wait_for(task, timeout=5.0)
