"""The event store on asyncpg: append with optimistic concurrency, read streams, follow the log.

Ordering scheme (an open decision in docs/architecture.md, decided here): every row records the id
of the transaction that wrote it (``tx_id``, ``pg_current_xact_id()``), and the global
order is ``(tx_id, position)``. A reader asks only for rows whose ``tx_id`` is below
``pg_snapshot_xmin(pg_current_snapshot())``: every transaction below that horizon has
finished, so all of their rows are visible to the reader, and a row that commits later
necessarily has a ``tx_id`` at or above the horizon and sorts after everything the reader
has already seen. Writers take no lock, so concurrent appends scale like plain INSERTs;
the price is that a reader waits for the oldest open writing transaction to end before
it sees newer rows (a long-running write elsewhere in the database delays the log).
The library's alternative, ``LOCK TABLE ... IN EXCLUSIVE MODE`` per append, serialises
every writer (measured: 16 writers commit about 30% of what they commit without it).
tests/integration/test_eventstore_ordering.py proves the scheme with concurrent writers
and a tailing reader.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg

from domain import codec
from domain.registry import decode_event
from services.crypto import (
    RECORD_VERSION,
    KeyRing,
    decrypt_fields,
    encrypt_fields,
    is_encrypted,
    patient_key_fields,
    record_key_fields,
)
from services.database import Conn
from services.row_memo import RowMemo
from services.tracing import current_traceparent

log = logging.getLogger("careteam.eventstore")

A = TypeVar("A")


class ConcurrencyConflictError(Exception):
    """Another writer appended to the stream first (or created the same stream id)."""

    code = "CONFLICT"

    def __init__(self, stream_id: UUID, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass
class IdempotencyKey:
    """A client's key for one command (the ``Idempotency-Key`` header): the append records
    it in the same statement as the events, so a repeat can never write twice."""

    actor_id: UUID
    key: str
    fingerprint: str
    operation: str
    # The id the command created (a goal, a task...), set when the command has run.
    created_id: UUID | None = None


class DuplicateCommandError(Exception):
    """Another request with the same idempotency key was written first."""

    def __init__(self, key: str) -> None:
        super().__init__("idempotency key already used")
        self.key = key


class StreamNotFoundError(LookupError):
    """No events exist for the stream id."""

    code = "NOT_FOUND"

    def __init__(self, stream_id: UUID) -> None:
        super().__init__(f"stream {stream_id} not found")
        self.stream_id = stream_id


@dataclass(frozen=True)
class EventMetadata:
    """Who did it, for whom, why and through what: stored with every event."""

    actor_id: str
    role: str
    organisation_id: str | None = None
    on_behalf_of: str | None = None
    purpose_of_use: str = "TREAT"  # an HL7 v3 PurposeOfUse code
    correlation_id: str = field(default_factory=lambda: str(uuid4()))
    causation_id: str | None = None
    request_id: str | None = None
    channel: str = "api"
    # The W3C traceparent of the request that wrote it (services/tracing.py), for the
    # CloudEvents the relay publishes; absent when no request was being served.
    traceparent: str | None = field(default_factory=current_traceparent)

    def as_json(self) -> dict[str, Any]:
        # Every field is a str or None: a shallow dict is a full copy (dataclasses.asdict
        # deep-copied each value, a tenth of an append's CPU in bench row 1).
        out = dict(vars(self))
        if out["traceparent"] is None:
            del out["traceparent"]
        return out


@dataclass(frozen=True, order=True)
class LogPosition:
    """A place in the global log; compare positions with <, >."""

    tx_id: int = 0
    position: int = 0

    def encode(self) -> str:
        return f"{self.tx_id}.{self.position}"

    @classmethod
    def decode(cls, text: str) -> LogPosition:
        tx, _, pos = text.partition(".")
        return cls(int(tx), int(pos))


START = LogPosition(0, 0)


@dataclass(frozen=True)
class RecordedEvent:
    """One row of the log, as stored."""

    position: int
    tx_id: int
    event_id: UUID
    stream_id: UUID
    stream_type: str
    stream_version: int
    patient_id: UUID
    event_type: str
    event_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime

    @functools.cached_property
    def log_position(self) -> LogPosition:
        return LogPosition(self.tx_id, self.position)

    @classmethod
    def of(cls, values: dict[str, Any]) -> RecordedEvent:
        """A record from its fields by name (every field, nothing else), without the
        frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field: in bench
        row 1 a tenth of an append's CPU went to building the records)."""
        record = object.__new__(cls)
        vars(record).update(values)
        return record

    def to_domain_event(self) -> Any:
        """The domain event, decoded once per record (every projection of a batch shares it;
        domain events are immutable)."""
        return self._domain_event

    @functools.cached_property
    def _domain_event(self) -> Any:
        return decode_event(
            event_type=self.event_type,
            event_version=self.event_version,
            payload=self.payload,
            stream_id=self.stream_id,
            stream_version=self.stream_version,
            recorded_at=self.recorded_at,
        )


