"""``careteam partners``: run the partner feeds as their own process, or show where they stand.

``careteam partners run`` supervises one worker per active Kafka or webhook partner
until SIGTERM or SIGINT; several processes may run it (each partner's lease makes one
worker deliver, the others stand by). ``careteam partners status`` prints every
partner's checkpoint, epoch and open dead letters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from services.settings import Settings


def add_cli(subparsers: Any) -> None:
    """Registers ``partners run`` and ``partners status`` on the careteam command line."""
    parser = subparsers.add_parser(
        "partners", help="partner feeds: run the workers, or print their status"
    )
    parser.add_argument(
        "--data-dir",
        help="folder for the embedded PostgreSQL data (default ./var; ignored with "
        "CARETEAM_DATABASE_URL)",
    )
    actions = parser.add_subparsers(dest="partners_action", required=True)
    actions.add_parser(
        "run", help="deliver every active partner's feed (CARETEAM_PARTNERS_* tune it)"
    ).set_defaults(func=_run_command)
    actions.add_parser("status", help="print each partner's feed position as JSON").set_defaults(
        func=_status_command
    )


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None)


def _run_command(args: argparse.Namespace) -> int:
    asyncio.run(_run(_settings(args)))
    return 0


def _status_command(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(_status(_settings(args))), indent=2))
    return 0


async def _run(settings: Settings) -> None:
    import asyncpg

    from services.database import create_pool, database_dsn, prepare_schema
    from services.eventstore import EventStore
    from services.partners.contract import Publisher
    from services.partners.delivery import PartnerOptions
    from services.partners.worker import PartnerFeeds

    options = PartnerOptions.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with database_dsn(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await prepare_schema(conn, settings)
        finally:
            await conn.close()
        from services.kafka import partner_topic_maker, prepare_kafka

        kafka_options = await prepare_kafka(settings, relay=False)
        pool = await create_pool(dsn, settings)
        try:
            store = EventStore(pool, snapshot_every=settings.snapshot_every)
            feeds = PartnerFeeds(
                store,
                dsn,
                kafka_bootstrap=settings.kafka_bootstrap_servers,
                kafka_options=kafka_options,
                make_topic=(
                    partner_topic_maker(settings, kafka_options)
                    if kafka_options is not None
                    else None
                ),
                options=options,
                publisher=Publisher(settings.public_url),
            )
            await feeds.run(stop)
        finally:
            await pool.close()


async def _status(settings: Settings) -> list[dict[str, object]]:
    from services.database import create_pool, database_dsn
    from services.partners.registry import feed_position, list_partners

    async with database_dsn(settings) as dsn:
        pool = await create_pool(dsn, settings)
        try:
            async with pool.acquire() as conn:
                out: list[dict[str, object]] = []
                for p in await list_partners(conn, include_inactive=True):
                    position, epoch = await feed_position(conn, p.partner_id)
                    dead = await conn.fetchval(
                        """SELECT count(*) FROM partner_dead_letters
                           WHERE partner_id = $1 AND status IN ('dead', 'redelivery_requested')""",
                        p.partner_id,
                    )
                    out.append(
                        {
                            "partner_id": str(p.partner_id),
                            "name": p.name,
                            "delivery": p.delivery.value,
                            "active": p.active,
                            "position": position.encode(),
                            "epoch": epoch,
                            "dead_letters": int(dead),
                        }
                    )
                return out
        finally:
            await pool.close()
