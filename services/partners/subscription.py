"""The GraphQL subscription channel of a partner feed.

A partner whose delivery is ``graphql`` subscribes with a partner token of its own
organisation. The stream starts after ``after`` (a ``sequence`` value it received
before) or, without one, at the feed's checkpoint, and follows the log from there with
the same selection as every other channel. Each message is recorded as a disclosure
when it is handed to the socket (the accounting errs on the side of a row too many),
and the checkpoint follows what was handed over, so a partner that reconnects without
``after`` continues where it stopped. A replay by an administrator moves the checkpoint
and bumps the epoch; the open stream notices and jumps there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from services.eventstore import EventStore, LogPosition
from services.partners import disclosures
from services.partners.contract import Pseudonyms, Publisher
from services.partners.delivery import PartnerOptions
from services.partners.feed import Selector
from services.partners.messages import PartnerMessage
from services.partners.registry import DeliveryKind, Partner, feed_position, get_keys, get_partner


class FeedClosedError(Exception):
    """The partner was deactivated or moved to another channel; the stream ends."""


async def follow(
    store: EventStore,
    partner: Partner,
    *,
    after: LogPosition | None,
    clock: Callable[[], datetime],
    publisher: Publisher,
    options: PartnerOptions | None = None,
) -> AsyncIterator[PartnerMessage]:
    """Yields the partner's messages in log order, live, until cancelled or closed."""
    options = options or PartnerOptions()
    pool = store.pool
    async with pool.acquire() as conn:
        keys = await get_keys(conn, partner.partner_id)
        stored, epoch = await feed_position(conn, partner.partner_id)
    selector = Selector(partner, Pseudonyms(keys.pseudonym_key), clock, publisher)
    position = after if after is not None else stored
    while True:
        async with pool.acquire() as conn:
            current = await get_partner(conn, partner.partner_id)
            if not current.active or current.delivery is not DeliveryKind.GRAPHQL:
                raise FeedClosedError
            if current.version != partner.version:
                partner = current
                selector = Selector(partner, Pseudonyms(keys.pseudonym_key), clock, publisher)
            stored, now_epoch = await feed_position(conn, partner.partner_id)
            if now_epoch != epoch:
                position, epoch = stored, now_epoch
            events = await store.read_log(
                position, limit=options.page_size, conn=conn, decrypt=False
            )
            selection = await selector.select(conn, events) if events else None
        if selection is None:
            await asyncio.sleep(options.poll_seconds)
            continue
        for message in selection.messages:
            async with pool.acquire() as conn:
                await disclosures.record(
                    conn, partner, [message], channel=DeliveryKind.GRAPHQL, at=clock()
                )
            yield message
            position = message.event.log_position
            await _save(store, partner, epoch, position)
        position = events[-1].log_position
        await _save(store, partner, epoch, position)


async def _save(store: EventStore, partner: Partner, epoch: int, position: LogPosition) -> None:
    """Moves the stored checkpoint forward (never back; a replay's epoch wins)."""
    async with store.pool.acquire() as conn:
        await conn.execute(
            """UPDATE partner_feeds SET tx_id = $3::text::xid8, position = $4, updated_at = now()
               WHERE partner_id = $1 AND epoch = $2
                 AND (tx_id, position) < ($3::text::xid8, $4::bigint)""",
            partner.partner_id,
            epoch,
            str(position.tx_id),
            position.position,
        )
