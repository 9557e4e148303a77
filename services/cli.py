"""The ``careteam`` command line: serve, migrate, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from services.logs import configure_logging
from services.settings import Settings, SettingsError, StartupError, log_format_from

# The longest lifetime ``careteam token`` mints: one working day and then some.
MAX_TOKEN_TTL_SECONDS = 24 * 3600


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        components=getattr(args, "components", None),
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.app import create_app
    from services.api.patient.reported import patient_reported_mount
    from services.fhir.routes import fhir_mount

    settings = _settings(args)
    if "api" not in settings.components:
        return _run_headless(settings)
    mounts = (fhir_mount, patient_reported_mount)
    from services.bootstrap import clock_from

    clock = clock_from(settings.test_clock_start)  # the system clock unless a test sets one
    app = create_app(settings, clock=clock, mounts=mounts, components=settings.components)
    # No permessage-deflate: care events are small JSON messages, and compressing each
    # one for every subscriber cost more CPU than the bytes it saved (bench row 6), plus
    # a zlib context per WebSocket.
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            lifespan="on",
            ws_per_message_deflate=False,
            # careteam's own logging (services/logs.py): uvicorn's access log writes each
            # request's path and query string; ours writes one line per request without them.
            log_config=None,
            access_log=False,
        )
    except SystemExit:
        # uvicorn exits 3 when the lifespan failed; a refusal careteam explains is ours.
        error = getattr(app.state, "startup_error", None)
        if isinstance(error, StartupError):
            raise error from None
        raise
    return 0


def _run_headless(settings: Settings) -> int:
    """``serve --components`` without ``api``: the named loops, until SIGTERM."""
    import signal

    from services.bootstrap import open_runtime
    from services.health import worker_probes

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        holder: dict[str, object] = {}
        # The probes answer from the start ("starting" until the runtime is open).
        async with worker_probes(settings.host, settings.health_port, holder):
            async with open_runtime(settings, components=settings.components) as runtime:
                holder["runtime"] = runtime
                await stop.wait()
        return 0

    return asyncio.run(run())


def _cmd_migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from services.database import database_dsn, migrate

    settings = _settings(args)

    async def run() -> list[int]:
        async with database_dsn(settings) as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                return await migrate(conn)
            finally:
                await conn.close()

    applied = asyncio.run(run())
    print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


def _cmd_export_schema(_args: argparse.Namespace) -> int:
    from services.api.schema import schema_sdl

    sys.stdout.write(schema_sdl())
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from uuid import UUID

    from services.auth import DevIssuer, Role

    settings = _settings(args)
    if settings.is_production or settings.oidc_jwks_url is not None:
        print("careteam: tokens come from your OIDC issuer, not the dev issuer", file=sys.stderr)
        return 2
    try:
        role = Role(args.role)
        user, org = UUID(args.user), UUID(args.org)
    except ValueError:
        print(
            "careteam: --user and --org must be UUIDs; --role one of: "
            + ", ".join(r.value for r in Role),
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.ttl <= MAX_TOKEN_TTL_SECONDS:
        print(
            f"careteam: --ttl must be from 1 to {MAX_TOKEN_TTL_SECONDS} seconds (24 h); "
            "a token that is already expired or lives longer is refused",
            file=sys.stderr,
        )
        return 2
    token = DevIssuer(settings.data_dir).mint(
        role=role, user_id=user, organisation_id=org, ttl_seconds=args.ttl
    )
    print(token)
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from uuid import UUID

    from services.bootstrap import open_runtime
    from services.seed import DemoTeam, seed_caseload

    settings = _settings(args)
    try:
        team = DemoTeam(
            organisation_id=UUID(args.org),
            care_manager_id=UUID(args.care_manager),
            pcp_id=UUID(args.pcp),
            psychiatric_consultant_id=UUID(args.psychiatrist),
        )
    except ValueError:
        print("careteam: --org and the team ids must be UUIDs", file=sys.stderr)
        return 2
    if args.patients < 1:
        print("careteam: --patients must be at least 1", file=sys.stderr)
        return 2

    def bar(done: int, total: int) -> None:
        width = 40
        filled = width * done // total
        sys.stderr.write(f"\rseeding [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    async def run() -> int:
        # The projector runs once at the end, here, rather than in the background.
        async with open_runtime(settings, run_projector=False) as runtime:
            made = await seed_caseload(
                runtime.app, team, patients=args.patients, now=runtime.clock(), progress=bar
            )
            await runtime.projector.catch_up()
        print(f"seeded {len(made)} patients for care manager {team.care_manager_id}")
        return 0

    return asyncio.run(run())


def _cmd_backfill_mrn_index(args: argparse.Namespace) -> int:
    from services.bootstrap import open_runtime
    from services.mrn_index import backfill

    settings = _settings(args)

    async def run() -> int:
        async with open_runtime(settings, run_projector=False, run_relay=False) as runtime:
            index = runtime.app.mrn_index
            if index is None:
                print("careteam: no MRN index (no keyring)", file=sys.stderr)
                return 1
            report = await backfill(runtime.store, index)
        print(
            f"indexed {report.indexed} patients; {report.forgotten} forgotten skipped; "
            f"{len(report.duplicates)} duplicates left unindexed"
        )
        for patient_id in report.duplicates:
            print(f"duplicate mrn: patient {patient_id}")
        return 0

    return asyncio.run(run())


def _cmd_backfill_search_index(args: argparse.Namespace) -> int:
    from services.bootstrap import open_runtime
    from services.patient_search import backfill

    settings = _settings(args)

    async def run() -> int:
        async with open_runtime(settings, run_projector=False, run_relay=False) as runtime:
            index = runtime.app.search_index
            if index is None:
                print("careteam: no search index (no keyring)", file=sys.stderr)
                return 1
            report = await backfill(runtime.store, index)
        print(f"indexed {report.indexed} patients; {report.forgotten} forgotten skipped")
        return 0

    return asyncio.run(run())


def _cmd_keys(args: argparse.Namespace) -> int:
    from services.bootstrap import open_runtime
    from services.crypto import master_key_status, rotate_master_key

    settings = _settings(args)
    if args.batch_size < 1:
        print("careteam: --batch-size must be at least 1", file=sys.stderr)
        return 2

    async def run() -> int:
        async with open_runtime(settings, run_projector=False, run_relay=False) as runtime:
            keyring = runtime.store.keyring
            assert keyring is not None  # open_runtime always gives the store one
            if args.action == "rotate-master":
                report = await rotate_master_key(runtime.pool, keyring, batch_size=args.batch_size)
                print(
                    f"re-wrapped {report.rewrapped} patient keys; "
                    f"{report.already_current} already current; "
                    f"{report.changed_meanwhile} changed meanwhile (forgotten or re-wrapped)"
                )
            async with runtime.pool.acquire() as conn:
                status = await master_key_status(conn, keyring)
        print(
            f"master key {keyring.current_key_id.hex()}: wraps {status['current']} patient "
            f"keys; {status['other']} wrapped by another master key; {status['destroyed']} "
            f"destroyed; {status['derived_keys_other']} derived keys wrapped by another"
        )
        return 0 if status["other"] == 0 and status["derived_keys_other"] == 0 else 1

    return asyncio.run(run())


def _cmd_backfill_clinic_zones(args: argparse.Namespace) -> int:
    from services.bootstrap import open_runtime
    from services.clinic_zones import backfill

    settings = _settings(args)

    async def run() -> int:
        async with open_runtime(settings, run_relay=False) as runtime:
            written = await backfill(runtime.app, runtime.clock())
            await runtime.projector.catch_up()
        print(f"recorded the zone of {len(written)} organisations in the log")
        return 0

    return asyncio.run(run())


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from projections.registry import all_projections, projection_tables
    from services.bootstrap import open_runtime
    from services.projector.rebuild import rebuild

    settings = _settings(args)
    projections = all_projections()
    if args.names:
        known = {p.name: p for p in projections}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            print(
                f"careteam: unknown read model {unknown}; known: {sorted(known)}",
                file=sys.stderr,
            )
            return 2
        projections = [p for p in projections if p.name in args.names]

    def bar(done: int, total: int) -> None:
        width = 40
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\rrebuilding [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()

    async def run() -> int:
        async with open_runtime(settings, run_projector=False, run_relay=False) as runtime:
            position = await rebuild(runtime.store, projections, projection_tables(), progress=bar)
        sys.stderr.write("\n")
        print(f"rebuilt {', '.join(p.name for p in projections)} up to {position.encode()}")
        return 0

    return asyncio.run(run())


def _cmd_projector(args: argparse.Namespace) -> int:
    import signal

    from services.bootstrap import open_runtime

    settings = _settings(args)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_runtime(settings, run_projector=True, run_relay=False):
            await stop.wait()
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="careteam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            help="folder for the embedded PostgreSQL data (default ./var; ignored with "
            "CARETEAM_DATABASE_URL)",
        )

    serve = sub.add_parser("serve", help="run the GraphQL API and the projector")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--components",
        help="comma-separated parts to run in this process: api, projector, relay, partners, "
        "sealer (default all, or CARETEAM_COMPONENTS)",
    )
    data_dir(serve)
    serve.set_defaults(func=_cmd_serve)

    mig = sub.add_parser("migrate", help="apply pending database migrations")
    data_dir(mig)
    mig.set_defaults(func=_cmd_migrate)

    tok = sub.add_parser(
        "token",
        help="print a development bearer token (paste into GraphiQL's headers as "
        '{"Authorization": "Bearer <token>"})',
    )
    tok.add_argument(
        "--role", required=True, help="pcp, care_manager, psychiatrist, compliance, partner, admin"
    )
    tok.add_argument("--user", required=True, help="the user's id (a UUID)")
    tok.add_argument("--org", required=True, help="the organisation's id (a UUID)")
    tok.add_argument(
        "--ttl",
        type=int,
        default=8 * 3600,
        help="lifetime in seconds, 1 to 86400 (default 8 h)",
    )
    data_dir(tok)
    tok.set_defaults(func=_cmd_token)

    from services.audit.cli import add_cli as add_audit_cli
    from services.partners.cli import add_cli as add_partners_cli
    from services.relay.cli import add_cli as add_relay_cli

    add_relay_cli(sub)
    add_partners_cli(sub)
    add_audit_cli(sub, _settings, data_dir)
    # fhir-import (services/fhir/cli.py): onboarding import over HTTP.
    from services.fhir.cli import add_cli as add_fhir_cli

    add_fhir_cli(sub)

    seed = sub.add_parser(
        "seed", help="create a realistic synthetic caseload through the domain commands"
    )
    seed.add_argument("--patients", type=int, default=150, help="how many (default 150)")
    seed.add_argument("--org", default="00000000-0000-4000-8000-000000000001")
    seed.add_argument("--care-manager", default="00000000-0000-4000-8000-0000000000c1")
    seed.add_argument("--pcp", default="00000000-0000-4000-8000-0000000000b1")
    seed.add_argument("--psychiatrist", default="00000000-0000-4000-8000-0000000000a1")
    data_dir(seed)
    seed.set_defaults(func=_cmd_seed)

    proj = sub.add_parser("projector", help="run only the projector (read models), until SIGTERM")
    data_dir(proj)
    proj.set_defaults(func=_cmd_projector)

    reb = sub.add_parser(
        "rebuild",
        help="rebuild read models from the log into new tables and swap them in "
        "(the old ones keep serving meanwhile)",
    )
    reb.add_argument("names", nargs="*", help="read models to rebuild (default: all)")
    data_dir(reb)
    reb.set_defaults(func=_cmd_rebuild)

    mrn = sub.add_parser(
        "backfill-mrn-index",
        help="index the MRNs of patients registered before the MRN index existed "
        "(idempotent; prints the ids of duplicates)",
    )
    data_dir(mrn)
    mrn.set_defaults(func=_cmd_backfill_mrn_index)

    search = sub.add_parser(
        "backfill-search-index",
        help="index the names and birth dates of patients registered before the search "
        "index existed (idempotent)",
    )
    data_dir(search)
    search.set_defaults(func=_cmd_backfill_search_index)

    keys = sub.add_parser(
        "keys",
        help="master key rotation: re-wrap every stored key by CARETEAM_MASTER_KEY, or count "
        "the keys each master key wraps",
    )
    keys.add_argument("action", choices=("rotate-master", "status"))
    keys.add_argument("--batch-size", type=int, default=500, help="patients' keys per transaction")
    data_dir(keys)
    keys.set_defaults(func=_cmd_keys)

    zones = sub.add_parser(
        "backfill-clinic-zones",
        help="record in the log the time zones organisations set before the zone was kept "
        "there, so the registry re-derives their days (idempotent)",
    )
    data_dir(zones)
    zones.set_defaults(func=_cmd_backfill_clinic_zones)

    exp = sub.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    exp.set_defaults(func=_cmd_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    try:
        configure_logging(log_format=log_format_from(os.environ))
    except SettingsError as exc:
        print(f"careteam: configuration error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"careteam: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"careteam: cannot start: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
