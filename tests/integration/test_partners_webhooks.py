"""Webhooks as a partner sees them: real deliveries to a real local HTTP receiver that
verifies with the ``standardwebhooks`` package, before, during and after a secret
rotation; and each patient's order kept while one patient's messages fail.

The feeds run under their supervisor against a real PostgreSQL; the worker's clock can
be moved forward so that a rotation's overlap ends without waiting for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.database import create_pool
from services.eventstore import EventStore
from services.partners.contract import Pseudonyms
from services.partners.delivery import PartnerOptions
from services.partners.registry import (
    ChangeKind,
    DeadLetter,
    DeadLetterStatus,
    PartnerRegistryError,
    PartnerUpdate,
    dead_letters,
    get_keys,
    history,
    request_redelivery,
    update,
)
from services.partners.signing import new_secret
from services.settings import Settings
from tests.integration.test_partners_feeds import (
    ADMIN,
    ORG,
    Clinic,
    Receiver,
    caught_up,
    disclosure_rows,
    eventually,
    running_feeds,
    webhook_partner,
)

OVERLAP = timedelta(hours=1)


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
    """A webhook receiver verifying with the standardwebhooks package."""
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


class MovableClock:
    """Now, plus however far a test has moved it forward."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def verifies(secret: str, request: tuple[dict[str, str], bytes]) -> bool:
    """Whether the stock Standard Webhooks verifier accepts the request under ``secret``."""
    headers, body = request
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def rotate(store: EventStore, partner_id: UUID, now: datetime) -> str:
    async with store.pool.acquire() as conn:
        done = await update(
            conn,
            partner_id,
            PartnerUpdate(rotate_webhook_secret=True),
            owner=ORG,
            actor=ADMIN,
            now=now,
            secret_overlap=OVERLAP,
        )
    assert done.webhook_secret is not None
    return done.webhook_secret


