"""``careteam relay``: run the Kafka relay as its own process, or print its lag.

``add_cli`` registers the subcommand on the careteam parser; ``python -m services.relay``
runs the same command on its own. SIGTERM and SIGINT stop the relay between pages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.logs import configure_logging
from services.relay.relay import DEFAULT_NAME, RelayOptions, relay_lag, run_relay
from services.settings import Settings, SettingsError, StartupError, log_format_from

_DESCRIPTION = (
    "Publish every event of the log to the Kafka topic CARETEAM_KAFKA_TOPIC as a CloudEvent, "
    "at least once, from the checkpoint 'relay:internal'. SIGTERM or SIGINT stops it."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds the relay's options to ``parser``."""
    defaults = RelayOptions()
    parser.add_argument(
        "--data-dir",
        help="folder for the embedded PostgreSQL data (default ./var; ignored with "
        "CARETEAM_DATABASE_URL)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=defaults.page_size,
        help="events per page: one log read and at most one checkpoint update each "
        f"(default {defaults.page_size})",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=defaults.poll_seconds,
        help=f"how often an idle relay looks for new events (default {defaults.poll_seconds})",
    )
    parser.add_argument(
        "--publish-timeout",
        type=float,
        default=defaults.publish_timeout_seconds,
        help="seconds a page may wait for the broker's acknowledgement before the producer "
        f"is replaced (default {defaults.publish_timeout_seconds})",
    )
    parser.add_argument(
        "--lag",
        action="store_true",
        help="print the relay's checkpoint and the events behind it as JSON, then exit",
    )
    parser.set_defaults(func=command)


def add_cli(subparsers: Any) -> None:
    """Registers ``relay`` on the careteam command line (``subparsers`` of argparse)."""
    parser = subparsers.add_parser(
        "relay",
        help="publish the event log to Kafka (needs CARETEAM_KAFKA_BOOTSTRAP_SERVERS)",
        description=_DESCRIPTION,
    )
    configure_parser(parser)


def command(args: argparse.Namespace) -> int:
    """Runs the relay (or prints its lag) for the settings in the environment."""
    settings = Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    options = RelayOptions(
        page_size=args.page_size,
        poll_seconds=args.poll_seconds,
        publish_timeout_seconds=args.publish_timeout,
    )
    if args.lag:
        lag = asyncio.run(_lag(settings))
        print(json.dumps(lag))
        return 0
    if settings.kafka_bootstrap_servers is None:
        raise SettingsError("CARETEAM_KAFKA_BOOTSTRAP_SERVERS is required to run the relay")
    asyncio.run(_run(settings, options))
    return 0


async def _lag(settings: Settings) -> dict[str, object]:
    from services.database import create_pool, database_dsn

    async with database_dsn(settings) as dsn:
        pool = await create_pool(dsn, settings)
        try:
            return (await relay_lag(pool, DEFAULT_NAME)).as_json()
        finally:
            await pool.close()


async def _run(settings: Settings, options: RelayOptions) -> None:
    import asyncpg

    from services.database import create_pool, database_dsn, prepare_schema
    from services.eventstore import EventStore

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
        from services.kafka import prepare_kafka

        await prepare_kafka(settings, relay=True)
        pool = await create_pool(dsn, settings)
        try:
            store = EventStore(pool, snapshot_every=settings.snapshot_every)
            await run_relay(settings, store, stop=stop, options=options)
        finally:
            await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.relay``: the relay command without the rest of careteam's CLI."""
    import os

    try:
        configure_logging(log_format=log_format_from(os.environ))
    except SettingsError as exc:
        print(f"careteam relay: configuration error: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="careteam relay", description=_DESCRIPTION)
    configure_parser(parser)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"careteam relay: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"careteam relay: cannot start: {exc}", file=sys.stderr)
        return 2
    return code
