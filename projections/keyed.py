"""A read model of one JSON document per key plus indexed columns derived from it.

The projection's rules are a pure ``evolve(doc, event)``; the writer also stores typed
columns computed from each changed document, so queries can filter, order and page in
SQL (keyset pagination needs real columns with indexes).
The columns are derived once per changed document per batch, after every event of the
batch was evolved, so an expensive derivation (the registry's flag onset days) costs
one call per touched key, not one per event. A document that evolves to ``None`` is
deleted; one that did not change is not written again. The projection is ``Batched``
(projections/base.py): the runner reads its documents and writes them in statements
shared with the other batched read models of the page.

Erasure: a read model keyed by something other than the patient (a referral, a note)
never sees the patient's ``patient.forgotten`` event through ``key_of``. Given
``erase``, the writer applies it, at that event's place in the log, to every document
of the patient (found by the ``patient_id`` column), so the free text it copied from
the log in clear is rewritten away, exactly as a rebuild after the erasure would leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.patient import Patient
from projections.base import Statement, apply_batched
from projections.document import Doc, Evolve
from projections.source import Conn, RecordedEvent

Derive = Callable[[Doc], Mapping[str, Any]]

FORGOTTEN = Patient.Forgotten.EVENT_NAME


@dataclass(frozen=True)
class Batch:
    """A batch evolved (``KeyedDocumentProjection.evolved``): the keys its events name
    (in order), every document read or evolved (None: none, or deleted), the documents
    to write and the keys to delete."""

    keys: list[UUID]
    docs: dict[UUID, Doc | None]
    changed: list[tuple[UUID, Doc]]
    gone: list[UUID]


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
    # The document without its patient's free text (pure), for ``patient.forgotten``;
    # needs a ``patient_id`` column and a ``patient_id`` key in each document.
    erase: Callable[[Doc], Doc] | None = None

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await apply_batched(conn, self, events)

    def _touched(self, events: Sequence[RecordedEvent]) -> tuple[list[UUID], list[UUID]]:
        """The keys ``events`` name (in order) and the patients they forget (with ``erase``)."""
        keys = list(dict.fromkeys(k for e in events if (k := self.key_of(e)) is not None))
        forgotten = (
            [e.patient_id for e in events if e.event_type == FORGOTTEN]
            if self.erase is not None
            else []
        )
        return keys, forgotten

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        keys, forgotten = self._touched(events)
        if not keys and not forgotten:
            return None
        if forgotten:
            return Statement(
                lambda n: (
                    f"""SELECT key, doc FROM {self.table}
                    WHERE key = ANY(${n}::uuid[]) OR patient_id = ANY(${n + 1}::uuid[])"""
                ),
                [keys, forgotten],
            )
        return Statement(
            lambda n: f"SELECT key, doc FROM {self.table} WHERE key = ANY(${n}::uuid[])", [keys]
        )

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        batch = self.evolved(events, rows)
        if batch is None:
            return []
        return self.write_statements(batch)

    def write_statements(self, batch: Batch) -> list[Statement]:
        """The upsert of ``batch``'s changed documents and the delete of its gone ones."""
        statements: list[Statement] = []
        if batch.changed:
            statements.append(self.upsert(batch.changed))
        if batch.gone:
            statements.append(
                Statement(
                    lambda n: f"DELETE FROM {self.table} WHERE key = ANY(${n}::uuid[])",
                    [batch.gone],
                )
            )
        return statements

    def evolved(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> Batch | None:
        """The documents ``events`` touch evolved from the ``rows`` that ``reads`` found
        (pure): what ``apply`` writes, for a projection that writes it together with rows
        of its own. None when no event concerns this read model."""
        keys, forgotten = self._touched(events)
        if not keys and not forgotten:
            return None
        stored: dict[UUID, Doc] = {r["key"]: r["doc"] for r in rows}
        docs: dict[UUID, Doc | None] = {k: stored.get(k) for k in [*keys, *stored]}
        for event in events:
            key = self.key_of(event)
            if key is not None:
                docs[key] = self.evolve(docs[key], event)
            elif self.erase is not None and event.event_type == FORGOTTEN:
                patient = str(event.patient_id)
                for k, doc in docs.items():
                    if doc is not None and doc.get("patient_id") == patient:
                        docs[k] = self.erase(doc)
        # evolve returns new documents, so an unchanged one compares equal: skip its write.
        changed = [(k, d) for k, d in docs.items() if d is not None and d != stored.get(k)]
        gone = [k for k, d in docs.items() if d is None and k in stored]
        return Batch(keys=keys, docs=docs, changed=changed, gone=gone)

    async def write(self, conn: Conn, changed: list[tuple[UUID, Doc]]) -> None:
        """Writes these documents with their derived columns (their columns derived
        again, e.g. by a projection whose derivation depends on more than the document)."""
        upsert = self.upsert(changed)
        await conn.execute(upsert.render(), *upsert.args)

    def upsert(self, changed: list[tuple[UUID, Doc]]) -> Statement:
        """The statement that writes these documents with their derived columns."""
        names = list(self.columns)
        derived = [self.derive(doc) for _, doc in changed]
        args: list[Any] = [[k for k, _ in changed], [d for _, d in changed]]
        args.extend([values[name] for values in derived] for name in names)
        column_list = ", ".join(["key", "doc", *names])
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ["doc", *names])

        def sql(first: int) -> str:
            arrays = ", ".join(
                [f"${first}::uuid[]", f"${first + 1}::jsonb[]"]
                + [f"${first + i + 2}::{self.columns[name]}[]" for i, name in enumerate(names)]
            )
            return f"""INSERT INTO {self.table} ({column_list})
                SELECT * FROM unnest({arrays})
                ON CONFLICT (key) DO UPDATE SET {updates}"""

        return Statement(sql, args)

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {self.table}")
