"""Webhook signatures seen by a partner: real deliveries to a real local HTTP receiver,
verified with the ``standardwebhooks`` package, before, during and after a secret rotation.

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
from services.partners.registry import (
    ChangeKind,
    PartnerRegistryError,
    PartnerUpdate,
    get_keys,
    history,
    update,
)
from services.partners.signing import new_secret
from services.settings import Settings
from tests.integration.test_partners_feeds import (
    ADMIN,
    ORG,
    Clinic,
    Receiver,
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
