"""Tamper evidence: a hash chain over every event and every access record.

The sealer follows the event log and the access log (both gap-safely, by transaction id)
and appends one link per row: ``link = sha256(previous link || sha256(canonical row))``.
``verify`` recomputes every link from the rows as they are now and reports each row that
was edited, deleted, inserted or reordered behind the application's back. A checkpoint
of the chain head can be signed with Ed25519 and checked elsewhere (``signing.py``).

Sealing runs after commit, off the write path, so writers never serialise on the chain;
the price is that the newest rows (not yet sealed, normally well under a second) are
covered only once the sealer reaches them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.database import Conn

log = logging.getLogger("careteam.audit")

GENESIS = b"\x00" * 32

# JSON columns are hashed in jsonb's own text form, which is canonical and does not depend
# on the connection's type codecs.
_EVENT_COLUMNS = """position, tx_id::text AS tx_id, event_id, stream_id, stream_type,
    stream_version, patient_id, event_type, event_version, payload::text AS payload,
    metadata::text AS metadata, occurred_at, recorded_at"""
_ACCESS_COLUMNS = """id, tx_id::text AS tx_id, at, actor_id, role, organisation_id, patient_id,
    operation, outcome, reason, purpose_of_use, request_id, fields"""


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def row_hash(source: str, row: dict[str, Any]) -> bytes:
    """sha256 over the row's every column, in a canonical JSON form."""
    text = json.dumps([source, _canonical(row)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def link(previous: bytes, row: bytes) -> bytes:
    return hashlib.sha256(previous + row).digest()


async def _head(conn: Conn) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT seq, link_hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    return (0, GENESIS) if row is None else (row["seq"], bytes(row["link_hash"]))


async def _checkpoint(conn: Conn, name: str) -> tuple[str, int]:
    await conn.execute(
        "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )
    row = await conn.fetchrow(
        "SELECT tx_id::text AS tx_id, position FROM checkpoints WHERE name = $1 FOR UPDATE", name
    )
    assert row is not None
    return row["tx_id"], row["position"]


async def seal_once(conn: Conn, *, limit: int = 1000) -> int:
    """Seals the next committed events and access records; returns how many links it added."""
    added = 0
    async with conn.transaction():
        # One sealer at a time: the lock also orders links when several processes run one.
        await conn.execute("SELECT pg_advisory_xact_lock(7361002)")
        seq, previous = await _head(conn)
        for source, table, key, columns, name in (
            ("event", "events", "position", _EVENT_COLUMNS, "audit_chain:events"),
            ("access", "access_log", "id", _ACCESS_COLUMNS, "audit_chain:access"),
        ):
            tx, pos = await _checkpoint(conn, name)
            # ORDER BY names the table's columns: the select list aliases tx_id as text, and
            # text order ("999" > "1000") would move the checkpoint backwards.
            rows = await conn.fetch(
                f"""SELECT {columns} FROM {table}
                    WHERE (tx_id, {key}) > ($1::text::xid8, $2::bigint)
                      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
                    ORDER BY {table}.tx_id, {table}.{key} LIMIT $3""",
                tx,
                pos,
                limit,
            )
            if not rows:
                continue
            links = []
            for r in rows:
                seq += 1
                digest = row_hash(source, dict(r))
                previous = link(previous, digest)
                links.append((seq, source, r[key], digest, previous))
            await conn.copy_records_to_table(
                "audit_chain",
                records=links,
                columns=["seq", "source", "source_id", "row_hash", "link_hash"],
            )
            last = rows[-1]
            await conn.execute(
                """UPDATE checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now()
                   WHERE name = $1""",
                name,
                last["tx_id"],
                last[key],
            )
            added += len(rows)
    return added


@dataclass
class ChainReport:
    """What ``verify`` found; ``ok`` when nothing was."""

    links_checked: int = 0
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    broken_links: list[int] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = ""

    @property
    def ok(self) -> bool:
        return not (self.edited or self.deleted or self.inserted or self.broken_links)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "links_checked": self.links_checked,
            "edited": self.edited,
            "deleted": self.deleted,
            "inserted": self.inserted,
            "broken_links": self.broken_links,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
        }


async def verify(conn: Conn) -> ChainReport:
    """Recomputes the chain from the rows as they are now; reports every difference."""
    report = ReportBuilder()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        sources = {
            "event": {
                r["position"]: dict(r)
                for r in await conn.fetch(f"SELECT {_EVENT_COLUMNS} FROM events")
            },
            "access": {
                r["id"]: dict(r)
                for r in await conn.fetch(f"SELECT {_ACCESS_COLUMNS} FROM access_log")
            },
        }
        marks = {
            r["name"]: (int(r["tx_id"]), r["position"])
            for r in await conn.fetch(
                "SELECT name, tx_id::text AS tx_id, position FROM checkpoints "
                "WHERE name LIKE 'audit_chain:%'"
            )
        }
        previous = GENESIS
        expected_seq = 0
        sealed: dict[str, set[int]] = {"event": set(), "access": set()}
        async for link_row in conn.cursor("SELECT * FROM audit_chain ORDER BY seq"):
            expected_seq += 1
            report.r.links_checked += 1
            source, source_id = link_row["source"], link_row["source_id"]
            sealed[source].add(source_id)
            if link_row["seq"] != expected_seq:
                report.r.broken_links.append(link_row["seq"])
            stored_row_hash = bytes(link_row["row_hash"])
            current = sources[source].get(source_id)
            if current is None:
                report.r.deleted.append(f"{source}:{source_id}")
            elif row_hash(source, current) != stored_row_hash:
                report.r.edited.append(f"{source}:{source_id}")
            previous = link(previous, stored_row_hash)
            if previous != bytes(link_row["link_hash"]):
                report.r.broken_links.append(link_row["seq"])
                previous = bytes(link_row["link_hash"])
        # A row at or before what the sealer has passed, but never sealed, was inserted
        # behind the application's back (or moved there by editing its position).
        for source, name in (("event", "audit_chain:events"), ("access", "audit_chain:access")):
            tx_mark, key_mark = marks.get(name, (0, 0))
            for key, row in sources[source].items():
                if key in sealed[source]:
                    continue
                if (int(row["tx_id"]), key) <= (tx_mark, key_mark):
                    report.r.inserted.append(f"{source}:{key}")
        report.r.head_seq = expected_seq
        report.r.head_hash = previous.hex()
    return report.r


class ReportBuilder:
    def __init__(self) -> None:
        self.r = ChainReport()


class ChainSealer:
    """Keeps the chain current in the background."""

    def __init__(self, pool: Any, *, poll_seconds: float = 0.5, batch: int = 200) -> None:
        self._pool = pool
        self._poll = poll_seconds
        # Rows hashed per source per transaction. Hashing runs on the event loop, so a
        # small batch keeps each stretch short (about 5 ms at 200 rows here) and requests
        # and subscription deliveries are not held up behind a long one.
        self._batch = batch

    async def run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    added = await seal_once(conn, limit=self._batch)
            except Exception:
                log.exception("audit chain sealing failed; retrying")
                added = 0
            if added == 0:
                await asyncio.sleep(self._poll)