async def test_deliveries_verify_with_the_standard_library_before_during_and_after_a_rotation(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Old secret only before; both during the overlap; only the new one after it ends."""
    partner_id = await webhook_partner(store, receiver)
    old, stranger = receiver.secret, new_secret()
    clock = MovableClock()
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    async with running_feeds(store, db_dsn, clock=clock):
        await clinic.screening(patient, 1)
        await eventually(lambda: len(receiver.accepted) == 1)
        before = receiver.requests[-1]
        new = await rotate(store, partner_id, clock())
        receiver.secret, receiver.also = new, []  # the partner deploys the new secret at once
        await clinic.screening(patient, 2)
        await eventually(lambda: len(receiver.accepted) == 2)
        during = receiver.requests[-1]
        clock.ahead = OVERLAP + timedelta(minutes=1)
        await clinic.screening(patient, 3)
        await eventually(lambda: len(receiver.accepted) == 3)
        after = receiver.requests[-1]
    assert receiver.rejected == []
    assert [verifies(s, before) for s in (old, new, stranger)] == [True, False, False]
    assert [verifies(s, during) for s in (old, new, stranger)] == [True, True, False]
    assert [verifies(s, after) for s in (old, new, stranger)] == [False, True, False]
    assert len(during[0]["webhook-signature"].split(" ")) == 2
    assert len(after[0]["webhook-signature"].split(" ")) == 1
    assert [h["webhook-id"] for h, _ in (before, during, after)] == [
        e["id"] for e in receiver.accepted
    ]


async def test_a_receiver_holding_only_a_retired_or_wrong_secret_refuses_every_delivery(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Once the overlap ended, a partner still on the old secret gets nothing it can verify."""
    partner_id = await webhook_partner(store, receiver)
    old = receiver.secret
    clock = MovableClock()
    new = await rotate(store, partner_id, clock())
    clock.ahead = OVERLAP + timedelta(minutes=1)
    clinic = Clinic(store)
    patient = await clinic.patient()
    await clinic.grant(patient)
    receiver.secret, receiver.also = old, [new_secret()]
    async with running_feeds(store, db_dsn, clock=clock):
        await clinic.screening(patient, 4)
        await eventually(lambda: len(receiver.rejected) >= 1)
    assert receiver.accepted == []
    assert all(verifies(new, r) and not verifies(old, r) for r in receiver.requests)


async def test_a_rotation_while_one_is_in_progress_is_a_typed_error_that_changes_nothing(
    store: EventStore, receiver: Receiver
) -> None:
    """The second rotation names its field; the keys and the history stay as they were."""
    partner_id = await webhook_partner(store, receiver)
    now = datetime.now(UTC)
    await rotate(store, partner_id, now)
    async with store.pool.acquire() as conn:
        keys_before = await get_keys(conn, partner_id)
        changes_before = await history(conn, partner_id)
    with pytest.raises(PartnerRegistryError) as refused:
        await rotate(store, partner_id, now + OVERLAP - timedelta(seconds=1))
    assert (refused.value.code, refused.value.field) == (
        "ROTATION_IN_PROGRESS",
        "rotate_webhook_secret",
    )
    async with store.pool.acquire() as conn:
        assert await get_keys(conn, partner_id) == keys_before
        assert await history(conn, partner_id) == changes_before
    assert [c.change for c in changes_before][-1] is ChangeKind.SECRET_ROTATED
    third = await rotate(store, partner_id, now + OVERLAP)
    async with store.pool.acquire() as conn:
        keys_after = await get_keys(conn, partner_id)
    assert keys_after.webhook_secret is not None
    assert keys_after.webhook_secret.reveal() == third


# --- per-patient order, failures isolated ----------------------------------------------

PATIENT_ORDER = PartnerOptions(
    poll_seconds=0.05,
    refresh_seconds=0.05,
    lease_poll_seconds=0.05,
    webhook_attempts=10_000,
    webhook_initial_delay_seconds=0.02,
    webhook_max_delay_seconds=0.05,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    close_timeout_seconds=5.0,
)


async def pseudonym_of(store: EventStore, partner_id: UUID, patient_id: UUID) -> str:
    async with store.pool.acquire() as conn:
        keys = await get_keys(conn, partner_id)
    return Pseudonyms(keys.pseudonym_key).patient(patient_id)


def totals_of(receiver: Receiver, subject: str) -> list[int]:
    return [e["data"]["total"] for e in receiver.accepted if e["subject"] == subject]


def attempts_of(receiver: Receiver, message_id: str) -> list[int]:
    return [
        int(h["x-careteam-delivery-attempt"])
        for h, _ in receiver.requests
        if h["webhook-id"] == message_id
    ]


async def stored(store: EventStore, partner_id: UUID) -> list[DeadLetter]:
    async with store.pool.acquire() as conn:
        return await dead_letters(conn, partner_id)


async def test_a_patient_whose_messages_keep_failing_holds_back_only_their_own_later_messages(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """Other patients arrive while one patient's fail; that patient's then arrive in order,
    each once, and the attempt count agrees in the header, the database and the accounting."""
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    failing, steady, third = [await clinic.patient() for _ in range(3)]
    for patient in (failing, steady, third):
        await clinic.grant(patient)
    receiver.fail_subject = await pseudonym_of(store, partner_id, failing)
    steady_subject = await pseudonym_of(store, partner_id, steady)
    third_subject = await pseudonym_of(store, partner_id, third)
    async with running_feeds(store, db_dsn, options=PATIENT_ORDER):
        await clinic.screening(failing, 1)
        await clinic.screening(steady, 1)
        await clinic.screening(failing, 2)
        await clinic.screening(third, 1)
        await clinic.screening(steady, 2)
        await clinic.screening(failing, 3)
        await eventually(lambda: len(receiver.accepted) == 3)
        await clinic.screening(steady, 3)
        await eventually(lambda: totals_of(receiver, steady_subject) == [1, 2, 3])
        await eventually(lambda: len(receiver.attempts) >= 8)
        assert totals_of(receiver, receiver.fail_subject) == []
        assert totals_of(receiver, third_subject) == [1]
        waiting = await stored(store, partner_id)
        assert [d.status for d in waiting] == [
            DeadLetterStatus.RETRYING,
            DeadLetterStatus.HELD,
            DeadLetterStatus.HELD,
        ]
        assert waiting[0].attempts >= 2
        assert {d.patient_id for d in waiting} == {failing}
        receiver.fail_subject = None
        failing_subject = await pseudonym_of(store, partner_id, failing)
        await eventually(lambda: totals_of(receiver, failing_subject) == [1, 2, 3])
        await eventually(lambda: caught_up(store, partner_id))
    ids = [e["id"] for e in receiver.accepted]
    assert len(ids) == len(set(ids)) == 7
    assert receiver.rejected == []
    done = await stored(store, partner_id)
    assert [d.status for d in done] == [DeadLetterStatus.DELIVERED] * 3
    first = next(e for e in receiver.accepted if e["subject"] == failing_subject)
    header_attempts = attempts_of(receiver, first["id"])
    assert header_attempts == list(range(1, done[0].attempts + 1))
    assert [d.attempts for d in done[1:]] == [1, 1]
    rows = [r for r in await disclosure_rows(store, partner_id) if r["patient_id"] == failing]
    failed = [r["attempt"] for r in rows if r["outcome"] == "failed"]
    assert failed == list(range(1, done[0].attempts))
    assert [r["message_id"] for r in rows if r["outcome"] == "delivered"] == [
        e["id"] for e in receiver.accepted if e["subject"] == failing_subject
    ]


async def test_dead_lettering_and_redelivery_keep_a_patients_order(
    store: EventStore, db_dsn: str, receiver: Receiver
) -> None:
    """A dead message holds its patient's later ones, even those recorded after it died;
    a redelivery sends them all in log order, the dead one's attempt count going on."""
    partner_id = await webhook_partner(store, receiver)
    clinic = Clinic(store)
    failing, steady = await clinic.patient(), await clinic.patient()
    await clinic.grant(failing)
    await clinic.grant(steady)
    failing_subject = await pseudonym_of(store, partner_id, failing)
    steady_subject = await pseudonym_of(store, partner_id, steady)
    receiver.fail_subject = failing_subject
    options = PartnerOptions(**{**PATIENT_ORDER.__dict__, "webhook_attempts": 3})
    async with running_feeds(store, db_dsn, options=options):
        await clinic.screening(failing, 1)
        await clinic.screening(failing, 2)
        await clinic.screening(steady, 1)
        await eventually(lambda: _first_is_dead(store, partner_id))
        receiver.fail_subject = None  # the partner is fixed; the dead message still waits
        await clinic.screening(failing, 3)
        await clinic.screening(steady, 2)
        await eventually(lambda: totals_of(receiver, steady_subject) == [1, 2])
        await eventually(lambda: caught_up(store, partner_id))
        assert totals_of(receiver, failing_subject) == []
        view = await stored(store, partner_id)
        assert [(d.status, d.attempts) for d in view] == [
            (DeadLetterStatus.DEAD, 3),
            (DeadLetterStatus.HELD, 0),
            (DeadLetterStatus.HELD, 0),
        ]
        async with store.pool.acquire() as conn:
            marked = await request_redelivery(
                conn, partner_id, [view[0].id], owner=ORG, actor=ADMIN, now=datetime.now(UTC)
            )
        assert marked == 1
        await eventually(lambda: totals_of(receiver, failing_subject) == [1, 2, 3])
    first = next(e for e in receiver.accepted if e["subject"] == failing_subject)
    assert attempts_of(receiver, first["id"]) == [1, 2, 3, 4]
    done = await stored(store, partner_id)
    assert [(d.status, d.attempts) for d in done] == [
        (DeadLetterStatus.REDELIVERED, 4),
        (DeadLetterStatus.DELIVERED, 1),
        (DeadLetterStatus.DELIVERED, 1),
    ]
    ids = [e["id"] for e in receiver.accepted]
    assert len(ids) == len(set(ids)) == 5


async def _first_is_dead(store: EventStore, partner_id: UUID) -> bool:
    letters = await stored(store, partner_id)
    return bool(letters) and letters[0].status is DeadLetterStatus.DEAD
