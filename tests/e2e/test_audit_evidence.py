"""Audit evidence from the command line and the running service, against a hostile
database superuser: every kind of damage gives a readable finding and a non-zero exit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent as R4BAuditEvent
from fhirclient.models.auditevent import AuditEvent as R4AuditEvent
from joserfc import jws
from joserfc.jwk import OKPKey

from services.audit.chain import seal_all
from services.database import create_pool
from services.partners.registry import Actor, DeliveryKind, PartnerSpec, register
from services.settings import Settings
from tests.e2e.server import DEFAULT_ORG, ServerProcess

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
ENROLL = "mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"
READ = "query($id: UUID!) { patient(id: $id) { ... on Patient { id status } } }"


class AuditCli:
    """``careteam audit`` with keys kept outside the data folder, as in production."""

    def __init__(self, db_dsn: str, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "CARETEAM_DATABASE_URL": db_dsn,
            "CARETEAM_DATA_DIR": str(root / "data"),
            "CARETEAM_AUDIT_SIGNING_KEY_FILE": str(root / "keys" / "signing.jwk"),
            "CARETEAM_AUDIT_PUBLIC_KEYS_FILE": str(root / "keys" / "public.json"),
            "CARETEAM_AUDIT_CHECKPOINT_DIR": str(root / "published"),
        }
        made = self("keygen", "--kid", "audit-2026-12", "--out", str(root / "keys/signing.jwk"))
        assert made.returncode == 0, made.stderr
        (root / "keys" / "public.json").write_text(made.stdout)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", "audit", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


async def _as_superuser(db_dsn: str, table: str, *sql: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement in sql:
            await conn.execute(statement)
        await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()


def _patient(server: ServerProcess) -> str:
    token = server.token("care_manager")
    pid: str = server.graphql(REGISTER, token=token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=token)
    server.graphql(READ, {"id": pid}, token=token)
    return pid


async def test_seal_check_and_verify_pass_then_an_edited_event_is_reported_in_words(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """A sealed chain verifies; an event edited with SQL is named with its patient and
    the command exits 1, in text and in JSON."""
    pid = _patient(server)
    audit = AuditCli(db_dsn, tmp_path)
    sealed = audit("seal")
    assert sealed.returncode == 0, sealed.stderr
    assert "checkpoint published" in sealed.stdout
    [published] = sorted((tmp_path / "published").iterdir())
    checked = audit("check", str(published))
    assert checked.returncode == 0 and "checkpoint ok" in checked.stdout
    clean = audit("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.startswith("audit chain: OK")

    await _as_superuser(
        db_dsn,
        "events",
        'UPDATE events SET metadata = metadata || \'{"actor_id": "someone-else"}\' '
        f"WHERE stream_version = 1 AND patient_id = '{pid}'",
    )
    tampered = audit("verify")
    assert tampered.returncode == 1
    assert "EDITED: events event" in tampered.stdout and f"patient {pid}" in tampered.stdout
    assert str(DEFAULT_ORG) not in tampered.stdout
    as_json = json.loads(audit("verify", "--json").stdout)
    assert [(f["table"], f["kind"], f["patient_id"]) for f in as_json["findings"]] == [
        ("events", "edited", pid)
    ]
    refused = audit("seal")
    assert refused.returncode == 1 and "nothing sealed" in refused.stderr


async def _disclose(db_dsn: str, patient_id: str) -> int:
    """A partner registered through the registry and one delivery to it, recorded as the
    partner feed records it (a real delivery needs consents and a broker)."""
    pool = await create_pool(db_dsn, Settings())
    try:
        conn = await pool.acquire()
        done = await register(
            conn,
            PartnerSpec(
                organisation_id=uuid4(),
                name="Community partner",
                purpose="care coordination",
                allowed_event_types=["patient.screening_recorded.v1"],
                delivery=DeliveryKind.KAFKA,
                kafka_topic="partner.test",
            ),
            owner=DEFAULT_ORG,
            actor=Actor(actor_id=uuid4(), role="admin", organisation_id=DEFAULT_ORG),
            now=datetime.now(UTC),
        )
        disclosure_id: int = await conn.fetchval(
            """INSERT INTO disclosures (disclosed_at, patient_id, partner_id,
                   recipient_organisation_id, recipient_name, description, purpose, channel,
                   event_id, event_type, public_type, message_id, part2, consent_ids,
                   rules_version)
               VALUES (now(), $1, $2, $3, 'Community partner', 'screening [x]',
                       'care coordination', 'kafka', gen_random_uuid(),
                       'patient.screening_recorded', 'patient.screening_recorded.v1',
                       gen_random_uuid()::text, false, '{}', 'r1')
               RETURNING id""",
            UUID(patient_id),
            done.partner.partner_id,
            done.partner.organisation_id,
        )
        await pool.release(conn)
    finally:
        await pool.close()
    return disclosure_id


async def test_a_deleted_disclosure_is_reported_with_its_patient(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """The accounting of disclosures is evidence: a deleted delivery is named by verify
    and by the patient's accounting, which exits 1 instead of silently omitting it."""
    pid = _patient(server)
    disclosure_id = await _disclose(db_dsn, pid)
    audit = AuditCli(db_dsn, tmp_path)
    assert audit("seal").returncode == 0
    accounting = audit("disclosures", "--patient", pid)
    assert accounting.returncode == 0, accounting.stderr
    assert "to Community partner" in accounting.stdout
    await _as_superuser(
        db_dsn, "disclosures", f"DELETE FROM disclosures WHERE id = {disclosure_id}"
    )
    result = audit("verify")
    assert result.returncode == 1
    assert f"DELETED: disclosures disclosure {disclosure_id} of patient {pid}" in result.stdout
    warned = audit("disclosures", "--patient", pid)
    assert warned.returncode == 1 and "WARNING" in warned.stdout
    assert "to Community partner" not in warned.stdout
    assert audit("disclosures", "--patient", "nobody").returncode == 2


