"""jsontext: orjson's speed, the standard library's results, at every edge."""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum

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


class _Kind(StrEnum):
    A = "a-value"


class _Level(IntEnum):
    HIGH = 3


def test_a_response_with_encoded_lists_is_the_same_text_as_dumps_writes() -> None:
    """dumps_response splices each EncodedList's stored text in; the text is the same as
    dumps writes for the plain values, enum members and other subclasses included."""
    rows = jsontext.EncodedList(
        [{"id": 1, "name": "é✓", "kind": _Kind.A, "level": _Level.HIGH, "none": None}, [1.5]]
    )
    value = {"data": {"c": {"edges": rows, "n": 2, 3: "int key", "k": _Kind.A}}}
    plain = {"data": {"c": {"edges": list(rows), "n": 2, 3: "int key", "k": _Kind.A}}}
    assert jsontext.dumps_response(value) == jsontext.dumps(plain)
    assert jsontext.dumps_response(value) == jsontext.dumps_response(value)  # stored text
    assert jsontext.dumps(value) == jsontext.dumps(plain)  # a list everywhere else


def test_a_response_orjson_refuses_falls_back_whole() -> None:
    """A huge integer inside an encoded list: the standard library writes the whole."""
    value = {"edges": jsontext.EncodedList([2**70, "\ud800"]), "n": 1}
    assert jsontext.dumps_response(value) == json.dumps(
        {"edges": [2**70, "\ud800"], "n": 1}, separators=(",", ":")
    )
