"""``careteam audit verify|checkpoint|check``: tamper evidence from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from services.settings import Settings


def add_cli(subparsers: Any, settings_from: Any, data_dir: Any) -> None:
    audit = subparsers.add_parser("audit", help="verify the audit chain; signed checkpoints")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser(
        "verify", help="recompute the chain; report rows edited, deleted, inserted, reordered"
    )
    verify.add_argument("--checkpoint", help="also check the chain passes this checkpoint")
    data_dir(verify)
    verify.set_defaults(func=lambda a: _run(settings_from(a), _with_checkpoint(a), _verify))
    cp = sub.add_parser("checkpoint", help="print a signed checkpoint of the chain head (JSON)")
    data_dir(cp)
    cp.set_defaults(func=lambda a: _run(settings_from(a), a, _checkpoint))
    check = sub.add_parser("check", help="check a checkpoint file's signature offline")
    check.add_argument("file")
    check.set_defaults(func=_check)


def _with_checkpoint(args: argparse.Namespace) -> argparse.Namespace:
    args.checkpoint_data = (
        json.loads(Path(args.checkpoint).read_text()) if args.checkpoint else None
    )
    return args


def _key_path(settings: Settings) -> Path:
    return settings.data_dir / "audit" / "signing-key"


def _run(settings: Settings, args: argparse.Namespace, action: Any) -> int:
    from services.database import database_dsn, migrate

    async def go() -> int:
        async with database_dsn(settings) as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
                code: int = await action(conn, settings, args)
                return code
            finally:
                await conn.close()

    return asyncio.run(go())


async def _verify(conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.chain import seal_once, verify
    from services.audit.signing import chain_passes_through, signature_ok

    while await seal_once(conn):
        pass
    report = await verify(conn)
    result = report.as_dict()
    ok = report.ok
    if args.checkpoint:
        checkpoint = args.checkpoint_data
        result["checkpoint_signature_ok"] = signature_ok(checkpoint)
        result["checkpoint_on_chain"] = await chain_passes_through(conn, checkpoint)
        ok = ok and result["checkpoint_signature_ok"] and result["checkpoint_on_chain"]
        result["ok"] = ok
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


async def _checkpoint(
    conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace
) -> int:
    from services.audit.chain import seal_once
    from services.audit.signing import load_or_create_key, make_checkpoint

    while await seal_once(conn):
        pass
    checkpoint = await make_checkpoint(conn, load_or_create_key(_key_path(settings)))
    print(json.dumps(checkpoint, indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    from services.audit.signing import signature_ok

    ok = signature_ok(json.loads(Path(args.file).read_text()))
    print("signature ok" if ok else "signature INVALID", file=sys.stdout)
    return 0 if ok else 1
