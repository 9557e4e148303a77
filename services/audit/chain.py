"""Tamper evidence: one hash chain over every row that is audit evidence.

Chained: the event log (every write, including break-the-glass grants and their reviews),
the access log (reads and refusals), the accounting of disclosures, and the partner
registry's history. The sealer follows each table gap-safely and appends one link per
row: ``link = sha256(previous link || sha256(canonical row))``. ``verify`` recomputes the
chain from the rows as they are now, inside one read-only transaction, and never writes:
sealing is a separate step (``seal_once``, ``careteam audit seal``, the in-process
sealer), so a verification can never bless what it was meant to check.

Each link also names what it sealed (the table's key, patient, the row's own time, its
place in the table's order and a hash of its content without that place), so a finding
says whose record changed, how (edited, deleted, inserted, reordered) and since when.
Those descriptive columns are outside the link: altering them changes a finding's
wording, never hides one.

Sealing runs after commit, off the write path, so writers never serialise on the chain;
the price is that the newest rows (not yet sealed, normally well under a second) are
covered only once the sealer reaches them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services import locks
from services.audit.findings import Finding, FindingKind
from services.database import Conn

GENESIS = b"\x00" * 32


@dataclass(frozen=True)
class Source:
    """One table of evidence and how the sealer follows it."""

    name: str
    table: str
    key: str
    columns: str
    patient: str | None
    at: str
    # Followed by (tx_id, key) below the oldest running transaction (like the projector);
    # otherwise by key, up to the highest key seen once every transaction that was
    # running then has ended (the table has no transaction id column).
    by_tx: bool
    # Columns added after rows were sealed: hashed when they hold a value, left out of
    # the hash when NULL, so a row written before the column existed hashes as it did.
    added: tuple[str, ...] = ()

    @property
    def checkpoint(self) -> str:
        return f"audit_chain:{self.table}"


# JSON columns are hashed in jsonb's own text form, which is canonical and does not depend
# on the connection's type codecs. The column lists are fixed: a column added later must
# not change the hash of rows sealed before it (it is listed in ``added``). An access row
# of a list read names its patients in ``patient_ids`` (``patient_id`` NULL): the hash
# covers the array, so removing, adding or reordering a patient of it is an edit.
SOURCES: tuple[Source, ...] = (
    Source(
        "event",
        "events",
        "position",
        """position, tx_id::text AS tx_id, event_id, stream_id, stream_type,
        stream_version, patient_id, event_type, event_version, payload::text AS payload,
        metadata::text AS metadata, occurred_at, recorded_at""",
        "patient_id",
        "recorded_at",
        True,
    ),
    Source(
        "access",
        "access_log",
        "id",
        """id, tx_id::text AS tx_id, at, actor_id, role, organisation_id, patient_id,
        operation, outcome, reason, purpose_of_use, request_id, fields, patient_ids""",
        "patient_id",
        "at",
        True,
        added=("patient_ids",),
    ),
    Source(
        "disclosure",
        "disclosures",
        "id",
        """id, disclosed_at, patient_id, partner_id, recipient_organisation_id,
        recipient_name, description, purpose, channel, event_id, event_type, public_type,
        message_id, part2, consent_ids, rules_version""",
        "patient_id",
        "disclosed_at",
        False,
    ),
    Source(
        "partner_change",
        "partner_changes",
        "id",
        """id, partner_id, version, change, at, actor_id, role, organisation_id,
        request_id, details::text AS details""",
        None,
        "at",
        False,
    ),
)
BY_NAME = {s.name: s for s in SOURCES}
# The checkpoint names the first version of the sealer used (kept so existing databases
# carry on where they were).
_LEGACY_CHECKPOINTS = {"event": "audit_chain:events", "access": "audit_chain:access"}


def checkpoint_name(source: Source) -> str:
    return _LEGACY_CHECKPOINTS.get(source.name, source.checkpoint)


def _canonical(value: Any) -> Any:
    kind = type(value)
    # The column types a row holds, by exact type first (the same result as the checks
    # below, without walking them for every value of every row sealed).
    if kind is str or kind is int or value is None or kind is bool or kind is float:
        return value
    if isinstance(value, UUID):  # asyncpg's UUID is a subclass
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _digest(source: str, canonical: dict[str, Any]) -> bytes:
    text = json.dumps([source, canonical], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def row_hash(source: str, row: dict[str, Any]) -> bytes:
    """sha256 over the row's every column, in a canonical JSON form."""
    return _digest(source, {k: _canonical(v) for k, v in row.items()})


