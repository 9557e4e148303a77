"""A read model of one JSON document per key plus indexed columns derived from it.

The projection's rules are a pure ``evolve(doc, event)``; the writer also stores typed
columns computed from each changed document, so queries can filter, order and page in
SQL (keyset pagination needs real columns with indexes).
The columns are derived once per changed document per batch, after every event of the
batch was evolved, so an expensive derivation (the registry's flag onset days) costs
one call per touched key, not one per event. A document that evolves to ``None`` is
deleted; one that did not change is not written again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from projections.document import Doc, Evolve
from projections.source import Conn, RecordedEvent

Derive = Callable[[Doc], Mapping[str, Any]]


@dataclass(frozen=True)
class KeyedDocumentProjection:
    """Keeps ``table(key uuid primary key, doc jsonb, <columns>)`` current.

    ``columns`` maps each derived column to its SQL array type for ``unnest``
    (e.g. ``"uuid"``, ``"date"``, ``"boolean"``); ``derive(doc)`` returns their values.
    """

    name: str
    table: str
    key_of: Callable[[RecordedEvent], UUID | None]
    evolve: Evolve
    columns: Mapping[str, str]
    derive: Derive

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        keys = list(dict.fromkeys(k for e in events if (k := self.key_of(e)) is not None))
        if not keys:
            return
        rows = await conn.fetch(
            f"SELECT key, doc FROM {self.table} WHERE key = ANY($1::uuid[])", keys
        )
        stored: dict[UUID, Doc] = {r["key"]: r["doc"] for r in rows}
        docs: dict[UUID, Doc | None] = {k: stored.get(k) for k in keys}
        for event in events:
            key = self.key_of(event)
            if key is not None:
                docs[key] = self.evolve(docs[key], event)
        # evolve returns new documents, so an unchanged one compares equal: skip its write.
        changed = [(k, d) for k, d in docs.items() if d is not None and d != stored.get(k)]
        gone = [k for k, d in docs.items() if d is None and k in stored]
        if changed:
            await self._upsert(conn, changed)
        if gone:
            await conn.execute(f"DELETE FROM {self.table} WHERE key = ANY($1::uuid[])", gone)

    async def _upsert(self, conn: Conn, changed: list[tuple[UUID, Doc]]) -> None:
        names = list(self.columns)
        derived = [self.derive(doc) for _, doc in changed]
        args: list[list[Any]] = [[k for k, _ in changed], [d for _, d in changed]]
        args.extend([values[name] for values in derived] for name in names)
        arrays = ", ".join(
            ["$1::uuid[]", "$2::jsonb[]"]
            + [f"${i + 3}::{self.columns[name]}[]" for i, name in enumerate(names)]
        )
        column_list = ", ".join(["key", "doc", *names])
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ["doc", *names])
        await conn.execute(
            f"""INSERT INTO {self.table} ({column_list})
                SELECT * FROM unnest({arrays})
                ON CONFLICT (key) DO UPDATE SET {updates}""",
            *args,
        )

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {self.table}")
