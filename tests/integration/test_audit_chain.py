"""Tamper evidence: a database superuser's changes behind the application's back are found.

Each test does the damage as the superuser would (triggers disabled, rows changed with
SQL) and checks the finding says which table, which patient, what kind and since when.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from services.audit import chain
from services.audit.accounting import (
    AccountingRequest,
    disclosures_of,
    parse_accounting,
    patient_findings,
    render,
)
from services.audit.chain import Sealed, seal_all, seal_once, seal_round, verify
from services.audit.evidence import verify_all
from services.audit.findings import FindingKind
from services.audit.sealer import ChainHealth, ChainSealer
from services.audit.signing import (
    CheckpointError,
    PinnedKeys,
    generate_key,
    load_pinned_keys,
    load_signing_key,
    publish,
    read_checkpoint,
    sign_head,
    write_private_key,
)
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore
from services.partners.registry import Actor, DeliveryKind, PartnerSpec, register
from services.settings import Settings
from tests.factories import new_patient

META = EventMetadata(actor_id="tester", role="care_manager", organisation_id="org")
ORG = UUID("00000000-0000-4000-8000-000000000001")


@dataclass
class Evidence:
    conn: asyncpg.Connection
    settings: Settings
    pinned: PinnedKeys
    patients: list[UUID]
    dsn: str


def audit_settings(root: Path) -> Settings:
    """Settings with a signing key and pinned public key outside the data folder."""
    key = generate_key("test-2026-12")
    write_private_key(key, root / "keys" / "signing.jwk")
    public = root / "keys" / "public.jwk"
    public.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return Settings(
        data_dir=root / "data",
        audit_signing_key_file=root / "keys" / "signing.jwk",
        audit_public_keys_file=public,
        audit_checkpoint_dir=root / "published",
    )


@pytest.fixture
async def evidence(db_dsn: str, tmp_path: Path) -> AsyncIterator[Evidence]:
    pool = await create_pool(db_dsn, Settings())
    store = EventStore(pool)
    now = datetime.now(UTC)
    patients = []
    for _ in range(5):
        patient = new_patient(now=now)
        patient.enroll(occurred_at=now, now=now)
        patients.append(patient.id)
        await store.append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0,
            events=patient.collect_events(),
            metadata=META,
            now=now,
        )
    async with pool.acquire() as c:
        await c.execute(
            "INSERT INTO access_log (operation, outcome, reason, patient_id) "
            "VALUES ('patient', 'denied', 'NOT_ON_CARE_TEAM', $1)",
            patients[0],
        )
        done = await register(
            c,
            PartnerSpec(
                organisation_id=uuid4(),
                name="Community partner",
                purpose="care coordination",
                allowed_event_types=["patient.screening_recorded.v1"],
                delivery=DeliveryKind.KAFKA,
                kafka_topic="partner.test",
            ),
            owner=ORG,
            actor=Actor(actor_id=uuid4(), role="admin", organisation_id=ORG),
            now=now,
        )
        # Two deliveries, as the partner feed records them (a real delivery needs consents
        # and a broker; the row is what the chain must protect).
        for pid in patients[:2]:
            await c.execute(
                """INSERT INTO disclosures (disclosed_at, patient_id, partner_id,
                       recipient_organisation_id, recipient_name, description, purpose,
                       channel, event_id, event_type, public_type, message_id, part2,
                       consent_ids, rules_version)
                   VALUES (now(), $1, $2, $3, 'Community partner', 'screening [x]',
                           'care coordination', 'kafka', gen_random_uuid(),
                           'patient.screening_recorded', 'patient.screening_recorded.v1',
                           gen_random_uuid()::text, false, '{}', 'r1')""",
                pid,
                done.partner.partner_id,
                done.partner.organisation_id,
            )
    await pool.close()
    settings = audit_settings(tmp_path)
    connection = await asyncpg.connect(db_dsn)
    await seal_all(connection)
    yield Evidence(connection, settings, load_pinned_keys(settings, None), patients, db_dsn)
    await connection.close()


async def _behind_the_back(conn: asyncpg.Connection, sql: str, table: str = "events") -> None:
    """A superuser disables the append-only triggers and changes rows directly."""
    await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    await conn.execute(sql)
    await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def _publish_checkpoint(e: Evidence) -> None:
    token, body = await sign_head(e.conn, load_signing_key(e.settings, create=False))
    publish(e.settings.audit_checkpoint_dir or Path(), token, body)


async def test_untouched_evidence_of_every_kind_verifies(evidence: Evidence) -> None:
    """Ten events, one access record, one registry change and two disclosures: no finding."""
    report = await verify(evidence.conn)
    assert report.ok, report.findings
    assert report.links_checked == 14
    sources = await evidence.conn.fetch("SELECT source, count(*) FROM audit_chain GROUP BY 1")
    assert dict((r[0], r[1]) for r in sources) == {
        "event": 10,
        "access": 1,
        "partner_change": 1,
        "disclosure": 2,
    }


async def test_the_application_cannot_update_or_delete_evidence(evidence: Evidence) -> None:
    """The append-only triggers refuse UPDATE, DELETE and TRUNCATE."""
    for sql in (
        "UPDATE events SET event_type = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE access_log SET reason = 'y'",
        "DELETE FROM audit_chain",
        "DELETE FROM disclosures",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await evidence.conn.execute(sql)


async def test_an_edited_event_is_reported_with_its_patient_and_time(evidence: Evidence) -> None:
    """A payload changed with SQL is an edit of that event, of that patient, since sealing."""
    row = await evidence.conn.fetchrow(
        "SELECT position, patient_id FROM events ORDER BY position LIMIT 1"
    )
    await _behind_the_back(
        evidence.conn,
        'UPDATE events SET payload = payload || \'{"mrn": "X"}\' '
        f"WHERE position = {row['position']}",
    )
    report = await verify(evidence.conn)
    assert [(f.table, f.key, f.kind, f.patient_id) for f in report.findings] == [
        ("events", row["position"], FindingKind.EDITED, row["patient_id"])
    ]
    assert report.findings[0].since is not None
    assert "EDITED: events event" in report.findings[0].sentence()


async def test_a_deleted_event_is_reported(evidence: Evidence) -> None:
    """A row removed with SQL is reported as deleted, with its patient."""
    row = await evidence.conn.fetchrow(
        "SELECT position, patient_id FROM events ORDER BY position DESC LIMIT 1"
    )
    await _behind_the_back(evidence.conn, f"DELETE FROM events WHERE position = {row[0]}")
    report = await verify(evidence.conn)
    assert [(f.table, f.key, f.kind, f.patient_id) for f in report.findings] == [
        ("events", row[0], FindingKind.DELETED, row[1])
    ]


async def test_a_deleted_disclosure_is_reported(evidence: Evidence) -> None:
    """The accounting of disclosures is chained: a deleted delivery is found."""
    row = await evidence.conn.fetchrow("SELECT id, patient_id FROM disclosures LIMIT 1")
    await _behind_the_back(
        evidence.conn, f"DELETE FROM disclosures WHERE id = {row[0]}", table="disclosures"
    )
    report = await verify(evidence.conn)
    assert [(f.table, f.key, f.kind, f.patient_id) for f in report.findings] == [
        ("disclosures", row[0], FindingKind.DELETED, row[1])
    ]


async def test_an_edited_partner_registry_change_is_reported(evidence: Evidence) -> None:
    """The partner registry's history is chained too."""
    await _behind_the_back(
        evidence.conn,
        "UPDATE partner_changes SET role = 'care_manager'",
        table="partner_changes",
    )
    report = await verify(evidence.conn)
    assert [(f.table, f.kind) for f in report.findings] == [("partner_changes", FindingKind.EDITED)]