def content_hash(source: Source, row: dict[str, Any]) -> bytes:
    """sha256 over the row without its place in the table's order (key, transaction)."""
    content = {k: v for k, v in row.items() if k not in (source.key, "tx_id")}
    return row_hash(source.name, content)


def hashes(source: Source, row: dict[str, Any]) -> tuple[bytes, bytes]:
    """``row_hash`` and ``content_hash`` of one row, canonicalising its values once."""
    canonical = {k: _canonical(v) for k, v in row.items() if v is not None or k not in source.added}
    content = {k: v for k, v in canonical.items() if k not in (source.key, "tx_id")}
    return _digest(source.name, canonical), _digest(source.name, content)


def link(previous: bytes, row: bytes) -> bytes:
    return hashlib.sha256(previous + row).digest()


async def head(conn: Conn) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT seq, link_hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    return (0, GENESIS) if row is None else (row["seq"], bytes(row["link_hash"]))


# A mark, made the first time it is read: one statement. The SELECT does not see the row
# its own INSERT makes (one snapshot per statement), so a new row comes from RETURNING.
# An existing row is a conflict, which inserts nothing and takes no transaction id. Two
# transactions making the same new mark at once would leave the second with no row (its
# SELECT's snapshot predates the first's commit); every caller holds the sealer's
# advisory lock (AUDIT_CHAIN_SEAL), so that cannot happen.
_MARK_SQL = """WITH made AS (
    INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING
    RETURNING tx_id::text AS tx_id, position
)
SELECT tx_id, position FROM made
UNION ALL
SELECT tx_id::text, position FROM checkpoints WHERE name = $1"""


async def _mark(conn: Conn, name: str) -> tuple[str, int]:
    row = await conn.fetchrow(_MARK_SQL, name)
    assert row is not None
    return row["tx_id"], row["position"]


async def _set_mark(conn: Conn, name: str, tx: str, position: int) -> None:
    await conn.execute(
        """UPDATE checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now()
           WHERE name = $1""",
        name,
        tx,
        position,
    )


async def _rows_by_tx(conn: Conn, source: Source, limit: int) -> list[Any]:
    tx, pos = await _mark(conn, checkpoint_name(source))
    # ORDER BY names the table's columns: the select list aliases tx_id as text, and
    # text order ("999" > "1000") would move the checkpoint backwards.
    return list(
        await conn.fetch(
            f"""SELECT {source.columns} FROM {source.table}
                WHERE (tx_id, {source.key}) > ($1::text::xid8, $2::bigint)
                  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY {source.table}.tx_id, {source.table}.{source.key} LIMIT $3""",
            tx,
            pos,
            limit,
        )
    )


async def _rows_by_key(
    conn: Conn, source: Source, limit: int
) -> tuple[list[Any], int | None, tuple[str, str, int] | None]:
    """Rows whose key can no longer be overtaken by a slower transaction, the new mark
    (None when it did not move) and the new pending bookmark (None when unchanged), both
    for the caller to write with the round's other writes.

    A second bookmark remembers the highest key seen and the transaction horizon at that
    moment; once every transaction running then has ended, no row with a key up to it can
    still appear, so those rows are sealed (in key order) and a new pair is remembered.
    The cost is one poll of delay for these tables.
    """
    _, sealed = await _mark(conn, checkpoint_name(source))
    before = sealed
    pending_name = checkpoint_name(source) + ":pending"
    horizon, upto = await _mark(conn, pending_name)
    settled = await conn.fetchval(
        "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8", horizon
    )
    if not settled:
        return [], None, None
    rows: list[Any] = []
    if upto > sealed:
        rows = list(
            await conn.fetch(
                f"""SELECT {source.columns} FROM {source.table}
                    WHERE {source.key} > $1 AND {source.key} <= $2
                    ORDER BY {source.key} LIMIT $3""",
                sealed,
                upto,
                limit,
            )
        )
        # Keys handed out but never committed (rolled back) are passed over too.
        sealed = rows[-1][source.key] if len(rows) == limit else upto
    pending = None
    if sealed >= upto:
        now = await conn.fetchrow(
            f"""SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS horizon,
                       coalesce(max({source.key}), 0) AS upto FROM {source.table}"""
        )
        assert now is not None
        if now["upto"] > sealed:
            pending = (pending_name, now["horizon"], now["upto"])
    return rows, (sealed if sealed != before else None), pending


