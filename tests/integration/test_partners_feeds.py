"""Partner feeds end to end below the API: real PostgreSQL, the real Kafka broker and a real
HTTP receiver on 127.0.0.1 that verifies every signature.

Events are written by the domain's own commands through the application service; the
feeds run under their supervisor (``PartnerFeeds``) exactly as ``careteam serve`` runs
them, with retry delays shrunk to milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from jsonschema import Draft202012Validator
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.patient import Patient
from domain.referral import Referral
from services.application import Application
from services.database import create_pool
from services.eventstore import START, EventMetadata, EventStore
from services.partners.contract import Pseudonyms, Publisher
from services.partners.delivery import PartnerOptions
from services.partners.registry import (
    Actor,
    DeadLetterStatus,
    DeliveryKind,
    PartnerSpec,
    dead_letters,
    feed_position,
    get_keys,
    history,
    position_before,
    register,
    replay,
    request_redelivery,
)
from services.partners.rules import REDISCLOSURE_NOTICE
from services.partners.worker import PartnerFeeds
from services.settings import Settings
from tests.integration.standbys import Standbys, child_env

ORG = UUID("00000000-0000-4000-8000-000000000001")
PARTNER_ORG = UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000b2")
ADMIN = Actor(actor_id=uuid4(), role="admin", organisation_id=ORG, request_id="test")
META = EventMetadata(actor_id=str(uuid4()), role="care_manager", organisation_id=str(ORG))
GIVEN, FAMILY, MRN = "Zebulon", "Quixworth", "MRN-7734119"
REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "services" / "partners" / "schemas"
FAST = PartnerOptions(
    poll_seconds=0.05,
    refresh_seconds=0.05,
    lease_poll_seconds=0.05,
    webhook_attempts=5,
    webhook_initial_delay_seconds=0.01,
    webhook_max_delay_seconds=0.04,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    close_timeout_seconds=5.0,
)
TIMEOUT_S = 30.0


# --- helpers ---------------------------------------------------------------------------


def phq9(total: int) -> list[int | None]:
    """PHQ-9 answers adding up to ``total`` (below 20, item 9 zero: no flags or tasks)."""
    answers: list[int | None] = []
    rest = total
    for _ in range(8):
        answers.append(min(2, rest))
        rest -= min(2, rest)
    assert rest == 0
    return [*answers, 0]


class Clinic:
    """Writes patients' care events through the application service, as users would."""

    def __init__(self, store: EventStore) -> None:
        self.app = Application(store)

    async def patient(self) -> UUID:
        now = datetime.now(UTC)
        patient = Patient.register(
            given_name=GIVEN,
            family_name=FAMILY,
            birth_date=date(1980, 5, 17),
            mrn=MRN,
            organisation_id=ORG,
            occurred_at=now,
            now=now,
        )
        patient.enroll(occurred_at=now, now=now)
        await self.app.create(patient, metadata=META, now=now)
        return patient.id

    async def on(self, patient_id: UUID, command: Callable[[Patient, datetime], Any]) -> Any:
        now = datetime.now(UTC)
        result: list[Any] = []
        await self.app.execute(
            Patient,
            patient_id,
            lambda p: result.append(command(p, now)),
            metadata=META,
            now=now,
        )
        return result[0]

    async def grant(
        self, patient_id: UUID, kind: str = "data_sharing", org: UUID = PARTNER_ORG
    ) -> UUID:
        consent: UUID = await self.on(
            patient_id,
            lambda p, now: p.grant_consent(
                kind=kind, partner_organisation_id=org, occurred_at=now, now=now
            ),
        )
        return consent

    async def revoke(self, patient_id: UUID, consent_id: UUID) -> None:
        await self.on(
            patient_id,
            lambda p, now: p.revoke_consent(consent_id=consent_id, occurred_at=now, now=now),
        )

    async def screening(self, patient_id: UUID, total: int) -> None:
        await self.on(
            patient_id,
            lambda p, now: p.record_screening(
                instrument="phq9", answers=phq9(total), occurred_at=now, now=now
            ),
        )

    async def referral(self, patient_id: UUID, service: str, *, send: bool = False) -> UUID:
        now = datetime.now(UTC)
        referral = Referral.request(
            patient_id=patient_id,
            service=service,
            reason="free text reason",
            expected_by=(now + timedelta(days=30)).date(),
            receiving_organisation_id=PARTNER_ORG,
            occurred_at=now,
            now=now,
        )
        await self.app.create(referral, metadata=META, now=now)
        if send:
            await self.app.execute(
                Referral,
                referral.id,
                lambda r: r.send(occurred_at=now, now=now),
                metadata=META,
                now=now,
            )
        return referral.id