async def test_an_inserted_event_is_reported(evidence: Evidence) -> None:
    """A row slipped in below the sealed head is reported as inserted."""
    await _behind_the_back(
        evidence.conn,
        """INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, stream_version,
                               patient_id, event_type, event_version, payload, metadata,
                               occurred_at)
           OVERRIDING SYSTEM VALUE
           SELECT 0, '1'::xid8, gen_random_uuid(), stream_id, stream_type, 99, patient_id,
                  event_type, 1, payload, metadata, occurred_at
           FROM events LIMIT 1""",
    )
    report = await verify(evidence.conn)
    assert [(f.table, f.key, f.kind) for f in report.findings] == [
        ("events", 0, FindingKind.INSERTED)
    ]


async def test_two_reordered_events_are_reported_as_reordered_not_edited(
    evidence: Evidence,
) -> None:
    """Swapping two rows' transaction ids changes the log order and nothing else."""
    first, last = await evidence.conn.fetchrow("SELECT min(position), max(position) FROM events")
    await _behind_the_back(
        evidence.conn,
        f"""UPDATE events e SET tx_id = o.tx_id
            FROM events o
            WHERE (e.position, o.position) IN (({first}, {last}), ({last}, {first}))""",
    )
    report = await verify(evidence.conn)
    assert sorted((f.key, f.kind) for f in report.findings) == [
        (first, FindingKind.REORDERED),
        (last, FindingKind.REORDERED),
    ]