# Rows hashed between two turns of the event loop (about 0.6 ms of hashing here).
YIELD_EVERY = 25


@dataclass(frozen=True)
class Sealed:
    """What one round of sealing did: the links it added, and whether some source had at
    least ``limit`` rows waiting (a full batch: there may be more right away)."""

    added: int
    more: bool


async def seal_once(conn: Conn, *, limit: int = 1000) -> int:
    """Seals the next committed evidence rows; returns how many links it added.

    It only extends the chain: whether the chain is still intact is ``verify``'s question,
    asked by the callers (``careteam audit seal`` and the in-process sealer) first.
    """
    return (await seal_round(conn, limit=limit)).added


async def seal_round(conn: Conn, *, limit: int = 1000) -> Sealed:
    """``seal_once``, also telling whether any source filled its batch of ``limit`` rows
    (the in-process sealer goes again at once only then)."""
    added = 0
    more = False
    async with conn.transaction():
        # One sealer at a time: the lock also orders links when several processes run one.
        # It is the only lock the round takes while it reads and hashes: every write (the
        # marks and the links) comes at the end, so the transaction takes its id only
        # then, and log readers, which hold back every event committed after the oldest
        # running transaction id, are held back for the writes, not the whole round.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", locks.AUDIT_CHAIN_SEAL)
        seq, previous = await head(conn)
        marks: list[tuple[str, str, int]] = []
        links: list[tuple[Any, ...]] = []
        for source in SOURCES:
            if source.by_tx:
                rows = await _rows_by_tx(conn, source, limit)
                mark = (rows[-1]["tx_id"], rows[-1][source.key]) if rows else None
            else:
                rows, sealed_to, pending = await _rows_by_key(conn, source, limit)
                mark = None if sealed_to is None else ("0", sealed_to)
                if pending is not None:
                    marks.append(pending)
            if mark is not None:
                marks.append((checkpoint_name(source), *mark))
            more = more or len(rows) >= limit
            for r in rows:
                if links and len(links) % YIELD_EVERY == 0:
                    # Hashing runs on the event loop of the process that serves requests
                    # and subscriptions: let them run between short stretches.
                    await asyncio.sleep(0)
                seq += 1
                digest, content = hashes(source, dict(r))
                previous = link(previous, digest)
                links.append(
                    (
                        seq,
                        source.name,
                        r[source.key],
                        digest,
                        previous,
                        r[source.patient] if source.patient else None,
                        r[source.at],
                        int(r["tx_id"]) if source.by_tx else None,
                        content,
                    )
                )
            added += len(rows)
        for name, tx, position in marks:
            await _set_mark(conn, name, tx, position)
        if links:
            await conn.copy_records_to_table(
                "audit_chain",
                records=links,
                columns=[
                    "seq",
                    "source",
                    "source_id",
                    "row_hash",
                    "link_hash",
                    "patient_id",
                    "row_at",
                    "source_tx",
                    "content_hash",
                ],
            )
    return Sealed(added, more)


async def seal_all(conn: Conn, *, limit: int = 1000) -> int:
    """Seals until nothing is left (two empty rounds: the second settles key-ordered rows)."""
    total, empty = 0, 0
    while empty < 2:
        added = await seal_once(conn, limit=limit)
        total += added
        empty = 0 if added else empty + 1
    return total


@dataclass
class ChainReport:
    """What ``verify`` found; ``ok`` when nothing was."""

    links_checked: int
    head_seq: int
    head_hash: str
    pending: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "links_checked": self.links_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "rows_not_sealed_yet": self.pending,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class _Current:
    row_hash: bytes
    content_hash: bytes
    tx: int
    patient_id: UUID | None
    at: datetime | None


async def _current_rows(conn: Conn, source: Source) -> dict[int, _Current]:
    rows: dict[int, _Current] = {}
    async for r in conn.cursor(f"SELECT {source.columns} FROM {source.table}"):
        digest, content = hashes(source, dict(r))
        rows[r[source.key]] = _Current(
            digest,
            content,
            int(r["tx_id"]) if source.by_tx else 0,
            r[source.patient] if source.patient else None,
            r[source.at],
        )
    return rows