async def test_a_truncated_and_rebuilt_chain_is_reported_and_not_sealed_over(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """Truncating the chain and its bookmarks is caught by the published checkpoint, and
    so is a chain rebuilt afterwards without a deleted disclosure."""
    pid = _patient(server)
    disclosure_id = await _disclose(db_dsn, pid)
    audit = AuditCli(db_dsn, tmp_path)
    assert audit("seal").returncode == 0
    await _as_superuser(
        db_dsn, "disclosures", f"DELETE FROM disclosures WHERE id = {disclosure_id}"
    )
    await _as_superuser(db_dsn, "audit_chain", "TRUNCATE audit_chain")
    await _as_superuser(
        db_dsn, "checkpoints", "DELETE FROM checkpoints WHERE name LIKE 'audit_chain:%'"
    )
    truncated = audit("verify")
    assert truncated.returncode == 1
    assert "CHAIN REBUILT: audit_chain chain link" in truncated.stdout
    assert "the chain now has 0" in truncated.stdout
    assert audit("seal").returncode == 1

    conn = await asyncpg.connect(db_dsn)
    try:
        await seal_all(conn)
    finally:
        await conn.close()
    rebuilt = audit("verify")
    assert rebuilt.returncode == 1 and "CHAIN REBUILT" in rebuilt.stdout


async def test_reordered_rows_are_reported_as_reordered(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """Swapping two events' transaction ids is reported as a reordering of both."""
    _patient(server)
    audit = AuditCli(db_dsn, tmp_path)
    assert audit("seal").returncode == 0
    conn = await asyncpg.connect(db_dsn)
    try:
        first, last = await conn.fetchrow("SELECT min(position), max(position) FROM events")
    finally:
        await conn.close()
    await _as_superuser(
        db_dsn,
        "events",
        f"""UPDATE events e SET tx_id = o.tx_id FROM events o
            WHERE (e.position, o.position) IN (({first}, {last}), ({last}, {first}))""",
    )
    result = audit("verify", "--json")
    assert result.returncode == 1
    kinds = {(f["key"], f["kind"]) for f in json.loads(result.stdout)["findings"]}
    assert kinds == {(first, "reordered"), (last, "reordered")}


async def test_a_checkpoint_forged_with_another_key_fails_check_and_verify(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """A checkpoint over a zero hash, signed by a random key under the real key id and
    carrying that key in its header, is refused offline and reported among the published."""
    _patient(server)
    audit = AuditCli(db_dsn, tmp_path)
    assert audit("seal").returncode == 0
    forger = OKPKey.generate_key("Ed25519", parameters={"kid": "audit-2026-12"})
    body = {
        "chain": "careteam-audit-v2",
        "head_seq": 1,
        "head_hash": "00" * 32,
        "issued_at": datetime.now(UTC).isoformat(),
    }
    token = jws.serialize_compact(
        {"alg": "Ed25519", "kid": "audit-2026-12", "jwk": forger.as_dict(private=False)},
        json.dumps(body).encode(),
        forger,
        algorithms=["Ed25519"],
    )
    forged = tmp_path / "forged.jws"
    forged.write_text(token)
    refused = audit("check", str(forged))
    assert refused.returncode == 1 and "INVALID" in refused.stdout
    assert "signature does not verify" in refused.stdout
    (tmp_path / "published" / "checkpoint-99999999T000000000000Z-000000000001.jws").write_text(
        token
    )
    result = audit("verify")
    assert result.returncode == 1
    assert "FORGED CHECKPOINT" in result.stdout


async def test_the_running_service_fails_readiness_when_the_chain_is_broken(
    db_dsn: str, tmp_path: Path
) -> None:
    """After an event is edited with SQL, /readyz answers 503 with the reason and the
    metric careteam_audit_chain_intact drops to 0."""
    proc = ServerProcess(
        data_dir=tmp_path / "serve",
        env={
            "CARETEAM_DATABASE_URL": db_dsn,
            "CARETEAM_AUDIT_VERIFY_SECONDS": "0.5",
            "CARETEAM_AUDIT_CHECKPOINT_SECONDS": "0.5",
        },
    )
    proc.start()
    try:
        pid = _patient(proc)
        conn = await asyncpg.connect(db_dsn)
        try:
            for _ in range(300):
                if await conn.fetchval("SELECT count(*) FROM audit_chain WHERE source = 'event'"):
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        published = tmp_path / "serve" / "audit" / "checkpoints"
        for _ in range(300):
            if published.is_dir() and any(published.iterdir()):
                break
            await asyncio.sleep(0.1)
        assert any(published.iterdir()), "the service published no checkpoint on its schedule"
        client = httpx.AsyncClient(base_url=proc.url)
        assert (await client.get("/readyz")).status_code == 200
        await _as_superuser(
            db_dsn,
            "events",
            f"UPDATE events SET event_type = 'x' WHERE patient_id = '{pid}' AND stream_version = 1",
        )
        status = None
        for _ in range(300):
            ready = await client.get("/readyz")
            if ready.status_code == 503:
                status = ready.json()
                break
            await asyncio.sleep(0.1)
        assert status is not None and status["status"] == "audit chain broken"
        assert "EDITED" in status["reason"]
        metrics = (await client.get("/metrics")).text
        await client.aclose()
        assert "careteam_audit_chain_intact 0" in metrics
    finally:
        proc.stop()


def _export(audit: AuditCli, *args: str) -> subprocess.CompletedProcess[str]:
    return audit("export", *args)


async def test_export_gives_csv_ndjson_and_fhir_audit_events_that_validate(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """One patient's writes and reads come out in every format; each FHIR line is a valid
    R4 AuditEvent (fhirclient's R4 models) and R4B AuditEvent (fhir.resources)."""
    pid = _patient(server)
    audit = AuditCli(db_dsn, tmp_path)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    window = ("--since", since, "--until", until, "--patient", pid)

    as_csv = _export(audit, *window, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["kind"] for r in rows} >= {"write", "read"}
    assert {r["patient_id"] for r in rows} == {pid}

    # Names from the staff directory stand next to the actor ids once the actor is listed.
    writer = next(r for r in rows if r["kind"] == "write")
    assert writer["actor_name"] == ""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO staff (user_id, organisation_id, display_name, roles) "
            "VALUES ($1::uuid, $2::uuid, 'Dr. Test Listed', ARRAY['care_manager'])",
            writer["actor_id"],
            writer["organisation_id"],
        )
    finally:
        await conn.close()
    as_csv = _export(audit, *window, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    named = {r["actor_name"] for r in rows if r["actor_id"] == writer["actor_id"]}
    assert named == {"Dr. Test Listed"}

    as_ndjson = _export(audit, *window, "--format", "ndjson")
    assert [json.loads(line)["key"] for line in as_ndjson.stdout.splitlines()] == [
        int(r["key"]) for r in rows
    ]

    out = tmp_path / "audit.ndjson"
    as_fhir = _export(audit, *window, "--format", "fhir", "--out", str(out))
    assert as_fhir.returncode == 0, as_fhir.stderr
    resources = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(resources) == len(rows)
    for resource in resources:
        R4AuditEvent(resource, strict=True)
        R4BAuditEvent.model_validate(resource)
        assert {"reference": f"Patient/{pid}"} in [e["what"] for e in resource["entity"]]
    assert {r["action"] for r in resources} == {"C", "R"}
    displays = {
        agent["who"].get("display")
        for resource in resources
        for agent in resource["agent"]
        if agent["who"].get("identifier", {}).get("value") == writer["actor_id"]
    }
    assert displays == {"Dr. Test Listed"}


async def test_export_refuses_an_inverted_or_too_long_range_and_writes_nothing(
    db_dsn: str, tmp_path: Path
) -> None:
    """Bad ranges and ids are named in the error, exit 2, and leave no file behind."""
    audit = AuditCli(db_dsn, tmp_path)
    out = tmp_path / "never.csv"
    now = datetime.now(UTC)
    for args, named in (
        (("--since", now.isoformat(), "--until", (now - timedelta(days=1)).isoformat()), "--until"),
        (("--since", (now - timedelta(days=400)).isoformat(), "--until", now.isoformat()), "days"),
        (("--since", "2026-01-01T00:00:00", "--until", now.isoformat()), "--since"),
        (("--since", "yesterday", "--until", now.isoformat()), "--since"),
        (
            ("--since", "2026-01-01T00:00:00Z", "--until", now.isoformat(), "--patient", "x"),
            "--patient",
        ),
        (
            ("--since", "2026-01-01T00:00:00Z", "--until", now.isoformat(), "--format", "xml"),
            "--format",
        ),
    ):
        result = _export(audit, *args, "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert named in result.stderr and not result.stdout
        assert not out.exists()