async def test_verify_never_writes_and_leaves_new_rows_pending(evidence: Evidence) -> None:
    """Rows added after sealing stay unsealed through verify; it reports them as pending."""
    await evidence.conn.execute(
        "INSERT INTO access_log (operation, outcome) VALUES ('x', 'allowed')"
    )
    before = await evidence.conn.fetchval("SELECT count(*) FROM audit_chain")
    report = await verify(evidence.conn)
    assert report.ok and report.pending == 1
    assert await evidence.conn.fetchval("SELECT count(*) FROM audit_chain") == before


async def test_a_truncated_and_rebuilt_chain_is_caught_by_the_published_checkpoint(
    evidence: Evidence,
) -> None:
    """Delete an event, truncate the chain and its bookmarks, reseal: the checkpoint
    published before no longer lies on the chain, so verification reports a rebuild."""
    await _publish_checkpoint(evidence)
    assert (await verify_all(evidence.conn, evidence.settings, evidence.pinned)).ok
    await _behind_the_back(
        evidence.conn, "DELETE FROM events WHERE position = (SELECT min(position) FROM events)"
    )
    await _behind_the_back(evidence.conn, "TRUNCATE audit_chain", table="audit_chain")
    await evidence.conn.execute("DELETE FROM checkpoints WHERE name LIKE 'audit_chain:%'")

    truncated = await verify_all(evidence.conn, evidence.settings, evidence.pinned)
    assert [f.kind for f in truncated.findings] == [FindingKind.CHAIN_REBUILT]
    assert "now has 0" in truncated.findings[0].detail

    # The rebuilt chain is as long as the published one, so only its hashes tell.
    await evidence.conn.execute(
        "INSERT INTO access_log (operation, outcome) VALUES ('x', 'allowed')"
    )
    await seal_all(evidence.conn)
    rebuilt = await verify_all(evidence.conn, evidence.settings, evidence.pinned)
    assert [f.kind for f in rebuilt.findings] == [FindingKind.CHAIN_REBUILT]
    assert "was recomputed" in rebuilt.findings[0].detail


async def test_a_checkpoint_forged_with_another_key_is_refused_and_reported(
    evidence: Evidence,
) -> None:
    """A checkpoint signed by a key that is not pinned fails, whatever key it names."""
    forger = generate_key("test-2026-12")
    write_private_key(forger, evidence.settings.data_dir / "forged.jwk")
    forged_settings = Settings(
        data_dir=evidence.settings.data_dir,
        audit_signing_key_file=evidence.settings.data_dir / "forged.jwk",
        audit_checkpoint_dir=evidence.settings.audit_checkpoint_dir,
    )
    token, body = await sign_head(evidence.conn, load_signing_key(forged_settings, create=False))
    with pytest.raises(CheckpointError, match="signature does not verify"):
        read_checkpoint(token, evidence.pinned, "forged")
    publish(evidence.settings.audit_checkpoint_dir or Path(), token, body)
    result = await verify_all(evidence.conn, evidence.settings, evidence.pinned)
    assert [f.kind for f in result.findings] == [FindingKind.FORGED_CHECKPOINT]