async def verify(conn: Conn) -> ChainReport:
    """Recomputes the chain from the rows as they are now; reports every difference.

    Runs in one read-only, repeatable-read transaction: it never writes.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        current = {s.name: await _current_rows(conn, s) for s in SOURCES}
        marks = {
            r["name"]: (int(r["tx_id"]), r["position"])
            for r in await conn.fetch(
                "SELECT name, tx_id::text AS tx_id, position FROM checkpoints "
                "WHERE name LIKE 'audit_chain:%'"
            )
        }
        findings: list[Finding] = []
        previous = GENESIS
        expected_seq = 0
        sealed: dict[str, dict[int, Any]] = {s.name: {} for s in SOURCES}
        mismatched: list[tuple[Any, _Current]] = []
        async for ln in conn.cursor(
            """SELECT seq, source, source_id, row_hash, link_hash, sealed_at, patient_id,
                      row_at, source_tx, content_hash
               FROM audit_chain ORDER BY seq"""
        ):
            expected_seq += 1
            source = BY_NAME[ln["source"]]
            sealed[source.name][ln["source_id"]] = ln
            stored_row_hash = bytes(ln["row_hash"])
            if ln["seq"] != expected_seq:
                findings.append(_chain_finding(ln, FindingKind.DELETED, "links missing"))
                expected_seq = ln["seq"]
            row = current[source.name].get(ln["source_id"])
            if row is None:
                findings.append(_row_finding(source, ln, FindingKind.DELETED))
            elif row.row_hash != stored_row_hash:
                mismatched.append((ln, row))
            previous = link(previous, stored_row_hash)
            if previous != bytes(ln["link_hash"]):
                findings.append(_chain_finding(ln, FindingKind.EDITED, "link hash differs"))
                previous = bytes(ln["link_hash"])
        # A row whose content is unchanged but whose place in the order moved (its key or
        # transaction id), or whose content now sits under another sealed row's key, was
        # reordered; anything else that differs was edited.
        moved_contents = {
            bytes(ln["content_hash"]) for ln, _ in mismatched if ln["content_hash"] is not None
        }
        for ln, row in mismatched:
            source = BY_NAME[ln["source"]]
            same_content = (
                ln["content_hash"] is not None and bytes(ln["content_hash"]) == row.content_hash
            )
            kind = (
                FindingKind.REORDERED
                if same_content or row.content_hash in moved_contents
                else FindingKind.EDITED
            )
            findings.append(_row_finding(source, ln, kind, patient_now=row.patient_id))
        pending = 0
        for source in SOURCES:
            mark = _sealed_mark(source, sealed[source.name].values(), marks)
            for key, row in current[source.name].items():
                if key in sealed[source.name]:
                    continue
                if (row.tx, key) <= mark:
                    findings.append(
                        Finding(
                            table=source.table,
                            key=key,
                            kind=FindingKind.INSERTED,
                            patient_id=row.patient_id,
                            since=row.at,
                            detail="a row that is not in the chain, behind rows that are",
                        )
                    )
                else:
                    pending += 1
        findings.sort(key=lambda f: (f.table, f.key or 0, f.kind.value))
        return ChainReport(
            links_checked=expected_seq,
            head_seq=expected_seq,
            head_hash=previous.hex(),
            pending=pending,
            findings=findings,
        )


def _sealed_mark(
    source: Source, links: Iterable[Any], marks: dict[str, tuple[int, int]]
) -> tuple[int, int]:
    """How far the sealer had got: from the chain itself (which an attacker who resets
    the sealer's bookmark cannot move back), or the bookmark, whichever is further."""
    best = marks.get(checkpoint_name(source), (0, 0))
    if not source.by_tx:
        best = (0, best[1])
    for ln in links:
        tx = int(ln["source_tx"]) if source.by_tx and ln["source_tx"] is not None else 0
        best = max(best, (tx, ln["source_id"]))
    return best


def _row_finding(
    source: Source, ln: Any, kind: FindingKind, *, patient_now: UUID | None = None
) -> Finding:
    what = {
        FindingKind.DELETED: "sealed, now missing",
        FindingKind.EDITED: "its content differs from what was sealed",
        FindingKind.REORDERED: "its place in the log differs from what was sealed",
    }[kind]
    return Finding(
        table=source.table,
        key=ln["source_id"],
        kind=kind,
        patient_id=ln["patient_id"] or patient_now,
        since=ln["sealed_at"],
        detail=f"{what} (row of {_iso(ln['row_at'])}, sealed {_iso(ln['sealed_at'])})",
    )


def _chain_finding(ln: Any, kind: FindingKind, what: str) -> Finding:
    return Finding(
        table="audit_chain",
        key=ln["seq"],
        kind=kind,
        patient_id=ln["patient_id"],
        since=ln["sealed_at"],
        detail=f"{what} at link {ln['seq']}",
    )


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "unknown time"
