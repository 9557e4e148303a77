"""The whole check: the chain against its rows, and against the published checkpoints.

``verify`` alone cannot notice a chain that was truncated and rebuilt from tampered
rows: the rebuilt chain is consistent with itself. A checkpoint published outside the
database pins the head as it was; a chain that no longer passes through it was rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.audit.chain import ChainReport, verify
from services.audit.findings import Finding, FindingKind
from services.audit.signing import (
    Checkpoint,
    CheckpointError,
    PinnedKeys,
    checkpoint_dir,
    read_checkpoint,
    read_published,
)
from services.database import Conn
from services.settings import Settings


@dataclass
class Verification:
    report: ChainReport
    checkpoint: Checkpoint | None
    summary: list[str]

    @property
    def findings(self) -> list[Finding]:
        return self.report.findings

    @property
    def ok(self) -> bool:
        return self.report.ok


async def against_checkpoint(conn: Conn, checkpoint: Checkpoint) -> list[Finding]:
    """A finding when the chain no longer passes through the checkpoint's head."""
    if checkpoint.head_seq == 0:
        return []
    row = await conn.fetchrow(
        "SELECT link_hash FROM audit_chain WHERE seq = $1", checkpoint.head_seq
    )
    issued = checkpoint.issued_at.isoformat(timespec="seconds")
    if row is None:
        length = await conn.fetchval("SELECT count(*) FROM audit_chain")
        detail = (
            f"the checkpoint {checkpoint.origin} signed at {issued} (key {checkpoint.kid}) "
            f"saw {checkpoint.head_seq} links; the chain now has {length}"
        )
    elif bytes(row["link_hash"]).hex() != checkpoint.head_hash:
        detail = (
            f"link {checkpoint.head_seq} differs from the checkpoint {checkpoint.origin} "
            f"signed at {issued} (key {checkpoint.kid}): the chain was recomputed"
        )
    else:
        return []
    return [
        Finding(
            table="audit_chain",
            key=checkpoint.head_seq,
            kind=FindingKind.CHAIN_REBUILT,
            patient_id=None,
            since=checkpoint.issued_at,
            detail=detail,
        )
    ]


def _forged(error: CheckpointError) -> Finding:
    return Finding(
        table="checkpoints",
        key=None,
        kind=FindingKind.FORGED_CHECKPOINT,
        patient_id=None,
        since=None,
        detail=str(error),
    )


def _read_file(path: Path, pinned: PinnedKeys) -> Checkpoint:
    try:
        text = path.read_text()
    except OSError:
        raise CheckpointError(f"{path.name}: cannot be read") from None
    return read_checkpoint(text, pinned, path.name)


async def verify_all(
    conn: Conn,
    settings: Settings,
    pinned: PinnedKeys,
    *,
    extra_checkpoint: Path | None = None,
) -> Verification:
    """Recomputes the chain and compares it with the latest published checkpoint (and
    ``extra_checkpoint``); every mismatch and every checkpoint that fails its signature
    check is a finding. Never writes."""
    report = await verify(conn)
    directory = checkpoint_dir(settings)
    good, bad = read_published(directory, pinned)
    report.findings.extend(_forged(e) for e in bad)
    summary = [
        f"{report.links_checked} links checked; head {report.head_seq} {report.head_hash}",
        f"{report.pending} row(s) not sealed yet",
        f"checkpoints checked against {pinned.origin}",
    ]
    latest = good[-1] if good else None
    to_compare = [latest] if latest else []
    if extra_checkpoint is not None:
        try:
            to_compare.append(_read_file(extra_checkpoint, pinned))
        except CheckpointError as exc:
            report.findings.append(_forged(exc))
    for checkpoint in to_compare:
        report.findings.extend(await against_checkpoint(conn, checkpoint))
    if latest is None:
        summary.append(
            f"no published checkpoint in {directory}: a chain truncated and rebuilt "
            "could not be told from the original"
        )
    else:
        summary.append(
            f"latest published checkpoint: {latest.origin} ({latest.head_seq} links, "
            f"signed {latest.issued_at.isoformat(timespec='seconds')} by key {latest.kid})"
        )
    return Verification(report=report, checkpoint=latest, summary=summary)