async def test_the_sealer_stops_and_reports_when_the_chain_is_truncated_under_it(
    evidence: Evidence,
) -> None:
    """The in-process sealer notices the chain lost links it had sealed and seals no more."""
    pool = await create_pool(evidence.dsn, Settings())
    health = ChainHealth()
    sealer = ChainSealer(pool, evidence.settings, health, poll_seconds=0.05)
    task = asyncio.create_task(sealer.run())
    try:
        # Until the sealer has seen links of its own: a sealer that has seen none cannot
        # tell a truncated chain from a new one (under load its first round can be late).
        for _ in range(600):
            if health.verified and sealer.sealed_through > 0:
                break
            await asyncio.sleep(0.05)
        assert health.verified and health.intact and sealer.sealed_through > 0
        await seal_once(evidence.conn)
        await _behind_the_back(evidence.conn, "TRUNCATE audit_chain", table="audit_chain")
        await evidence.conn.execute("DELETE FROM checkpoints WHERE name LIKE 'audit_chain:%'")
        for _ in range(600):
            if not health.intact:
                break
            await asyncio.sleep(0.05)
        assert not health.intact and health.reason
        assert await evidence.conn.fetchval("SELECT count(*) FROM audit_chain") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_the_sealer_seals_a_steady_stream_once_per_poll_not_once_per_row(
    evidence: Evidence,
) -> None:
    """Under steady writes the sealer runs a round per poll, each sealing what came since,
    instead of going again at once after every round that found a few rows (about 30
    statements a round: under load, more statements than the commands themselves)."""
    pool = await create_pool(evidence.dsn, Settings())
    # A batch larger than what a poll brings: one round seals all of it.
    sealer = ChainSealer(pool, evidence.settings, ChainHealth(), poll_seconds=0.25, batch=20_000)
    task = asyncio.create_task(sealer.run())
    written = 0
    try:
        for _ in range(600):  # its start-up check and first round
            if sealer.rounds:
                break
            await asyncio.sleep(0.05)
        first = sealer.rounds
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            await evidence.conn.execute(
                "INSERT INTO access_log (operation, outcome, reason) "
                "VALUES ('caseload', 'denied', 'NOT_PERMITTED')"
            )
            written += 1  # back to back: every round of the sealer finds new rows
        rounds = sealer.rounds - first
        for _ in range(600):  # everything written is sealed within a poll or two
            pending = await evidence.conn.fetchval(
                "SELECT count(*) FROM access_log a WHERE NOT EXISTS (SELECT 1 FROM "
                "audit_chain c WHERE c.source = 'access' AND c.source_id = a.id)"
            )
            if pending == 0:
                break
            await asyncio.sleep(0.05)
        assert pending == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()
    # 1.5 s at a 0.25 s poll is 6 rounds (a slow machine runs fewer); a sealer that goes
    # again after every round that found rows runs one per write or so (over 100 here).
    assert written > 50
    assert 2 <= rounds <= 10, rounds


async def _denied_reads(conn: asyncpg.Connection, count: int) -> None:
    """``count`` access-log rows of a denied caseload read (no patient)."""
    for _ in range(count):
        await conn.execute(
            "INSERT INTO access_log (operation, outcome, reason) "
            "VALUES ('caseload', 'denied', 'NOT_PERMITTED')"
        )


