"""JSON text for the hot paths: orjson's speed with the standard library's exactness.

orjson is several times faster than ``json`` but differs at the edges: it reads an
integer beyond 64 bits as a float, refuses to write such integers, and refuses to read
or write a lone UTF-16 surrogate (which ``json`` escapes as ``\\ud800``). ``loads``
and ``dumps`` fall back to the standard library in exactly those cases, so every value
reads and writes as ``json`` would, only faster.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Text with a run of 19 digits may hold an integer orjson would turn into a float: every
# ASCII digit maps to "0", every other byte to " ", then we look for 19 zeros.
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19


def loads(text: str | bytes) -> Any:
    """JSON text as Python values, exactly as ``json.loads`` reads them."""
    raw = text.encode() if isinstance(text, str) else text
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_TO_ZERO):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # e.g. an escaped lone surrogate, which json accepts
        return json.loads(raw)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text; non-string keys become strings, as ``json.dumps`` makes them."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, option=option).decode()
    except TypeError:  # orjson.JSONEncodeError: a huge integer or a lone surrogate
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))


def dumps_fast(value: Any) -> str | None:
    """``dumps``'s text when orjson writes it (the common case), else None: where
    ``dumps`` would fall back to the standard library, whose escaping differs (it writes
    non-ASCII text as ``\\u`` escapes). Texts from here can be concatenated into one
    document byte for byte as ``dumps`` would write the whole."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return None


class EncodedList(list[Any]):
    """A list whose JSON text is written once and reused: ``dumps_response`` splices it in
    as it is. Everything else (``dumps``, ``dumps_fast``, the standard library) treats it
    as the list it is. For completed answers shared between requests (the caseload's
    memoised connection), which nobody changes once made."""

    __slots__ = ("_fragment",)

    def fragment(self) -> orjson.Fragment:
        made: orjson.Fragment | None = getattr(self, "_fragment", None)
        if made is None:
            made = orjson.Fragment(orjson.dumps(list(self), option=orjson.OPT_NON_STR_KEYS))
            self._fragment = made
        return made


def _passthrough(value: Any) -> Any:
    """orjson's ``default`` under OPT_PASSTHROUGH_SUBCLASS: an ``EncodedList`` as its
    text; any other subclass of str, int, dict or list as the built-in value orjson would
    have written for it (an enum member's value is its built-in value)."""
    if isinstance(value, EncodedList):
        return value.fragment()
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise TypeError(f"cannot write a {type(value).__name__}")


def dumps_response(value: Any) -> str:
    """``dumps``'s text, with each ``EncodedList`` spliced in from its stored text."""
    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
    try:
        return orjson.dumps(value, default=_passthrough, option=option).decode()
    except TypeError:  # what orjson refuses anywhere: the whole as ``dumps`` writes it
        return dumps(value)
