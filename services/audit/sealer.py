"""The in-process sealer of ``careteam serve``: extends the chain, publishes signed
checkpoints on a schedule, and stops at the first sign of tampering.

At start it checks that the chain still passes through the latest published checkpoint
(one query, so a large log does not delay start-up); before each round, that it still
passes through the head it last saw (so a chain truncated under it is noticed at once);
every ``CARETEAM_AUDIT_VERIFY_SECONDS`` it runs the whole verification (every row hashed
again, on this event loop: about the cost of sealing the log once). On any finding it
never seals again: ``ChainHealth`` turns broken, which fails ``/readyz`` with the reason
and sets ``careteam_audit_chain_intact`` to 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.audit.chain import head, seal_round
from services.audit.evidence import against_checkpoint, verify_all
from services.audit.signing import (
    AuditKeyError,
    checkpoint_dir,
    load_pinned_keys,
    load_signing_key,
    publish,
    read_published,
    sign_head,
)
from services.logfollow import Backoff, Wake, follow
from services.settings import Settings

log = logging.getLogger("careteam.audit")


@dataclass
class ChainHealth:
    """What the running service knows about its audit chain (no patient data)."""

    intact: bool = True
    reason: str | None = None
    findings: int = 0
    verified: bool = False

    def broken(self, reason: str, findings: int) -> None:
        self.intact, self.reason, self.findings = False, reason, findings


class ChainSealer:
    """Keeps the chain current in the background."""

    def __init__(
        self,
        pool: Any,
        settings: Settings,
        health: ChainHealth,
        *,
        poll_seconds: float = 0.5,
        batch: int = 200,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._health = health
        self._poll = poll_seconds
        # Rows hashed per source per transaction. Hashing runs on the event loop, so a
        # small batch keeps each stretch short (about 5 ms at 200 rows here) and requests
        # and subscription deliveries are not held up behind a long one.
        self._batch = batch
        self._seen: tuple[int, bytes] | None = None
        self._published_seq = -1
        self.rounds = 0  # sealing rounds run (tests, and the pacing below)

    @property
    def sealed_through(self) -> int:
        """The last link this sealer has seen in the chain (0 before its first look)."""
        return 0 if self._seen is None else self._seen[0]

    async def run(self) -> None:
        try:
            key = load_signing_key(self._settings, create=True)
            pinned = load_pinned_keys(self._settings, None)
        except AuditKeyError as exc:
            self._health.broken(f"audit keys: {exc}", 0)
            log.error("audit chain sealer not started: %s", exc)
            return
        try:
            async with self._pool.acquire() as conn:
                published, _ = read_published(checkpoint_dir(self._settings), pinned)
                found = await against_checkpoint(conn, published[-1]) if published else []
                if found:
                    self._stop(found[0].sentence(), len(found))
                    return
                self._seen = await head(conn)
                self._health.verified = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("audit chain start-up check failed; the first verification decides")
        next_verify = time.monotonic() + self._settings.audit_verify_seconds
        next_checkpoint = time.monotonic() + self._settings.audit_checkpoint_seconds
        broken = asyncio.Event()  # set once the chain is found broken: never seal again

        async def round_() -> int:
            """One round: verify when due, extend the chain, publish a checkpoint when due;
            returns how many links it added."""
            nonlocal next_verify, next_checkpoint
            async with self._pool.acquire() as conn:
                if time.monotonic() >= next_verify:
                    result = await verify_all(conn, self._settings, pinned)
                    next_verify = time.monotonic() + self._settings.audit_verify_seconds
                    self._health.verified = True
                    if not result.ok:
                        self._stop(result.findings[0].sentence(), len(result.findings))
                        broken.set()
                        return 0
                if not await self._still_through_seen_head(conn):
                    broken.set()
                    return 0
                sealed = await seal_round(conn, limit=self._batch)
                self.rounds += 1
                now_seen = await head(conn)
                if self._seen is not None and now_seen[0] < self._seen[0]:
                    # The chain only grows: a shorter one was truncated between this
                    # round's check and its read of the head.
                    self._stop(f"audit chain shrank from link {self._seen[0]} to {now_seen[0]}", 1)
                    broken.set()
                    return 0
                self._seen = now_seen
                if time.monotonic() >= next_checkpoint and self._seen[0] != self._published_seq:
                    token, body = await sign_head(conn, key)
                    path = publish(checkpoint_dir(self._settings), token, body)
                    self._published_seq = body["head_seq"]
                    next_checkpoint = time.monotonic() + self._settings.audit_checkpoint_seconds
                    log.info("audit checkpoint published file=%s", path.name)
            # A round in which no source filled its batch has caught up: the next one
            # waits for the poll, so rows sealed under load come in batches of a poll's
            # worth rather than a round of some 30 statements for every few rows (bench
            # row 4). One that filled a batch goes again at once.
            return sealed.added if sealed.more else 0

        def on_error(exc: BaseException) -> float:
            log.exception("audit chain sealing failed; retrying", exc_info=exc)
            return self._poll

        # The log follower's loop (services/logfollow.py); the sealer follows the
        # evidence tables by its own marks (chain.py) and is woken only by the poll.
        await follow(
            round_,
            wake=Wake(),
            poll_seconds=self._poll,
            backoff=Backoff(self._poll, self._poll, jitter=False),
            stop=broken,
            on_error=on_error,
        )

    async def _still_through_seen_head(self, conn: Any) -> bool:
        if self._seen is None or self._seen[0] == 0:
            return True
        seq, link_hash = self._seen
        stored = await conn.fetchval("SELECT link_hash FROM audit_chain WHERE seq = $1", seq)
        if stored is not None and bytes(stored) == link_hash:
            return True
        self._stop(f"audit chain link {seq} is gone or changed since it was sealed", 1)
        return False

    def _stop(self, reason: str, findings: int) -> None:
        self._health.broken(reason, findings)
        log.error("audit chain broken; sealing stopped findings=%s reason=%s", findings, reason)