class Receiver:
    """A partner's webhook endpoint on 127.0.0.1 that verifies signatures with the
    ``standardwebhooks`` library, as a partner's own code would (HTTP/1.1).

    ``secret`` is the secret it holds; ``also`` more it accepts (a partner mid-rotation).
    ``fail_subject`` makes it answer 503 to every message about that patient pseudonym.
    """

    def __init__(self, *, fail_first: int = 0) -> None:
        self.secret = ""
        self.also: list[str] = []
        self.url = ""
        self.failures_left = fail_first
        self.fail_subject: str | None = None
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.attempts: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/careteam/events"
        return self.url

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while request_line := await reader.readline():
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self._answer(request_line, headers, body)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, request_line: bytes, headers: dict[str, str], body: bytes) -> int:
        if not request_line.startswith(b"POST "):
            return 405
        self.requests.append((headers, body))
        event: dict[str, Any] | None = None
        for secret in [self.secret, *self.also]:
            with contextlib.suppress(WebhookVerificationError):
                event = Webhook(secret).verify(body, headers)
                break
        if event is None:
            self.rejected.append("BAD_SIGNATURE")
            return 401
        assert headers["webhook-id"] == event["id"]
        self.attempts.append(int(headers["x-careteam-delivery-attempt"]))
        if self.failures_left > 0:
            self.failures_left -= 1
            return 503
        if self.fail_subject is not None and event["subject"] == self.fail_subject:
            return 503
        self.accepted.append(event)
        return 204


