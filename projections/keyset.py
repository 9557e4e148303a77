"""Keyset (cursor) pagination over SQL sort keys with mixed directions and NULLs.

A page is "the next ``first`` rows after the row the cursor names", compared on the
whole sort key, so rows inserted or removed before the cursor never shift the page
(offset pagination would repeat or skip rows). The cursor is opaque to clients: the
sort-key values of the last row, JSON in URL-safe base64; a cursor made for another
sort order is refused, not misread.

Every sort expression is compared through ``COALESCE(expr, fill)`` on both sides, so
NULLs sort where ``fill`` puts them and never make a comparison unknown. Cursor values
travel as text and are cast in SQL, so one code path serves every column type.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID


class InvalidCursorError(ValueError):
    """The ``after`` cursor is malformed or was made for another ordering."""

    code = "INVALID_CURSOR"


@dataclass(frozen=True)
class SortKey:
    """One sort expression: SQL text, direction, SQL type and the value NULL sorts as."""

    expr: str
    descending: bool
    sql_type: str
    fill: str

    def coalesced(self) -> str:
        return f"COALESCE({self.expr}, {self.fill}::{self.sql_type})"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _memo_part(value: Any) -> tuple[Any, ...]:
    # Values that compare equal must not share a cursor unless their text is the same:
    # True == 1 (so the type is part of the key), and aware datetimes are equal across
    # zones and across a daylight saving fold (so a datetime is keyed by its ISO text).
    if isinstance(value, datetime):
        return (datetime, value.isoformat())
    return (type(value), value)


# Cursors already made, by ordering and typed values (a page of 150 rows made 150 cursors
# a request, about 7 microseconds each; a lookup is well under one). Bounded: past the
# limit it starts afresh. Only cursors without text values are kept: a sort by family
# name puts names in its cursors, and a forgotten patient's name must not stay in memory
# (docs/erasure.md), so those are made afresh every time.
_MADE: dict[tuple[Any, ...], str] = {}
_MADE_LIMIT = 8192


# Types whose values key the memo as they are (with their type): equal values of one of
# these types always write the same cursor text, except a datetime's, whose text also
# carries its UTC offset (so the offsets are part of the key).
_PLAIN_TYPES = frozenset({bool, int, UUID, date, datetime, type(None)})


def _memo_key(ordering: str, values: Sequence[Any]) -> tuple[Any, ...]:
    """The memo's key: the same as keying every value by ``_memo_part``, without writing
    each datetime's ISO text (a page of 150 rows built 150 keys a request)."""
    types = tuple(map(type, values))
    if not _PLAIN_TYPES.issuperset(types):
        return (ordering, *map(_memo_part, values))
    if datetime in types:
        offsets = [v.utcoffset() for v, t in zip(values, types, strict=True) if t is datetime]
        return (ordering, types, *values, *offsets)
    return (ordering, types, *values)


def encode_cursor(ordering: str, values: Sequence[Any]) -> str:
    """An opaque cursor naming a row by its sort-key values under ``ordering``."""
    if any(isinstance(v, str) for v in values):
        return _made(ordering, values)
    key = _memo_key(ordering, values)
    made = _MADE.get(key)
    if made is None:
        made = _made(ordering, values)
        if len(_MADE) >= _MADE_LIMIT:
            _MADE.clear()
        _MADE[key] = made
    return made


def _made(ordering: str, values: Sequence[Any]) -> str:
    raw = json.dumps([ordering, [_json_value(v) for v in values]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(ordering: str, cursor: str, width: int) -> list[str | None]:
    """The cursor's values as text (for SQL casts); refuses a cursor of another ordering."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        made_for, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, TypeError):
        raise InvalidCursorError("the cursor is not valid") from None
    if made_for != ordering or not isinstance(values, list) or len(values) != width:
        raise InvalidCursorError("the cursor belongs to another ordering")
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, int | str):
            out.append(str(value))
        else:
            raise InvalidCursorError("the cursor is not valid")
    return out


def order_by(keys: Sequence[SortKey]) -> str:
    """The ORDER BY list of ``keys`` (the last key must be unique, e.g. the row key)."""
    return ", ".join(f"{k.coalesced()} {'DESC' if k.descending else 'ASC'}" for k in keys)


def after_clause(keys: Sequence[SortKey], first_param: int) -> str:
    """SQL true for rows strictly after the cursor row; cursor values are ``$first_param``...

    Lexicographic order with per-key direction:
    ``k1 > c1 OR (k1 = c1 AND k2 > c2) OR ...`` with ``<`` for descending keys.
    """
    params = [
        f"COALESCE(${first_param + i}::text::{k.sql_type}, {k.fill}::{k.sql_type})"
        for i, k in enumerate(keys)
    ]
    disjuncts = []
    for i, key in enumerate(keys):
        equal = [f"{keys[j].coalesced()} = {params[j]}" for j in range(i)]
        beyond = f"{key.coalesced()} {'<' if key.descending else '>'} {params[i]}"
        disjuncts.append("(" + " AND ".join([*equal, beyond]) + ")")
    return "(" + " OR ".join(disjuncts) + ")"


Scope = Callable[[str, int], tuple[str, list[object]]]
"""Restricts a query to the patients the caller may see: given the SQL expression of the
patient id and the number of the first free ``$`` parameter, returns a predicate and its
parameters. Built by the API from the caller's principal (services.api.authz), so the
read models never depend on the API while access is still decided in SQL."""


def unrestricted(_key: str, _first: int) -> tuple[str, list[object]]:
    """No restriction: for tests and trusted internal callers only."""
    return "TRUE", []