_COLUMNS = """position, tx_id::text::bigint AS tx_id, event_id, stream_id, stream_type,
    stream_version, patient_id, event_type, event_version, payload, metadata,
    occurred_at, recorded_at"""

# The append: the stream's row when it is new, the idempotency key when there is one
# (against the last event), and the events, returning what the database assigned, read
# back by index in ``append``: 0 stream_version, 1 position, 2 tx_id, 3 recorded_at.
# Several events go in as arrays through unnest. One event (most commands) goes in with
# plain parameters and VALUES, which cost PostgreSQL 7-28% less CPU per event and made
# 11-36% more appends a second with 16 writers (bench row 1's workload,
# docs/performance.md). Same parameter numbers in both.
_APPEND_TEMPLATE = """
WITH new_stream AS (
    INSERT INTO streams (stream_id, stream_type, patient_id)
    SELECT $2, $3, $5 WHERE $11::boolean
    RETURNING stream_id
), idempotency AS (
    INSERT INTO idempotency_keys (actor_id, key, fingerprint, operation, stream_id,
                                  patient_id, last_event_id, created_id)
    SELECT $12, $13, $14, $15, $2, $5, {last_event}, $16
    WHERE $12::uuid IS NOT NULL
)
INSERT INTO events (event_id, stream_id, stream_type, stream_version, patient_id,
                    event_type, event_version, payload, metadata, occurred_at)
{rows}
RETURNING stream_version, position, tx_id::text::bigint AS tx_id, recorded_at
"""
_APPEND_SQL = _APPEND_TEMPLATE.format(
    last_event="($1::uuid[])[cardinality($1::uuid[])]",
    rows="""SELECT u.event_id, $2, $3, u.stream_version, $5, u.event_type, u.event_version,
       u.payload, $9, u.occurred_at
FROM unnest($1::uuid[], $4::integer[], $6::text[], $7::integer[], $8::jsonb[],
            $10::timestamptz[])
     AS u(event_id, stream_version, event_type, event_version, payload, occurred_at)""",
)
_APPEND_ONE_SQL = _APPEND_TEMPLATE.format(
    last_event="$1::uuid", rows="VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)

# ORDER BY names the table's columns: a bare ``tx_id`` would be the bigint output column,
# which no index has, so every page would scan and sort the rest of the log. Same order
# either way (xid8 and its bigint text agree); this one walks events_log_order.
_LOG_PAGE = """FROM events
WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.tx_id, events.position
LIMIT $3
"""

_READ_LOG_SQL = f"SELECT {_COLUMNS} {_LOG_PAGE}"

# A page's keys only (``read_log_of``), then the kept events in full, in log order.
_LOG_PAGE_KEYS_SQL = f"SELECT position, tx_id::text::bigint AS tx_id, patient_id {_LOG_PAGE}"
_READ_POSITIONS_SQL = f"""SELECT {_COLUMNS} FROM events WHERE position = ANY($1::bigint[])
ORDER BY events.tx_id, events.position"""

# The same columns with payload and metadata as JSON text (jsonb's own text form).
_READ_LOG_ROWS_SQL = f"""SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
    stream_type, stream_version, patient_id, event_type, event_version,
    payload::text AS payload, metadata::text AS metadata, occurred_at, recorded_at
{_LOG_PAGE}"""

AppendListener = Callable[[LogPosition], Awaitable[None] | None]


@dataclass(frozen=True)
class LoadCheck:
    """A condition decided in the load's own statement (the command handler's
    authorisation in SQL): one round trip instead of a check and then a load.

    ``sql(first)`` gives a one-row SELECT with one text column ``refused`` (NULL when the
    load may go ahead, else the reason) and its parameters, numbered from ``$first``.
    When it refuses, no snapshot, event or key is read and ``refuse(reason)`` is raised.
    """

    sql: Callable[[int], tuple[str, list[Any]]]
    refuse: Callable[[str], Exception]


# One statement: the check, the snapshot (of the current state version), the patient's
# wrapped data key and the events after the snapshot; the first row carries the check,
# the snapshot and the key, the others are the events. Nothing is read when refused.
# With an aggregate kept in memory at version $3 whose last event is $4 (``_Kept``), only
# a newer snapshot and the events after both are read, and ``kept_valid`` says whether the
# stream's event at $3 is still that event (with $3 = 0 and $4 NULL: a plain load).
_CHECKED_LOAD_SQL = """WITH guard AS ({check}),
snap AS (
    SELECT stream_version, state FROM snapshots
    WHERE stream_id = $1 AND state_version = $2 AND stream_version > $3::integer
      AND (SELECT refused FROM guard) IS NULL
)
SELECT 0 AS part, (SELECT refused FROM guard) AS refused,
       snap.stream_version AS snap_version, snap.state AS snap_state,
       (SELECT s.patient_id FROM streams s
        WHERE s.stream_id = $1 AND (SELECT refused FROM guard) IS NULL) AS key_patient_id,
       (SELECT k.wrapped_key FROM streams s JOIN patient_keys k ON k.patient_id = s.patient_id
        WHERE s.stream_id = $1 AND (SELECT refused FROM guard) IS NULL) AS wrapped_key,
       (SELECT e.event_id = $4::uuid FROM events e
        WHERE e.stream_id = $1 AND e.stream_version = $3::integer
          AND (SELECT refused FROM guard) IS NULL) AS kept_valid,
       NULL::bigint AS position, NULL::bigint AS tx_id, NULL::uuid AS event_id,
       NULL::uuid AS stream_id, NULL::text AS stream_type, NULL::integer AS stream_version,
       NULL::uuid AS patient_id, NULL::text AS event_type, NULL::integer AS event_version,
       NULL::jsonb AS payload, NULL::jsonb AS metadata, NULL::timestamptz AS occurred_at,
       NULL::timestamptz AS recorded_at
FROM (SELECT 1) AS one LEFT JOIN snap ON TRUE
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, e.position, e.tx_id::text::bigint, e.event_id,
       e.stream_id, e.stream_type, e.stream_version, e.patient_id, e.event_type,
       e.event_version, e.payload, e.metadata, e.occurred_at, e.recorded_at
FROM events e
WHERE e.stream_id = $1 AND (SELECT refused FROM guard) IS NULL
  AND e.stream_version > GREATEST(COALESCE((SELECT stream_version FROM snap), 0), $3::integer)
ORDER BY part, stream_version"""

_EVENT_FIELDS = tuple(f.name for f in fields(RecordedEvent))


def row_to_event(row: asyncpg.Record) -> RecordedEvent:
    """A record from a row holding exactly ``RecordedEvent``'s columns (``_COLUMNS``)."""
    return RecordedEvent.of(dict(row))


# Values a copy may share: immutable (an Enum member, a frozenset of such values).
_SHARED: tuple[type, ...] = (
    *(str, int, float, bool, type(None), bytes, UUID, date, datetime, time, timedelta),
    *(Enum, Decimal, frozenset),
)


def clone(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of an aggregate's state in about half the time ``copy.deepcopy`` takes
    for a patient (24 against 48 us): immutable values are shared; lists, dicts, sets
    and tuples are copied; an object with a ``__dict__`` (and no slot of its own) is made
    anew with its attributes copied. Like ``deepcopy``, an object reached twice is copied
    once (aliases stay aliases). Anything else (a subclass of a container, an object with
    slots) is left to ``copy.deepcopy``, with the same memo."""
    if isinstance(value, _SHARED):
        return value
    memo = {} if memo is None else memo
    made = memo.get(id(value))
    if made is not None:
        return made
    kind = type(value)
    if kind is list:
        made = []
        memo[id(value)] = made
        made.extend(clone(item, memo) for item in value)
    elif kind is dict:
        made = {}
        memo[id(value)] = made
        made.update((key, clone(item, memo)) for key, item in value.items())
    elif kind is tuple:
        made = tuple(clone(item, memo) for item in value)
    elif kind is set:
        made = {clone(item, memo) for item in value}
    elif _plain_object(kind):
        made = object.__new__(kind)
        memo[id(value)] = made
        made.__dict__.update((key, clone(item, memo)) for key, item in vars(value).items())
    else:
        made = copy.deepcopy(value, memo)  # the same memo: aliases through it stay aliases
    memo[id(value)] = made
    return made


_PLAIN: dict[type, bool] = {}


def _plain_object(kind: type) -> bool:
    """Whether ``kind``'s instances keep their whole state in ``__dict__``."""
    plain = _PLAIN.get(kind)
    if plain is None:
        plain = (
            "__dict__" in dir(kind)
            and not issubclass(kind, (list, dict, set, tuple, frozenset))
            and not any(getattr(cls, "__slots__", ()) for cls in kind.__mro__)
        )
        _PLAIN[kind] = plain
    return plain


@dataclass(frozen=True)
class _Kept:
    """An aggregate kept in memory between commands (``EventStore.keep``): its state after
    the stream's event ``last_event_id`` (at ``aggregate.version``), built exactly as a
    load would build it. Whoever takes it from the memo has it alone."""

    state_version: str
    patient_id: UUID
    last_event_id: UUID
    aggregate: Any


# Aggregates kept per process, and for how long (seconds) after their last command.
KEPT_AGGREGATES = 1024
KEPT_AGGREGATE_SECONDS = 120.0
# How long a patient forgotten here is remembered as such (longer than any command).
FORGOTTEN_SECONDS = 600.0


class EventStore:
    """Appends and reads events in PostgreSQL. Holds a pool, and the aggregates kept
    between commands (``keep``; ``kept_aggregates=0`` keeps none)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        snapshot_every: int = 50,
        keyring: KeyRing | None = None,
        kept_aggregates: int = KEPT_AGGREGATES,
        kept_seconds: float = KEPT_AGGREGATE_SECONDS,
    ) -> None:
        self._pool = pool
        self._kept: RowMemo[_Kept] | None = (
            RowMemo(kept_aggregates, kept_seconds) if kept_aggregates > 0 else None
        )
        self._kept_seconds = kept_seconds
        # Patients forgotten in this process lately: a command that committed just before
        # their erasure does not keep their aggregate after it (``keep``).
        self._forgotten: RowMemo[bool] = RowMemo(4096, FORGOTTEN_SECONDS)
        self._purge: asyncio.TimerHandle | None = None
        self._snapshot_every = snapshot_every
        self._listeners: list[AppendListener] = []
        # Without a keyring (some tests and tools), identifying fields and free text are
        # stored in clear.
        self._keyring = keyring

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def keyring(self) -> KeyRing | None:
        return self._keyring

    async def notify_appended(self, position: LogPosition) -> None:
        """Wakes this process's readers after a commit made through ``append(conn=...)``."""
        await self._notify(position)

    def on_append(self, listener: AppendListener) -> None:
        """Calls ``listener(position)`` after every committed append in this process."""
        self._listeners.append(listener)

    async def append(
        self,
        *,
        stream_type: str,
        stream_id: UUID,
        patient_id: UUID,
        expected_version: int,
        events: Sequence[Any],
        metadata: EventMetadata,
        now: datetime,
        conn: Conn | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Appends events atomically after ``expected_version``; raises on a conflict, and
        DuplicateCommandError when ``idempotency``'s key was already written."""
        if not events:
            return []
        versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
        for ev, v in zip(events, versions, strict=True):
            if getattr(ev, "originator_version", v) != v:
                raise ConcurrencyConflictError(stream_id, expected_version)
        plain = [codec.encode_payload(e) for e in events]
        payloads = plain
        if self._keyring is not None:
            payloads = await self._encrypt(self._keyring, plain, events, patient_id, conn)
        meta = metadata.as_json()
        event_ids = [uuid4() for _ in events]
        names = [codec.event_name(e) for e in events]
        event_versions = [codec.event_version(e) for e in events]
        occurred = [getattr(e, "occurred_at", None) or now for e in events]
        one = len(events) == 1
        sql = _APPEND_ONE_SQL if one else _APPEND_SQL
        args = (
            event_ids[0] if one else event_ids,
            stream_id,
            stream_type,
            versions[0] if one else versions,
            patient_id,
            names[0] if one else names,
            event_versions[0] if one else event_versions,
            payloads[0] if one else payloads,
            meta,
            occurred[0] if one else occurred,
            expected_version == 0,
            idempotency.actor_id if idempotency else None,
            idempotency.key if idempotency else None,
            idempotency.fingerprint if idempotency else None,
            idempotency.operation if idempotency else None,
            idempotency.created_id if idempotency else None,
        )
        try:
            if conn is None:
                async with self._pool.acquire() as c:
                    rows = await c.fetch(sql, *args)
            else:
                rows = await conn.fetch(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name in ("events_stream_version_unique", "streams_pkey"):
                raise ConcurrencyConflictError(stream_id, expected_version) from None
            if exc.constraint_name == "idempotency_keys_pkey" and idempotency is not None:
                raise DuplicateCommandError(idempotency.key) from None
            raise
        # Only what the database assigned comes back; the rest is already known here.
        if len(rows) == 1:  # one event (most commands): no look-up by version
            assigned = {versions[0]: rows[0]}
        else:
            assigned = {r["stream_version"]: r for r in rows}
        recorded = []
        for i, version in enumerate(versions):
            row = assigned[version]
            recorded.append(
                RecordedEvent.of(
                    {
                        "position": row[1],
                        "tx_id": row[2],
                        "event_id": event_ids[i],
                        "stream_id": stream_id,
                        "stream_type": stream_type,
                        "stream_version": version,
                        "patient_id": patient_id,
                        "event_type": names[i],
                        "event_version": event_versions[i],
                        "payload": plain[i],
                        "metadata": meta,
                        "occurred_at": occurred[i],
                        "recorded_at": row[3],
                    }
                )
            )
        if conn is None:
            await self._notify(recorded[-1].log_position)
        return recorded

    async def _encrypt(
        self,
        keyring: KeyRing,
        payloads: list[dict[str, Any]],
        events: Sequence[Any],
        patient_id: UUID,
        conn: Conn | None,
    ) -> list[dict[str, Any]]:
        """Identifying fields and free text encrypted with the patient's data key (refused
        for a forgotten patient), the erasure's record with the erasure-record key."""
        personal = [patient_key_fields(type(e)) for e in events]
        record = [record_key_fields(type(e)) for e in events]
        if any(personal):
            if conn is None:
                async with self._pool.acquire() as c:
                    key = await keyring.data_key(c, patient_id)
            else:
                key = await keyring.data_key(conn, patient_id)
            payloads = [
                encrypt_fields(p, f, patient_id, key) if f else p
                for p, f in zip(payloads, personal, strict=True)
            ]
        if any(record):
            payloads = [
                encrypt_fields(p, f, patient_id, keyring.record_key, version=RECORD_VERSION)
                if f
                else p
                for p, f in zip(payloads, record, strict=True)
            ]
        return payloads

    async def _notify(self, position: LogPosition) -> None:
        for listener in self._listeners:
            try:
                result = listener(position)
                if result is not None:
                    await result
            except Exception:  # a listener must never fail a committed write
                log.exception("append listener failed")

    async def decrypt(
        self, records: list[RecordedEvent], conn: Conn | None = None
    ) -> list[RecordedEvent]:
        """Records with identifying fields and free text in clear (None for a forgotten
        patient; the erasure's record stays readable)."""
        if self._keyring is None:
            return records
        record_key = self._keyring.record_key
        needing = {r.patient_id for r in records if any(map(is_encrypted, r.payload.values()))}
        if not needing:
            return records
        if conn is None:
            async with self._pool.acquire() as c:
                keys = await self._keyring.data_keys(c, needing)
        else:
            keys = await self._keyring.data_keys(conn, needing)
        return [
            replace(
                r,
                payload=decrypt_fields(r.payload, r.patient_id, keys.get(r.patient_id), record_key),
            )
            if r.patient_id in needing
            else r
            for r in records
        ]

    async def read_stream(
        self,
        stream_id: UUID,
        *,
        after_version: int = 0,
        conn: Conn | None = None,
        decrypt: bool = True,
    ) -> list[RecordedEvent]:
        sql = f"""SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2
                  ORDER BY stream_version"""
        if conn is None:
            async with self._pool.acquire() as c:
                rows = await c.fetch(sql, stream_id, after_version)
        else:
            rows = await conn.fetch(sql, stream_id, after_version)
        records = [row_to_event(r) for r in rows]
        return await self.decrypt(records, conn) if decrypt else records

    async def read_log(
        self,
        after: LogPosition = START,
        *,
        limit: int = 500,
        conn: Conn | None = None,
        decrypt: bool = True,
    ) -> list[RecordedEvent]:
        """The next committed events after ``after``, in global order, never skipping one.

        ``decrypt=False`` leaves identifying fields and free text as ciphertext (what
        leaves careteam)."""
        if conn is None:
            async with self._pool.acquire() as c:
                rows = await c.fetch(_READ_LOG_SQL, str(after.tx_id), after.position, limit)
        else:
            rows = await conn.fetch(_READ_LOG_SQL, str(after.tx_id), after.position, limit)
        records = [row_to_event(r) for r in rows]
        return await self.decrypt(records, conn) if decrypt else records

    async def read_log_of(
        self,
        after: LogPosition,
        keep: Callable[[UUID], bool] | None,
        *,
        limit: int = 500,
        conn: Conn,
    ) -> tuple[list[RecordedEvent], LogPosition | None, int]:
        """``read_log`` of the patients ``keep`` accepts: the events of the next ``limit``
        committed events after ``after`` (the same page, the same gap safety) whose
        patient ``keep`` accepts; the position of the page's last event (None at the end
        of the log), up to which a reader of those patients has seen everything; and how
        many events the page held.

        The page is read without its payloads first; only the kept events are read in
        full and decrypted (a partition's worker reads its share, not the whole log).
        ``keep=None`` keeps every patient: the page is read in full at once (one
        statement instead of two)."""
        if keep is None:
            records = await self.read_log(after, limit=limit, conn=conn)
            if not records:
                return [], None, 0
            return records, records[-1].log_position, len(records)
        page = await conn.fetch(_LOG_PAGE_KEYS_SQL, str(after.tx_id), after.position, limit)
        if not page:
            return [], None, 0
        last = LogPosition(page[-1]["tx_id"], page[-1]["position"])
        wanted = [r["position"] for r in page if keep(r["patient_id"])]
        if not wanted:
            return [], last, len(page)
        rows = await conn.fetch(_READ_POSITIONS_SQL, wanted)
        return await self.decrypt([row_to_event(r) for r in rows], conn), last, len(page)

    async def read_log_rows(
        self, after: LogPosition = START, *, limit: int = 500, conn: Conn | None = None
    ) -> list[asyncpg.Record]:
        """``read_log(decrypt=False)`` as database rows with ``payload`` and ``metadata``
        left as JSON text (not decoded): for a caller that only forwards them (the relay).

        Same events, same order, same gap safety; the other columns as ``read_log`` has
        them (``RecordedEvent``'s field names)."""
        if conn is None:
            async with self._pool.acquire() as c:
                return list(
                    await c.fetch(_READ_LOG_ROWS_SQL, str(after.tx_id), after.position, limit)
                )
        return list(await conn.fetch(_READ_LOG_ROWS_SQL, str(after.tx_id), after.position, limit))

    async def head(self) -> LogPosition:
        """The position of the last event a reader can see now."""
        async with self._pool.acquire() as c:
            row = await c.fetchrow(
                """SELECT tx_id::text::bigint AS tx_id, position FROM events
                   WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
                   ORDER BY events.tx_id DESC, events.position DESC LIMIT 1"""
            )
        return START if row is None else LogPosition(row["tx_id"], row["position"])

    async def load(
        self, aggregate_cls: type[A], stream_id: UUID, *, check: LoadCheck | None = None
    ) -> A:
        """Rebuilds an aggregate from its latest snapshot and the events after it; with
        ``check``, only when the check allows it, decided in the same statement."""
        if check is not None:
            return await self._checked_load(aggregate_cls, stream_id, check)
        async with self._pool.acquire() as c:
            snap = await c.fetchrow(
                "SELECT stream_version, state_version, state FROM snapshots WHERE stream_id = $1",
                stream_id,
            )
            aggregate: Any = None
            after = 0
            if snap is not None and snap["state_version"] == _state_version(aggregate_cls):
                aggregate = aggregate_cls.from_snapshot_state(snap["state"])  # type: ignore[attr-defined]
                after = snap["stream_version"]
            records = await self.read_stream(stream_id, after_version=after, conn=c)
        return await self._rebuild(aggregate_cls, stream_id, aggregate, records)

    async def _rebuild(
        self, aggregate_cls: type[A], stream_id: UUID, aggregate: Any, records: list[RecordedEvent]
    ) -> A:
        """The aggregate (from its snapshot, or None) with ``records`` applied; a new
        snapshot when many were."""
        if aggregate is None and not records:
            raise StreamNotFoundError(stream_id)
        for record in records:
            aggregate = record.to_domain_event().mutate(aggregate)
        if not isinstance(aggregate, aggregate_cls):
            raise StreamNotFoundError(stream_id)
        if self._snapshot_every and len(records) >= self._snapshot_every:
            await self.save_snapshot(aggregate)
        return aggregate

    async def _checked_load(
        self, aggregate_cls: type[A], stream_id: UUID, check: LoadCheck, *, use_kept: bool = True
    ) -> A:
        state_version = _state_version(aggregate_cls)
        kept, expires = self._take_kept(stream_id, state_version) if use_kept else (None, None)
        after = kept.aggregate.version if kept is not None else 0
        guard, params = check.sql(5)
        sql = _CHECKED_LOAD_SQL.format(check=guard)
        last_event = kept.last_event_id if kept is not None else None
        async with self._pool.acquire() as c:
            rows = await c.fetch(sql, stream_id, state_version, after, last_event, *params)
        head, events = rows[0], rows[1:]
        if head["refused"] is not None:
            if kept is not None and self._kept is not None and expires is not None:
                # Untouched, still the stream's state, and as old as it was.
                self._kept.put(stream_id, kept, expires_at=expires)
            raise check.refuse(head["refused"])
        if kept is not None and (head["kept_valid"] is not True or head["wrapped_key"] is None):
            # The stream is not the one kept (a restored database), or its patient was
            # forgotten since: dropped, and the aggregate is loaded from the database.
            return await self._checked_load(aggregate_cls, stream_id, check, use_kept=False)
        aggregate: Any = None
        if head["snap_version"] is not None:
            aggregate = aggregate_cls.from_snapshot_state(head["snap_state"])  # type: ignore[attr-defined]
        elif kept is not None:
            aggregate = kept.aggregate
        records = [RecordedEvent.of({name: row[name] for name in _EVENT_FIELDS}) for row in events]
        records = self._decrypt_with(records, head["key_patient_id"], head["wrapped_key"])
        return await self._rebuild(aggregate_cls, stream_id, aggregate, records)

    def _take_kept(self, stream_id: UUID, state_version: str) -> tuple[_Kept | None, float | None]:
        found = self._kept.take(stream_id) if self._kept is not None else None
        if found is None or found[0].state_version != state_version:
            return None, None
        return found

    @property
    def kept_memo(self) -> RowMemo[_Kept] | None:
        """The aggregates kept between commands (None: keeping is off)."""
        return self._kept

    def copy_for_keeping(self, aggregate: A) -> A | None:
        """A copy of ``aggregate`` as loaded (before a command changes it), to be kept
        with the command's recorded events by ``keep``; None when nothing is kept."""
        if self._kept is None or self._keyring is None:
            return None  # without keys, no load could tell a forgotten patient's stream
        try:
            copied: A = clone(aggregate)
        except Exception as exc:  # keeping is an optimisation: never fail the command
            log.warning("aggregate not kept: copy failed error=%s", type(exc).__name__)
            return None
        return copied

    def keep(self, before: Any, recorded: Sequence[RecordedEvent]) -> None:
        """Keeps ``before`` (from ``copy_for_keeping``) with ``recorded`` (its command's
        events, just committed) applied as a load would apply them, for the next checked
        load of the stream. That load asks the database whether the stream's event at the
        kept version is still the last one applied here and whether its patient's key
        still exists; otherwise the kept aggregate is dropped and the stream is loaded
        from the database. Kept aggregates hold decrypted data: they are dropped when
        their patient is forgotten here (``forget_kept``; nor is one kept after that by a
        command that committed before the erasure), and removed ``kept_seconds`` after
        they were kept (within a quarter of that again) by a timer, busy or not; they also go with
        every row memo when the database server is replaced (services.row_memo). Called
        after the commit: a failure here is logged and the aggregate is not kept."""
        if self._kept is None or not recorded:
            return
        last = recorded[-1]
        if self._forgotten.get(last.patient_id):
            return
        try:
            aggregate = before
            for record in recorded:
                aggregate = record.to_domain_event().mutate(aggregate)
        except Exception as exc:  # keeping is an optimisation: never fail the command
            log.warning("aggregate not kept: replay failed error=%s", type(exc).__name__)
            return
        if aggregate.version != last.stream_version:
            return
        self._kept.put(
            last.stream_id,
            _Kept(_state_version(type(aggregate)), last.patient_id, last.event_id, aggregate),
        )
        self._purge_later()

    def _purge_later(self) -> None:
        """Drops expired kept aggregates when they expire, even if no command comes."""
        if self._purge is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._purge = loop.call_later(self._kept_seconds / 4, self._purge_expired)

    def _purge_expired(self) -> None:
        self._purge = None
        if self._kept is not None:
            self._kept.drop_expired()
            if len(self._kept):
                self._purge_later()

    def forget_kept(self, patient_id: UUID) -> None:
        """Drops every aggregate kept for ``patient_id`` (their erasure), and keeps none
        of theirs from now on in this process (for FORGOTTEN_SECONDS; later loads see
        the destroyed key anyway)."""
        self._forgotten.put(patient_id, True)
        if self._kept is not None:
            self._kept.discard_where(lambda kept: kept.patient_id == patient_id)

    def _decrypt_with(
        self, records: list[RecordedEvent], patient_id: UUID | None, wrapped: bytes | None
    ) -> list[RecordedEvent]:
        """``decrypt`` with the stream's patient's wrapped key already read (None: the
        patient has no key, or it was destroyed: forgotten)."""
        if self._keyring is None or not records:
            return records
        record_key = self._keyring.record_key
        key = (
            None
            if wrapped is None or patient_id is None
            else self._keyring.unwrap(patient_id, bytes(wrapped))
        )
        return [
            replace(
                r,
                payload=decrypt_fields(
                    r.payload, r.patient_id, key if r.patient_id == patient_id else None, record_key
                ),
            )
            if any(map(is_encrypted, r.payload.values()))
            else r
            for r in records
        ]

    async def save_snapshot(self, aggregate: Any) -> None:
        state = aggregate.snapshot_state()
        async with self._pool.acquire() as c:
            await c.execute(
                """INSERT INTO snapshots (stream_id, stream_version, state_version, state)
                   SELECT $1, $2, $3, $4
                   -- never snapshot (in clear) the record of a forgotten patient
                   WHERE NOT EXISTS (
                       SELECT 1 FROM streams s JOIN patient_keys k ON k.patient_id = s.patient_id
                       WHERE s.stream_id = $1 AND k.wrapped_key IS NULL)
                   ON CONFLICT (stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version,
                     state_version = EXCLUDED.state_version, state = EXCLUDED.state,
                     taken_at = now()
                   WHERE snapshots.stream_version < EXCLUDED.stream_version""",
                aggregate.id,
                aggregate.version,
                _state_version(type(aggregate)),
                json.loads(json.dumps(state)),
            )


def _state_version(cls: type) -> str:
    return f"{getattr(cls, 'STREAM_TYPE', cls.__name__)}:{getattr(cls, 'SNAPSHOT_VERSION', 1)}"
