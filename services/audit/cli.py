"""``careteam audit verify|seal|check|keygen|disclosures|export``: audit evidence from the
command line.

Exit status: 0 when nothing was found, 1 on any finding (or a refused seal), 2 on bad
input or configuration (nothing written).
"""

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
    audit = subparsers.add_parser(
        "audit", help="verify and seal the audit chain; signed checkpoints; exports"
    )
    sub = audit.add_subparsers(dest="audit_command", required=True)

    verify = sub.add_parser(
        "verify",
        help="recompute the chain and compare it with the latest published checkpoint; "
        "never writes; exit 1 on any finding",
    )
    verify.add_argument("--checkpoint", help="also compare with this checkpoint file")
    verify.add_argument("--public-key", help="pinned public key (JWK or JWK set file)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    data_dir(verify)
    verify.set_defaults(func=lambda a: _run(settings_from(a), a, _verify))

    seal = sub.add_parser(
        "seal",
        help="verify, then seal every pending row and publish a signed checkpoint "
        "(refuses on any finding)",
    )
    seal.add_argument("--json", action="store_true", help="machine-readable output")
    data_dir(seal)
    seal.set_defaults(func=lambda a: _run(settings_from(a), a, _seal))

    lists = sub.add_parser(
        "list-rows",
        help="whether a read of several patients is one access-log row (status), or turn "
        "that on once every process runs this release (enable)",
    )
    lists.add_argument("action", choices=("status", "enable"))
    data_dir(lists)
    lists.set_defaults(func=lambda a: _run(settings_from(a), a, _list_rows))

    check = sub.add_parser(
        "check", help="check a checkpoint file's signature offline against a pinned key"
    )
    check.add_argument("file")
    check.add_argument("--public-key", help="pinned public key (JWK or JWK set file)")
    data_dir(check)
    check.set_defaults(func=lambda a: _check(settings_from(a), a))

    keygen = sub.add_parser(
        "keygen",
        help="make a new checkpoint signing key (private JWK file, mode 0600) and print "
        "its public JWK",
    )
    keygen.add_argument("--kid", required=True, help="the key id, e.g. audit-2026-12")
    keygen.add_argument("--out", required=True, help="where to write the private key")
    keygen.set_defaults(func=_keygen)

    accounting = sub.add_parser(
        "disclosures",
        help="one patient's accounting of disclosures (45 CFR 164.528), with any audit "
        "finding about them; exit 1 on a finding",
    )
    accounting.add_argument("--patient", required=True, help="the patient (UUID)")
    accounting.add_argument("--since", help="from (ISO 8601; default six years before --until)")
    accounting.add_argument("--until", help="to, exclusive (ISO 8601; default now)")
    accounting.add_argument("--public-key", help="pinned public key (JWK or JWK set file)")
    accounting.add_argument("--json", action="store_true", help="machine-readable output")
    data_dir(accounting)
    accounting.set_defaults(func=lambda a: _accounting(settings_from(a), a))

    from services.audit.export import add_export_cli

    add_export_cli(sub, settings_from, data_dir, _run)


def _run(settings: Settings, args: argparse.Namespace, action: Any) -> int:
    from services.audit.signing import AuditKeyError
    from services.database import database_dsn, pending_migrations

    async def go() -> int:
        async with database_dsn(settings) as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                if pending := await pending_migrations(conn):
                    print(
                        f"careteam: migrations {pending} are pending; run careteam migrate",
                        file=sys.stderr,
                    )
                    return 2
                code: int = await action(conn, settings, args)
                return code
            finally:
                await conn.close()

    try:
        return asyncio.run(go())
    except AuditKeyError as exc:
        print(f"careteam: {exc}", file=sys.stderr)
        return 2


def _print_verification(result: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    from services.audit.findings import render_text

    if as_json:
        out = result.report.as_dict()
        out["checkpoint"] = result.checkpoint.as_dict() if result.checkpoint else None
        out.update(extra or {})
        print(json.dumps(out, indent=2))
    else:
        sys.stdout.write(render_text(result.findings, result.summary))


async def _verify(conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.evidence import verify_all
    from services.audit.signing import load_pinned_keys

    pinned = load_pinned_keys(settings, Path(args.public_key) if args.public_key else None)
    result = await verify_all(
        conn,
        settings,
        pinned,
        extra_checkpoint=Path(args.checkpoint) if args.checkpoint else None,
    )
    _print_verification(result, args.json)
    return 0 if result.ok else 1


async def _list_rows(conn: asyncpg.Connection, _s: Settings, args: argparse.Namespace) -> int:
    """List rows are off on a database that had reads before they existed, until no
    release older than them can run (docs/operations.md, "Rolling deploys")."""
    if args.action == "enable":
        await conn.execute(
            "UPDATE access_log_list_rows SET enabled = true, changed_at = now() WHERE NOT enabled"
        )
    row = await conn.fetchrow("SELECT enabled, changed_at FROM access_log_list_rows")
    assert row is not None  # migration 0084 writes the one row
    state = "on" if row["enabled"] else "off"
    print(f"access-log list rows: {state} (since {row['changed_at'].isoformat()})")
    return 0


async def _seal(conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.chain import seal_all
    from services.audit.evidence import verify_all
    from services.audit.signing import (
        checkpoint_dir,
        load_pinned_keys,
        load_signing_key,
        publish,
        sign_head,
    )

    key = load_signing_key(settings, create=True)
    if key.development:
        print(
            "careteam: signing with a development key kept in the data folder "
            "(set CARETEAM_AUDIT_SIGNING_KEY_FILE to a key kept elsewhere)",
            file=sys.stderr,
        )
    result = await verify_all(conn, settings, load_pinned_keys(settings, None))
    if not result.ok:
        print("careteam: the chain has findings; nothing sealed", file=sys.stderr)
        _print_verification(result, args.json)
        return 1
    added = await seal_all(conn)
    token, body = await sign_head(conn, key)
    path = publish(checkpoint_dir(settings), token, body)
    if args.json:
        print(json.dumps({"sealed": added, "checkpoint": str(path), **body}, indent=2))
    else:
        print(
            f"sealed {added} row(s); chain head {body['head_seq']} {body['head_hash']}\n"
            f"checkpoint published: {path} (key {key.kid})"
        )
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.signing import (
        AuditKeyError,
        CheckpointError,
        load_pinned_keys,
        read_checkpoint,
    )

    try:
        pinned = load_pinned_keys(settings, Path(args.public_key) if args.public_key else None)
        text = Path(args.file).read_text()
    except AuditKeyError as exc:
        print(f"careteam: {exc}", file=sys.stderr)
        return 2
    except OSError:
        print(f"careteam: FILE {args.file} cannot be read", file=sys.stderr)
        return 2
    try:
        checkpoint = read_checkpoint(text, pinned, Path(args.file).name)
    except CheckpointError as exc:
        print(f"checkpoint INVALID: {exc}")
        return 1
    print(
        f"checkpoint ok: {checkpoint.head_seq} links, head {checkpoint.head_hash}, signed "
        f"{checkpoint.issued_at.isoformat(timespec='seconds')} by key {checkpoint.kid} "
        f"(pinned by {pinned.origin})"
    )
    return 0


def _accounting(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from services.audit.accounting import AccountingArgumentError, parse_accounting

    try:
        request = parse_accounting(args.patient, args.since, args.until, datetime.now(UTC))
    except AccountingArgumentError as exc:
        print(f"careteam: {exc}", file=sys.stderr)
        return 2

    async def go(conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace) -> int:
        from services.audit.accounting import disclosures_of, patient_findings, render
        from services.audit.evidence import verify_all
        from services.audit.signing import load_pinned_keys

        pinned = load_pinned_keys(settings, Path(args.public_key) if args.public_key else None)
        result = await verify_all(conn, settings, pinned)
        findings = patient_findings(result.findings, request.patient_id)
        rows = await disclosures_of(conn, request)
        sys.stdout.write(render(request, rows, findings, as_json=args.json))
        return 1 if findings else 0

    return _run(settings, args, go)


def _keygen(args: argparse.Namespace) -> int:
    from services.audit.signing import AuditKeyError, generate_key, public_jwk, write_private_key

    out = Path(args.out)
    try:
        key = generate_key(args.kid)
        write_private_key(key, out)
    except AuditKeyError as exc:
        print(f"careteam: {exc}", file=sys.stderr)
        return 2
    except FileExistsError:
        print(f"careteam: --out {out} exists; keys are never overwritten", file=sys.stderr)
        return 2
    print(json.dumps({"keys": [public_jwk(key)]}, indent=2))
    return 0