async def eventually(check: Callable[[], Awaitable[bool] | bool]) -> None:
    """Polls ``check`` until it holds; fails after TIMEOUT_S."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            result = check()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.02)


def schema_errors(ce_type: str, data: dict[str, Any]) -> list[str]:
    """jsonschema's own verdict on ``data`` for a CloudEvents type."""
    key = ce_type.removeprefix("org.careteam.partner.")
    schema = json.loads((SCHEMAS / f"{key}.json").read_text())
    return [e.message for e in Draft202012Validator(schema).iter_errors(data)]


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def running_feeds(
    store: EventStore,
    dsn: str,
    *,
    kafka: str | None = None,
    options: PartnerOptions = FAST,
    clock: Callable[[], datetime] = _now,
    publisher: Publisher | None = None,
) -> AsyncIterator[PartnerFeeds]:
    """The partner feed supervisor, stopped (and awaited) on exit."""
    feeds = PartnerFeeds(
        store,
        dsn,
        kafka_bootstrap=kafka,
        options=options,
        clock=clock,
        publisher=publisher or Publisher(),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(feeds.run(stop))
    try:
        yield feeds
    finally:
        stop.set()
        await task


async def caught_up(store: EventStore, partner_id: UUID) -> bool:
    head = await store.head()
    async with store.pool.acquire() as conn:
        position, _ = await feed_position(conn, partner_id)
    return position >= head


async def disclosure_rows(store: EventStore, partner_id: UUID) -> list[dict[str, Any]]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM disclosures WHERE partner_id = $1 ORDER BY id", partner_id
        )
    return [dict(r) for r in rows]


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    """An event store on a fresh test database."""
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=8))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver that answers 204 to every correctly signed request."""
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def webhook_partner(
    store: EventStore, receiver: Receiver, types: Sequence[str] = ("patient.screening_recorded.v1",)
) -> UUID:
    """Registers a webhook partner for ``receiver`` and gives the receiver its secret."""
    async with store.pool.acquire() as conn:
        done = await register(
            conn,
            PartnerSpec(
                organisation_id=PARTNER_ORG,
                name="Community partner",
                purpose="care coordination",
                allowed_event_types=types,
                delivery=DeliveryKind.WEBHOOK,
                webhook_url=receiver.url,
            ),
            owner=ORG,
            actor=ADMIN,
            now=datetime.now(UTC),
        )
    assert done.webhook_secret is not None
    receiver.secret = done.webhook_secret
    return done.partner.partner_id


def totals(receiver: Receiver) -> list[int]:
    return [e["data"]["total"] for e in receiver.accepted]


# --- consent ---------------------------------------------------------------------------


async def test_revoking_consent_stops_the_feed_for_that_patient_and_a_new_grant_resumes_it(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Log order decides: events between the revocation and the new grant never leave."""
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    async with running_feeds(store, db_dsn):
        patient, bystander = await clinic.patient(), await clinic.patient()
        consent = await clinic.grant(patient)
        await clinic.grant(bystander, org=OTHER_ORG)
        await clinic.screening(patient, 3)
        await clinic.screening(bystander, 4)
        await eventually(lambda: len(receiver.accepted) == 1)
        await clinic.revoke(patient, consent)
        await clinic.screening(patient, 6)
        await clinic.grant(patient)
        await clinic.screening(patient, 9)
        await eventually(lambda: caught_up(store, partner_id))
    assert totals(receiver) == [3, 9]
    assert receiver.rejected == []
    assert [r["event_type"] for r in await disclosure_rows(store, partner_id)] == [
        "patient.screening_recorded"
    ] * 2


