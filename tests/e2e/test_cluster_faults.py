"""deploy/cluster under damage: SIGKILLs of every kind of part while clients keep working.

``deploy/cluster/cluster.sh`` starts three Kafka brokers, PostgreSQL, two API replicas
behind HAProxy, two projectors, two relays and two partner workers, each its own
process. Two client threads send commands and queries through the load balancer
(retrying, with the same Idempotency-Key, what the cluster answered as unavailable),
while the test kills with SIGKILL, one at a time and round after round, an API replica,
a projector, a relay, a partner worker with its sealer and a Kafka broker
(``cluster.sh start`` brings each back), kills two brokers at once, and restarts
PostgreSQL once. Afterwards every acknowledged command is in the log, every
read model equals a rebuild from the log, the topic holds exactly the log once
duplicates are dropped by id, the webhook partner got every event of every patient,
in order, and the audit chain is whole and sealed to its last row.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.audit.chain import verify
from services.auth import DevIssuer, Role
from services.eventstore import LogPosition
from services.relay.messages import sequence_of
from tests.e2e.conftest import REPORTS
from tests.e2e.server import DEFAULT_ORG
from tests.e2e.test_operations import _checkpoints
from tests.integration.test_partners_feeds import Receiver
from tests.integration.test_rebuild import _dump
from tests.pg_control import pg_ctl

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "deploy" / "cluster" / "cluster.sh"
PARTNER_ORG = "00000000-0000-4000-8000-0000000000b1"
ROUNDS = 6  # 4 SIGKILLs a round, a broker every other round, and two brokers once: 29
PORT_OFFSETS = (0, 1, 2, 3, 11, 12, 13, 21, 22, 23)  # cluster.sh's layout from its base

pytestmark = pytest.mark.slow

REGISTER = """mutation($input: RegisterPatientInput!) { registerPatient(input: $input) {
  __typename ... on PatientPayload { patient { id } } } }"""
CONSENT = """mutation($id: UUID!, $org: UUID!) { grantConsent(input: {patientId: $id,
  kind: DATA_SHARING, partnerOrganisationId: $org}) { __typename } }"""
SCREENING = """mutation($id: UUID!) { recordScreening(input: {patientId: $id, instrument: PHQ9,
  answers: [1, 1, 1, 1, 1, 1, 1, 0, 0]}) { __typename } }"""
LOOKUP = """query($id: UUID!) { patient(id: $id) { __typename } }"""


PORT_BLOCK = 32  # every offset above fits in one aligned block of ports
PORT_LOCKS = Path(tempfile.gettempdir()) / "careteam-cluster-ports"


def _free_base() -> tuple[int, Any]:
    """A base port whose whole block of cluster ports is free on 127.0.0.1, below the
    ephemeral range (so an outgoing connection cannot take a port a restarted part
    needs), and the lock that reserves the block: two runs on this machine (xdist
    workers, two checkouts) never pick the same block, even before either listens."""
    PORT_LOCKS.mkdir(exist_ok=True)
    for _ in range(200):
        base = random.randrange(20_000 // PORT_BLOCK, 32_700 // PORT_BLOCK) * PORT_BLOCK
        lock = (PORT_LOCKS / f"{base}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for offset in PORT_OFFSETS:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            lock.close()
            continue
        return base, lock
    raise RuntimeError("no free block of ports")


@dataclass
class Cluster:
    run_dir: Path
    env: dict[str, str]
    kept_logs: Path  # where a failed run's logs are copied
    settings: dict[str, str] = field(default_factory=dict)

    def sh(self, action: str, timeout: float = 400) -> None:
        done = subprocess.run(
            ["bash", str(CLUSTER_SH), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"cluster.sh {action} (logs kept in {self.kept_logs}):\n{done.stderr[-4000:]}"
        )

    def read_settings(self) -> None:
        out = subprocess.run(
            ["bash", str(CLUSTER_SH), "env"], env=self.env, capture_output=True, text=True
        ).stdout
        self.settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    @property
    def url(self) -> str:
        return self.settings["CARETEAM_CLUSTER_URL"]

    @property
    def dsn(self) -> str:
        return self.settings["CARETEAM_DATABASE_URL"]

    def pid(self, name: str) -> int:
        path = (
            self.run_dir / f"{name}/kafka.pid"
            if name.startswith("kafka-")
            else self.run_dir / "pids" / f"{name}.pid"
        )
        return int(path.read_text())

    def token(self, role: str) -> str:
        return DevIssuer(Path(self.settings["CARETEAM_DATA_DIR"])).mint(
            role=Role(role), user_id=uuid.uuid4(), organisation_id=DEFAULT_ORG
        )


KEPT_LOGS = ROOT / "var" / "cluster-faults"  # ignored by git (/var/)


def _keep_logs(run_dir: Path, into: Path) -> None:
    """Copies a failed run's logs (every careteam part, HAProxy, PostgreSQL, the
    brokers) out of the temporary folder, which pytest prunes."""
    into.mkdir(parents=True, exist_ok=True)
    if (run_dir / "logs").is_dir():
        shutil.copytree(run_dir / "logs", into, dirs_exist_ok=True)
    if (run_dir / "postgres" / "server.log").is_file():
        shutil.copy(run_dir / "postgres" / "server.log", into / "postgres.log")
    for broker in sorted(run_dir.glob("kafka-*/logs")):
        shutil.copytree(broker, into / broker.parent.name, dirs_exist_ok=True)


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Any:
    # Not under pytest's tmp_path: every pytest session of the same user (another
    # checkout's, a colleague's) resets /tmp/pytest-of-USER to mode 700, which locks the
    # PostgreSQL user out of its data folder mid-run (both failures of this suite seen
    # while extending it). A folder of its own, which cluster.sh opens to that user.
    run_dir = Path(tempfile.mkdtemp(prefix="careteam-cluster-")) / "cluster"
    base, port_lock = _free_base()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", "CARETEAM_DATABASE_URL")
    }
    env.update(
        CARETEAM_CLUSTER_RUN_DIR=str(run_dir),
        CARETEAM_CLUSTER_BASE_PORT=str(base),
        CARETEAM_PARTNERS_POLL_SECONDS="0.05",
        CARETEAM_PARTNERS_REFRESH_SECONDS="0.2",
        CARETEAM_PARTNERS_WEBHOOK_INITIAL_DELAY_SECONDS="0.05",
    )
    cluster = Cluster(
        run_dir=run_dir,
        env=env,
        kept_logs=KEPT_LOGS / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}",
    )
    failed = True
    try:
        cluster.sh("start")
        cluster.read_settings()
        yield cluster
        failed = any(r.failed for r in request.node.stash.get(REPORTS, {}).values())
    finally:
        cluster.sh("stop")
        if failed:
            _keep_logs(cluster.run_dir, cluster.kept_logs)
            print(f"\ncluster faults: this failed run's server logs are in {cluster.kept_logs}")
        port_lock.close()
        leftovers = subprocess.run(
            ["pgrep", "-f", str(cluster.run_dir)], capture_output=True, text=True
        ).stdout.split()
        assert leftovers == [], "cluster.sh stop left processes behind"
        shutil.rmtree(run_dir.parent, ignore_errors=True)


# --- the load ----------------------------------------------------------------------------


@dataclass
class Load:
    """What the clients sent and what the cluster acknowledged."""

    url: str
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    patients: list[str] = field(default_factory=list)
    consented: set[str] = field(default_factory=set)
    screenings: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acknowledged: int = 0
    retried: int = 0
    given_up: int = 0
    queries: int = 0
    unexpected: list[str] = field(default_factory=list)

    def _send(self, client: httpx.Client, query: str, variables: dict[str, Any]) -> Any:
        """One command or query, retried (same Idempotency-Key) while the cluster says
        it is unavailable; None if it never answered within 90 s."""
        key = str(uuid.uuid4())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key},
                )
            except httpx.HTTPError:
                self.retried += 1  # the connection to the load balancer broke
                time.sleep(0.2)
                continue
            text = response.text
            if "Unexpected error" in text or (
                response.status_code >= 500 and response.status_code not in (502, 503, 504)
            ):
                self.unexpected.append(f"{response.status_code} {text[:300]}")
                return None
            if response.status_code in (502, 503, 504):
                body = _json(response)
                errors = (body or {}).get("errors") or []
                if body is not None and not (
                    errors
                    and errors[0]["extensions"].get("code") == "SERVICE_UNAVAILABLE"
                    and errors[0]["extensions"].get("retryable") is True
                ):
                    self.unexpected.append(f"{response.status_code} {text[:300]}")
                    return None
                # careteam's typed retryable error, or HAProxy's own answer with no
                # replica up (not JSON): both mean "try again".
                self.retried += 1
                time.sleep(0.2)
                continue
            body = response.json()
            errors = body.get("errors") or []
            if errors and all(
                e.get("extensions", {}).get("code") == "RESULT_NOT_YET_VISIBLE"
                and e["extensions"].get("written") is True
                for e in errors
            ):
                # Recorded, the read models behind (a projector worker just killed): the
                # same Idempotency-Key answers the first result once they catch up.
                self.retried += 1
                time.sleep(0.2)
                continue
            if errors:
                self.unexpected.append(f"{response.status_code} {text[:300]}")
                return None
            return body["data"]
        self.given_up += 1
        return None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                data = self._send(
                    client,
                    REGISTER,
                    {
                        "input": {
                            "givenName": "Test",
                            "familyName": "Synthetic",
                            "birthDate": "1980-01-01",
                            "mrn": f"CL-{uuid.uuid4().hex[:12]}",
                        }
                    },
                )
                if not data or data["registerPatient"]["__typename"] != "PatientPayload":
                    continue
                patient = data["registerPatient"]["patient"]["id"]
                with self.lock:
                    self.patients.append(patient)
                    self.acknowledged += 1
                data = self._send(client, CONSENT, {"id": patient, "org": PARTNER_ORG})
                if not data or data["grantConsent"]["__typename"] != "PatientPayload":
                    continue
                with self.lock:
                    self.consented.add(patient)
                    self.acknowledged += 1
                for _ in range(2):
                    data = self._send(client, SCREENING, {"id": patient})
                    if data and data["recordScreening"]["__typename"] == "PatientPayload":
                        with self.lock:
                            self.screenings[patient] += 1
                            self.acknowledged += 1
                data = self._send(client, LOOKUP, {"id": patient})
                if data:
                    with self.lock:
                        self.queries += 1


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# --- the damage --------------------------------------------------------------------------


def _kill(cluster: Cluster, name: str) -> None:
    os.kill(cluster.pid(name), signal.SIGKILL)


def _command_while_postgres_is_down(cluster: Cluster, token: str) -> httpx.Response:
    """A command straight to one replica (the load balancer would answer for it)."""
    api_1 = cluster.settings["CARETEAM_CLUSTER_API_URLS"].split(",")[0]
    return httpx.post(
        f"{api_1}/graphql",
        json={
            "query": REGISTER,
            "variables": {
                "input": {
                    "givenName": "Test",
                    "familyName": "Synthetic",
                    "birthDate": "1980-01-01",
                    "mrn": "CL-DOWN",
                }
            },
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )


def _stop_postgres_now(pgdata: Path) -> None:
    """``pg_ctl stop -m immediate``: a crash, no checkpoint."""
    pg_ctl(pgdata, "-m", "immediate", "-w", "stop")


def _damage(cluster: Cluster, token: str) -> tuple[list[str], httpx.Response]:
    """Round after round, one SIGKILL at a time (an API replica, a projector, a relay and
    a partner worker with its sealer every round, a Kafka broker every other round);
    PostgreSQL restarted once, and once two of the three brokers killed together (no
    topic has its two in-sync replicas, the metadata quorum is lost: the relays must
    wait and retry until they are back)."""
    kills: list[str] = []
    during_restart: httpx.Response | None = None
    for round_ in range(ROUNDS):
        i = round_ % 2 + 1
        names = [f"api-{i}", f"projector-{i}", f"relay-{i}", f"partners-{i}"]
        if round_ % 2 == 0:
            names.append(f"kafka-{round_ // 2 % 3 + 1}")
        for name in names:
            _kill(cluster, name)
            kills.append(name)
            time.sleep(1.5)  # the load meets the hole
            cluster.sh("start")  # brings back what is not running
            time.sleep(1.0)
        if round_ == 2:
            _stop_postgres_now(Path(cluster.settings["CARETEAM_CLUSTER_PG_DATA"]))
            during_restart = _command_while_postgres_is_down(cluster, token)
            time.sleep(2.0)
            cluster.sh("start")
        if round_ == 3:
            pair = ["kafka-2", "kafka-3"]
            for name in pair:
                _kill(cluster, name)
                kills.append(name)
            time.sleep(6.0)  # commands go on; publishing cannot
            cluster.sh("start")  # both brokers together (each needs a quorum to start)
            time.sleep(1.0)
    assert during_restart is not None
    return kills, during_restart


# --- the checks --------------------------------------------------------------------------


async def _true(value: bool) -> bool:
    return value


async def _within(seconds: float, check: Callable[[], Awaitable[bool]]) -> None:
    """Polls ``check`` every half second until it holds; fails after ``seconds``."""
    for _ in range(int(seconds * 2)):
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not reached within {seconds} s")


async def _caught_up(dsn: str) -> bool:
    positions, last = await _checkpoints(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        relay_behind = await conn.fetchval(
            """SELECT count(*) FROM events e, checkpoints c WHERE c.name = 'relay:internal'
               AND (e.tx_id, e.position) > (c.tx_id, c.position)"""
        )
    finally:
        await conn.close()
    return bool(positions) and all(p == last for p in positions.values()) and relay_behind == 0


async def _topic(bootstrap: str, want: set[str]) -> list[Any]:
    consumer = AIOKafkaConsumer(
        "careteam.events.v1",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(120):
            while not want <= {dict(r.headers)["ce_id"].decode() for r in records}:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_the_cluster_keeps_every_acknowledged_write_through_29_sigkills_and_a_pg_restart(
    cluster: Cluster,
) -> None:
    started = time.monotonic()
    receiver = Receiver()
    await receiver.start()
    try:
        registered = await asyncio.to_thread(
            httpx.post,
            f"{cluster.url}/graphql",
            json={
                "query": """mutation ($input: RegisterPartnerInput!) { registerPartner(
                  input: $input) { ... on PartnerRegistration { webhookSecret } } }""",
                "variables": {
                    "input": {
                        "organisationId": PARTNER_ORG,
                        "name": "Community partner",
                        "purpose": "care coordination",
                        "allowedEventTypes": ["patient.screening_recorded.v1"],
                        "delivery": "WEBHOOK",
                        "webhookUrl": receiver.url,
                    }
                },
            },
            headers={"Authorization": f"Bearer {cluster.token('admin')}"},
            timeout=30.0,
        )
        receiver.secret = registered.json()["data"]["registerPartner"]["webhookSecret"]

        token = cluster.token("care_manager")
        load = Load(url=cluster.url, token=token)
        clients = [threading.Thread(target=load.run) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            kills, during_restart = await asyncio.to_thread(_damage, cluster, token)
        finally:
            load.stop.set()
            for client in clients:
                await asyncio.to_thread(client.join, 120)
        damage_done = time.monotonic()

        # A command while PostgreSQL restarts: the typed, retryable error.
        assert during_restart.status_code == 503, during_restart.text
        error = during_restart.json()["errors"][0]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert error["extensions"]["retryable"] is True
        # A masked error carries an errorId: grep it in the kept logs.
        assert load.unexpected == [], (load.unexpected[:5], f"logs in {cluster.kept_logs}")
        assert len(kills) >= 20 and load.acknowledged > 50 and load.given_up == 0

        await _within(180, lambda: _caught_up(cluster.dsn))

        conn = await asyncpg.connect(cluster.dsn)
        try:
            log = await conn.fetch(
                """SELECT event_id::text, patient_id::text, event_type,
                          tx_id::text::bigint AS tx_id, position
                   FROM events ORDER BY tx_id, position"""
            )
            live = await _dump(conn)
        finally:
            await conn.close()

        # Every acknowledged command is in the log.
        by_patient: dict[str, list[str]] = defaultdict(list)
        for row in log:
            by_patient[row["patient_id"]].append(row["event_type"])
        for patient in load.patients:
            assert "patient.registered" in by_patient[patient]
        for patient in load.consented:
            assert "patient.consent_granted" in by_patient[patient]
        for patient, count in load.screenings.items():
            assert by_patient[patient].count("patient.screening_recorded") >= count

        # Every read model equals a rebuild from the log.
        assert sum(map(len, live.values())) > len(load.patients)
        rebuilt = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli", "rebuild"],
            env={**cluster.env, **cluster.settings},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
        conn = await asyncpg.connect(cluster.dsn)
        try:
            assert await _dump(conn) == live
        finally:
            await conn.close()

        # The topic holds exactly the log after dropping duplicates by id, each
        # patient's events in log order.
        records = await _topic(
            cluster.settings["CARETEAM_KAFKA_BOOTSTRAP_SERVERS"], {r["event_id"] for r in log}
        )
        seen: set[str] = set()
        published: dict[str, list[str]] = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            ce_id = dict(record.headers)["ce_id"].decode()
            if ce_id not in seen:
                seen.add(ce_id)
                published[record.key.decode()].append(ce_id)
        assert seen == {r["event_id"] for r in log}
        expected: dict[str, list[str]] = defaultdict(list)
        for row in log:
            expected[row["patient_id"]].append(row["event_id"])
        assert published == expected

        # The partner missed no screening and got each patient's in log order.
        want = {
            sequence_of(LogPosition(r["tx_id"], r["position"]))
            for r in log
            if r["event_type"] == "patient.screening_recorded"
        }
        await _within(120, lambda: _true(want <= {e["sequence"] for e in receiver.accepted}))
        first: dict[str, dict[str, Any]] = {}
        for event in receiver.accepted:
            first.setdefault(event["id"], event)
        assert sorted(e["sequence"] for e in first.values()) == sorted(want)
        per_subject: dict[str, list[str]] = defaultdict(list)
        for event in first.values():
            per_subject[event["subject"]].append(event["sequence"])
        assert all(s == sorted(s) for s in per_subject.values())
        assert len(per_subject) == len(
            {r["patient_id"] for r in log if r["event_type"] == "patient.screening_recorded"}
        )
        assert receiver.rejected == []

        # The sealers, killed mid-round, left a whole chain and sealed every row.
        async def sealed() -> bool:
            conn = await asyncpg.connect(cluster.dsn)
            try:
                report = await verify(conn)
            finally:
                await conn.close()
            assert report.ok, report.as_dict()["findings"][:5]
            return report.pending == 0 and report.links_checked > 0

        await _within(120, sealed)
    finally:
        await receiver.stop()
    kinds = [k.rsplit("-", 1)[0] for k in kills]
    print(
        f"\ncluster faults: {len(kills)} SIGKILLs ({', '.join(sorted(set(kinds)))})"
        f" and 1 PostgreSQL restart; {load.acknowledged} commands acknowledged"
        f" ({len(load.patients)} patients), {load.queries} queries, {load.retried} retries;"
        f" {len(log)} events; damage {damage_done - started:.0f} s,"
        f" test {time.monotonic() - started:.0f} s"
    )
