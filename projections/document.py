"""A read model of one JSON document per key (per patient, per referral, ...).

The projection's rules are a pure ``evolve(doc, event) -> doc`` function; this writer
loads the documents a batch touches in one query, evolves them in memory in log order,
and upserts the changed ones in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.database import Conn
from services.eventstore import RecordedEvent

Doc = dict[str, Any]
Evolve = Callable[[Doc | None, RecordedEvent], Doc | None]


@dataclass(frozen=True)
class DocumentProjection:
    """Keeps ``table(key uuid primary key, organisation_id, doc jsonb)`` current."""

    name: str
    table: str
    key_of: Callable[[RecordedEvent], UUID | None]
    evolve: Evolve

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        keys = list(dict.fromkeys(k for e in events if (k := self.key_of(e)) is not None))
        if not keys:
            return
        rows = await conn.fetch(
            f"SELECT key, doc FROM {self.table} WHERE key = ANY($1::uuid[])", keys
        )
        docs: dict[UUID, Doc | None] = {k: None for k in keys}
        docs.update({r["key"]: r["doc"] for r in rows})
        for event in events:
            key = self.key_of(event)
            if key is not None:
                docs[key] = self.evolve(docs[key], event)
        changed = [(k, d) for k, d in docs.items() if d is not None]
        if changed:
            await conn.execute(
                f"""INSERT INTO {self.table} (key, organisation_id, doc)
                    SELECT k, (d->>'organisation_id')::uuid, d
                    FROM unnest($1::uuid[], $2::jsonb[]) AS u(k, d)
                    ON CONFLICT (key) DO UPDATE
                    SET organisation_id = EXCLUDED.organisation_id, doc = EXCLUDED.doc""",
                [k for k, _ in changed],
                [d for _, d in changed],
            )

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {self.table}")