async def test_events_still_waiting_when_consent_is_revoked_are_never_sent(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """A feed that is behind honours a revocation recorded after the event."""
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    patient = await clinic.patient()
    consent = await clinic.grant(patient)
    await clinic.screening(patient, 5)
    await clinic.revoke(patient, consent)
    async with running_feeds(store, db_dsn) as feeds:
        await eventually(lambda: caught_up(store, partner_id))
        assert feeds.workers()[partner_id].status.withheld == 1
    assert receiver.accepted == []
    assert await disclosure_rows(store, partner_id) == []


# --- webhooks --------------------------------------------------------------------------


async def test_a_failing_receiver_gets_every_event_in_order_once_it_recovers_all_signed(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Retries with backoff deliver everything; every request carried a valid signature."""
    receiver.failures_left = 3
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    for total in (1, 2, 3, 4):
        await clinic.screening(patient, total)
    async with running_feeds(store, db_dsn):
        await eventually(lambda: len(receiver.accepted) == 4)
        await eventually(lambda: caught_up(store, partner_id))
    assert totals(receiver) == [1, 2, 3, 4]
    assert receiver.attempts[:4] == [1, 2, 3, 4]
    assert receiver.rejected == []
    assert len({e["id"] for e in receiver.accepted}) == 4
    for event in receiver.accepted:
        assert schema_errors(event["type"], event["data"]) == []
    rows = await disclosure_rows(store, partner_id)
    assert [(r["recipient_name"], r["purpose"], r["channel"]) for r in rows] == [
        ("Community partner", "care coordination", "webhook")
    ] * 7
    assert all("questionnaire result" in r["description"] for r in rows)
    assert [(r["outcome"], r["attempt"], r["error"]) for r in rows[:3]] == [
        ("failed", n, "HTTP_503") for n in (1, 2, 3)
    ]
    assert [r["outcome"] for r in rows[3:]] == ["delivered"] * 4


async def test_a_receiver_that_stays_down_gets_dead_letters_that_an_admin_can_redeliver(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """After the last attempt the message is dead and its patient's later one waits behind
    it; a redelivery request sends both, in order, the attempt count going on."""
    receiver.failures_left = 10**6
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    await clinic.screening(patient, 7)
    await clinic.screening(patient, 8)
    options = PartnerOptions(**{**FAST.__dict__, "webhook_attempts": 2})
    async with running_feeds(store, db_dsn, options=options):
        await eventually(lambda: caught_up(store, partner_id))
        await eventually(lambda: _statuses(store, partner_id, [DeadLetterStatus.DEAD]))
        async with store.pool.acquire() as conn:
            dead = await dead_letters(conn, partner_id)
        assert [(d.status, d.attempts, d.last_error) for d in dead] == [
            (DeadLetterStatus.DEAD, 2, "HTTP_503"),
            (DeadLetterStatus.HELD, 0, ""),
        ]
        assert [r["outcome"] for r in await disclosure_rows(store, partner_id)] == ["failed"] * 2
        receiver.failures_left = 0
        async with store.pool.acquire() as conn:
            marked = await request_redelivery(
                conn, partner_id, None, owner=ORG, actor=ADMIN, now=datetime.now(UTC)
            )
        assert marked == 1
        await eventually(lambda: len(receiver.accepted) == 2)
        await eventually(
            lambda: _statuses(
                store, partner_id, [DeadLetterStatus.REDELIVERED, DeadLetterStatus.DELIVERED]
            )
        )
    assert totals(receiver) == [7, 8]
    assert receiver.attempts[-2:] == [3, 1]
    async with store.pool.acquire() as conn:
        assert [d.attempts for d in await dead_letters(conn, partner_id)] == [3, 1]
    rows = await disclosure_rows(store, partner_id)
    assert [r["outcome"] for r in rows] == ["failed", "failed", "delivered", "delivered"]
    assert receiver.rejected == []


async def _statuses(store: EventStore, partner_id: UUID, expected: list[DeadLetterStatus]) -> bool:
    async with store.pool.acquire() as conn:
        letters = await dead_letters(conn, partner_id)
    return [d.status for d in letters][: len(expected)] == expected


async def test_a_feed_stopped_while_retrying_keeps_the_attempt_count_and_goes_on_after_restart(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """The failed attempt, its count and its due time are stored; after a restart the next
    attempt is number 2 in the header, in the database and in the admin view."""
    receiver.failures_left = 10**6
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    await clinic.screening(patient, 4)
    slow = PartnerOptions(**{**FAST.__dict__, "webhook_initial_delay_seconds": 60.0})
    async with running_feeds(store, db_dsn, options=slow):
        await eventually(lambda: _statuses(store, partner_id, [DeadLetterStatus.RETRYING]))
    async with store.pool.acquire() as conn:
        [waiting] = await dead_letters(conn, partner_id)
    assert (waiting.status, waiting.attempts) == (DeadLetterStatus.RETRYING, 1)
    assert receiver.attempts == [1]
    receiver.failures_left = 0
    later = 120.0

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=later)

    async with running_feeds(store, db_dsn, clock=clock):
        await eventually(lambda: len(receiver.accepted) == 1)
        await eventually(lambda: _statuses(store, partner_id, [DeadLetterStatus.DELIVERED]))
    assert totals(receiver) == [4]
    assert receiver.attempts == [1, 2]
    async with store.pool.acquire() as conn:
        [done] = await dead_letters(conn, partner_id)
    assert done.attempts == 2
    assert [r["outcome"] for r in await disclosure_rows(store, partner_id)] == [
        "failed",
        "delivered",
    ]


# --- replay ----------------------------------------------------------------------------


async def test_a_replay_from_a_position_or_a_time_sends_the_feed_again_with_the_same_ids(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Replays re-disclose (and are accounted); partners drop duplicates by CloudEvent id."""
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    await clinic.screening(patient, 1)
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await clinic.screening(patient, 2)
    async with running_feeds(store, db_dsn):
        await eventually(lambda: len(receiver.accepted) == 2)
        first_ids = [e["id"] for e in receiver.accepted]
        async with store.pool.acquire() as conn:
            await replay(
                conn, partner_id, START, owner=ORG, actor=ADMIN, now=datetime.now(UTC), requested={}
            )
        await eventually(lambda: len(receiver.accepted) == 4)
        async with store.pool.acquire() as conn:
            after = await position_before(conn, between)
            await replay(
                conn, partner_id, after, owner=ORG, actor=ADMIN, now=datetime.now(UTC), requested={}
            )
        await eventually(lambda: len(receiver.accepted) == 5)
        await eventually(lambda: caught_up(store, partner_id))
    assert totals(receiver) == [1, 2, 1, 2, 2]
    assert [e["id"] for e in receiver.accepted[2:4]] == first_ids
    assert len(await disclosure_rows(store, partner_id)) == 5
    async with store.pool.acquire() as conn:
        changes = [c.change.value for c in await history(conn, partner_id)]
        _, epoch = await feed_position(conn, partner_id)
    assert changes == ["registered", "replayed", "replayed"]
    assert epoch == 2


# --- Kafka -----------------------------------------------------------------------------


@pytest.fixture
async def partner_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A fresh three-partition topic for one partner, deleted afterwards."""
    name = f"test.partner.{uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def consume(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """``count`` records from the start of ``topic``, plus any that follow within a second."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


@pytest.mark.kafka
async def test_a_kafka_feed_carries_only_allowed_consented_types_keyed_by_pseudonym(
    store: EventStore, db_dsn: str, kafka_bootstrap: str, partner_topic: str
) -> None:
    """Types, consent, Part 2, schemas and pseudonymous keys, checked on the real topic."""
    allowed = ("patient.screening_recorded.v1", "referral.requested.v1", "referral.sent.v1")
    async with store.pool.acquire() as conn:
        done = await register(
            conn,
            PartnerSpec(
                organisation_id=PARTNER_ORG,
                name="Health plan",
                purpose="care coordination",
                allowed_event_types=allowed,
                delivery=DeliveryKind.KAFKA,
                kafka_topic=partner_topic,
            ),
            owner=ORG,
            actor=ADMIN,
            now=datetime.now(UTC),
        )
        keys = await get_keys(conn, done.partner.partner_id)
    pseudonyms = Pseudonyms(keys.pseudonym_key)
    clinic = Clinic(store)
    sharing_only, with_part2, elsewhere = [await clinic.patient() for _ in range(3)]
    await clinic.grant(sharing_only)
    await clinic.grant(with_part2)
    await clinic.grant(with_part2, kind="part2")
    await clinic.grant(elsewhere, org=OTHER_ORG)
    await clinic.screening(sharing_only, 5)
    await clinic.referral(sharing_only, "substance_use_treatment", send=True)  # Part 2: withheld
    await clinic.referral(sharing_only, "psychotherapy", send=True)
    await clinic.referral(with_part2, "substance_use_treatment", send=True)
    await clinic.screening(elsewhere, 6)
    async with running_feeds(store, db_dsn, kafka=kafka_bootstrap):
        records = await consume(kafka_bootstrap, partner_topic, 5)
        await eventually(lambda: caught_up(store, done.partner.partner_id))

    assert len(records) == 5
    allowed_types = {f"org.careteam.partner.{k}" for k in allowed}
    internal_ids = {str(p) for p in (sharing_only, with_part2, elsewhere)}
    part2_subjects = []
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        data = json.loads(record.value)
        assert headers["ce_type"] in allowed_types
        assert schema_errors(headers["ce_type"], data) == []
        assert record.key.decode() == headers["ce_subject"] == data["patient"]
        everything = record.key.decode() + record.value.decode() + "".join(headers.values())
        for forbidden in (GIVEN, FAMILY, MRN, "free text", *internal_ids):
            assert forbidden not in everything
        if "confidentiality" in data:
            assert headers["ce_confidentiality"] == "42-CFR-Part-2"
            assert data["confidentiality"]["notice"] == REDISCLOSURE_NOTICE
            part2_subjects.append(data["patient"])
    assert part2_subjects == [pseudonyms.patient(with_part2)] * 2
    subjects = {json.loads(r.value)["patient"] for r in records}
    assert subjects == {pseudonyms.patient(sharing_only), pseudonyms.patient(with_part2)}
    by_key: dict[bytes, set[int]] = {}
    for record in records:
        by_key.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())
    rows = await disclosure_rows(store, done.partner.partner_id)
    assert len(rows) == 5
    assert sum(r["part2"] for r in rows) == 2
    assert {r["channel"] for r in rows} == {"kafka"}


# --- failover between processes ---------------------------------------------------------


async def test_killing_the_partner_worker_process_hands_the_feed_to_a_standby_in_order(
    store: EventStore, receiver: Receiver, db_dsn: str, tmp_path: Path
) -> None:
    """Two ``careteam partners run`` processes: one holds the partner's lease, one stands
    by. Under a stream of screenings the holder is killed with SIGKILL three times (a new
    standby started each time): a standby takes the feed each time, and the receiver has
    every screening of every patient, none missing, in each patient's order."""
    clinic = Clinic(store)
    partner = await webhook_partner(store, receiver)
    patients = [await clinic.patient() for _ in range(4)]
    for patient in patients:
        await clinic.grant(patient)
    copies = Standbys(
        [sys.executable, "-m", "services.cli", "partners", "run"],
        child_env(
            CARETEAM_DATABASE_URL=db_dsn,
            CARETEAM_DATA_DIR=str(tmp_path),
            CARETEAM_PARTNERS_POLL_SECONDS="0.05",
            CARETEAM_PARTNERS_REFRESH_SECONDS="0.2",
            CARETEAM_PARTNERS_LEASE_POLL_SECONDS="0.2",
        ),
        tmp_path,
        "partner feed following the log",
        REPO,
    )
    written: dict[UUID, list[int]] = {p: [] for p in patients}
    stop = asyncio.Event()

    async def stream() -> None:
        rounds = 0
        while not stop.is_set():
            rounds += 1
            for index, patient in enumerate(patients):  # a sequence of totals per patient
                total = (rounds * (index + 1)) % 16 + 1
                await clinic.screening(patient, total)
                written[patient].append(total)

    writing = asyncio.create_task(stream())
    takeovers: list[float] = []
    try:
        copies.start()
        copies.start()
        for _ in range(3):
            await asyncio.sleep(0.5)
            takeovers.append(await copies.kill_leader())
            copies.start()
        await asyncio.sleep(0.3)
        stop.set()
        await writing
        await eventually(lambda: caught_up(store, partner))
    finally:
        stop.set()
        await asyncio.gather(writing, return_exceptions=True)
        await copies.stop()
    print(
        f"partner takeover seconds after SIGKILL: {[round(t, 2) for t in takeovers]}; "
        f"{sum(map(len, written.values()))} screenings, {len(receiver.accepted)} deliveries"
    )
    # Duplicates (a page delivered, then killed before its checkpoint) drop by id.
    seen: set[str] = set()
    by_subject: dict[str, list[int]] = {}
    for event in receiver.accepted:
        if event["id"] not in seen:
            seen.add(event["id"])
            by_subject.setdefault(event["subject"], []).append(event["data"]["total"])
    assert sorted(by_subject.values()) == sorted(written.values())
