"""jsontext: orjson's speed, the standard library's results, at every edge."""

from __future__ import annotations

import json

import pytest

from services import jsontext


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, 1.5, "é"]},
        {"big": 2**64, "negative": -(2**70)},
        {"nineteen": 1234567890123456789},
        {"message": "a lone surrogate \ud800 echoed back"},
        {2: "int keys", 1: "become strings"},
        [],
    ],
)
def test_text_written_reads_back_as_the_standard_library_reads_it(value: object) -> None:
    text = jsontext.dumps(value, sort_keys=True)
    assert jsontext.loads(text) == json.loads(text)
    assert json.loads(text) == json.loads(json.dumps(value, sort_keys=True))


def test_an_integer_beyond_64_bits_stays_exact() -> None:
    assert jsontext.loads('{"n": 18446744073709551617}') == {"n": 2**64 + 1}
    assert jsontext.loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]


def test_keys_are_sorted_when_asked_and_separators_are_compact() -> None:
    assert jsontext.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'
    assert jsontext.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'


def test_a_lone_surrogate_is_escaped_so_the_text_encodes_as_utf8() -> None:
    text = jsontext.dumps({"m": "\ud800"})
    assert text.encode("utf-8")  # would raise on an unescaped lone surrogate
    assert json.loads(text) == {"m": "\ud800"}