async def test_a_round_reports_more_only_when_one_source_filled_its_batch(
    evidence: Evidence,
) -> None:
    """The sealer goes round again at once only when some source had a whole batch
    waiting; rows of several sources adding up to a batch are all sealed in the round, so
    going again would find nothing."""
    await seal_all(evidence.conn)
    pool = await create_pool(evidence.dsn, Settings())
    try:
        now = datetime.now(UTC)
        patient = new_patient(now=now)
        events = patient.collect_events()
        await EventStore(pool).append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0,
            events=events,
            metadata=META,
            now=now,
        )
    finally:
        await pool.close()

    await _denied_reads(evidence.conn, 3)
    limit = max(3, len(events)) + 1  # each source under it, together at or over it
    assert 3 + len(events) >= limit
    assert await seal_round(evidence.conn, limit=limit) == Sealed(3 + len(events), more=False)
    await _denied_reads(evidence.conn, limit)  # one source fills its batch exactly
    assert await seal_round(evidence.conn, limit=limit) == Sealed(limit, more=True)
    assert await seal_round(evidence.conn, limit=limit) == Sealed(0, more=False)
    assert (await verify(evidence.conn)).ok


async def test_sealing_a_large_batch_lets_the_event_loop_run_between_short_stretches(
    evidence: Evidence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process sealer shares its event loop with requests and subscriptions: it
    hashes at most ``YIELD_EVERY`` rows between two turns of the loop, never a whole
    batch at once (bench row 6's deliveries waited behind batches of 200)."""
    await seal_all(evidence.conn)
    await _denied_reads(evidence.conn, 120)
    turns = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    hashed_at: list[int] = []
    real_hashes = chain.hashes

    def counting_hashes(source: Any, row: dict[str, Any]) -> tuple[bytes, bytes]:
        hashed_at.append(turns)
        return real_hashes(source, row)

    monkeypatch.setattr(chain, "hashes", counting_hashes)
    task = asyncio.create_task(ticker())
    try:
        sealed = await seal_round(evidence.conn, limit=1000)
    finally:
        stop.set()
        await task
    assert sealed.added == 120 and len(hashed_at) == 120
    longest = max(hashed_at.count(t) for t in set(hashed_at))
    assert longest <= chain.YIELD_EVERY, longest


async def test_a_round_reads_and_hashes_without_a_transaction_id_and_writes_last(
    evidence: Evidence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Log readers hold back every event committed after the oldest running transaction
    id, so the sealer takes one only for its writes: it reads its marks without locking
    them (its advisory lock already keeps other sealers out) and hashes every row first."""
    await seal_all(evidence.conn)
    await _denied_reads(evidence.conn, 30)
    hashed = 0
    at_first_write: list[tuple[Any, int]] = []
    real_hashes, real_set_mark = chain.hashes, chain._set_mark

    def counting_hashes(source: Any, row: dict[str, Any]) -> tuple[bytes, bytes]:
        nonlocal hashed
        hashed += 1
        return real_hashes(source, row)

    async def first_write_seen(conn: Any, name: str, tx: str, position: int) -> None:
        if not at_first_write:
            xid = await conn.fetchval("SELECT pg_current_xact_id_if_assigned()")
            at_first_write.append((xid, hashed))
        await real_set_mark(conn, name, tx, position)

    monkeypatch.setattr(chain, "hashes", counting_hashes)
    monkeypatch.setattr(chain, "_set_mark", first_write_seen)
    sealed = await seal_round(evidence.conn, limit=1000)
    assert sealed.added == 30
    assert at_first_write == [(None, 30)]
    assert (await verify(evidence.conn)).ok


async def test_a_disclosure_committed_late_is_sealed_not_skipped(evidence: Evidence) -> None:
    """A delivery whose transaction is still open while a later one commits is sealed once
    it commits, and the later one waits for it: no false 'inserted' finding."""
    template = await evidence.conn.fetchrow("SELECT * FROM disclosures LIMIT 1")
    columns = [c for c in template.keys() if c != "id"]
    insert = (
        f"INSERT INTO disclosures ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))}) RETURNING id"
    )
    slow = await asyncpg.connect(evidence.dsn)
    try:
        tx = slow.transaction()
        await tx.start()
        early = await slow.fetchval(insert, *[template[c] for c in columns])
        late = await evidence.conn.fetchval(insert, *[template[c] for c in columns])
        assert early < late
        await seal_all(evidence.conn)
        sealed = {
            r[0]
            for r in await evidence.conn.fetch(
                "SELECT source_id FROM audit_chain WHERE source = 'disclosure'"
            )
        }
        assert late not in sealed
        await tx.commit()
    finally:
        await slow.close()
    await seal_all(evidence.conn)
    report = await verify(evidence.conn)
    assert report.ok and report.pending == 0, report.findings
    assert (
        await evidence.conn.fetchval(
            "SELECT count(*) FROM audit_chain WHERE source = 'disclosure' AND source_id = ANY($1)",
            [early, late],
        )
        == 2
    )


async def test_the_accounting_of_disclosures_warns_when_a_delivery_was_deleted(
    evidence: Evidence,
) -> None:
    """A patient's accounting lists their delivery; once it is deleted with SQL, the
    accounting says its evidence has a finding instead of silently omitting it."""
    now = datetime.now(UTC)
    request = parse_accounting(str(evidence.patients[0]), None, None, now)
    other = parse_accounting(str(evidence.patients[2]), None, None, now)

    async def document(req: AccountingRequest) -> str:
        result = await verify_all(evidence.conn, evidence.settings, evidence.pinned)
        found = patient_findings(result.findings, req.patient_id)
        return render(req, await disclosures_of(evidence.conn, req), found, as_json=False)

    before = await document(request)
    assert "to Community partner" in before and "why:  care coordination" in before
    assert "verified without findings" in before
    await _behind_the_back(
        evidence.conn,
        f"DELETE FROM disclosures WHERE patient_id = '{evidence.patients[0]}'",
        table="disclosures",
    )
    after = await document(request)
    assert "to Community partner" not in after
    assert "WARNING" in after and "DELETED: disclosures disclosure" in after
    unaffected = await document(other)
    assert "No disclosures in this period." in unaffected and "WARNING" not in unaffected


async def test_a_list_read_is_one_sealed_row_whose_hash_covers_its_patients(
    evidence: Evidence,
) -> None:
    """A read of several patients is one access row (``patient_ids``), sealed next to the
    single-patient rows, which verify as before; dropping one of its patients behind the
    application's back is an edit of that row."""
    listed = await evidence.conn.fetchval(
        """INSERT INTO access_log (operation, outcome, patient_ids, fields)
           VALUES ('caseload', 'allowed', $1, '{caseload.totalCount}') RETURNING id""",
        evidence.patients[:3],
    )
    assert await seal_all(evidence.conn) == 1
    assert (await verify(evidence.conn)).ok
    await _behind_the_back(
        evidence.conn,
        f"UPDATE access_log SET patient_ids = patient_ids[1:2] WHERE id = {listed}",
        "access_log",
    )
    report = await verify(evidence.conn)
    assert [(f.table, f.key, f.kind) for f in report.findings] == [
        ("access_log", listed, FindingKind.EDITED)
    ]


async def test_a_mark_is_made_by_its_first_read_and_each_read_is_one_statement_without_an_xid(
    evidence: Evidence,
) -> None:
    name = f"audit-test-{uuid4().hex[:8]}"
    sent: list[str] = []

    def logged(record: Any) -> None:
        sent.append(record.query)

    evidence.conn.add_query_logger(logged)
    try:
        assert await chain._mark(evidence.conn, name) == ("0", 0)
        async with evidence.conn.transaction():
            assert await chain._mark(evidence.conn, name) == ("0", 0)
            xid = await evidence.conn.fetchval("SELECT pg_current_xact_id_if_assigned()")
    finally:
        evidence.conn.remove_query_logger(logged)
    assert xid is None
    marks = [q for q in sent if "checkpoints" in q]
    assert len(marks) == 2, marks
    assert (
        await evidence.conn.fetchval("SELECT count(*) FROM checkpoints WHERE name = $1", name) == 1
    )
