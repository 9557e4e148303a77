"""Operations: a database restart is a typed, retryable error; no embedded PostgreSQL
outlives the ``serve`` that started it; /metrics is what a Prometheus parser accepts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from services.database import EmbeddedPostgres
from tests.e2e.server import ServerProcess
from tests.integration.readmodels_support import read_model_positions
from tests.pg_control import pg_ctl, start

REGISTER = """
mutation($input: RegisterPatientInput!) {
  registerPatient(input: $input) {
    __typename
    ... on PatientPayload { patient { id } }
    ... on ValidationError { code }
  }
}"""


def _input(n: int) -> dict[str, Any]:
    return {
        "givenName": "Test",
        "familyName": "Synthetic",
        "birthDate": "1980-01-01",
        "mrn": f"OPS-{n}",
    }


def _post(server: ServerProcess, query: str, variables: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {server.default_token}"},
        timeout=30.0,
    )


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _postgres_of(pgdata: Path) -> list[int]:
    """Every live postgres process whose command line names ``pgdata``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(pgdata) in cmdline and _running(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_metrics_parse_with_the_prometheus_parser(server: ServerProcess) -> None:
    """Every family parses; the lag gauges keep their names; latency and outcomes appear."""
    body = server.graphql(REGISTER, {"input": _input(1)})
    assert body["data"]["registerPatient"]["__typename"] == "PatientPayload"
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    lag = families["careteam_projection_events_behind"]
    assert lag.type == "gauge"
    assert {s.labels["projection"] for s in lag.samples} >= {"patient_view"}
    assert families["careteam_audit_chain_intact"].samples[0].value == 1
    latency = families["careteam_graphql_request_duration_seconds"]
    assert latency.type == "histogram"
    counts = [
        s
        for s in latency.samples
        if s.name.endswith("_count") and s.labels["operation_type"] == "mutation"
    ]
    assert counts and counts[0].value >= 1
    # By the operation's root field, a name from the schema (never the client's own name).
    assert {s.labels["operation"] for s in counts} == {"registerPatient"}
    by_partition = families["careteam_projection_partition_events_behind"]
    assert by_partition.type == "gauge"
    assert {s.labels["partition"] for s in by_partition.samples} == {str(p) for p in range(16)}
    # serve runs the projector: its worker owns every partition (no other worker).
    assert families["careteam_projector_partitions_owned"].samples[0].value == 16
    outcomes = families["careteam_mutation_outcomes"]
    ok = [s for s in outcomes.samples if s.name.endswith("_total") and s.labels["code"] == "OK"]
    assert ok and ok[0].value >= 1

    pool = {s.labels["state"]: s.value for s in families["careteam_db_pool_connections"].samples}
    assert set(pool) == {"in_use", "idle"}
    assert pool["in_use"] + pool["idle"] >= 2  # CARETEAM_DB_POOL_MIN
    assert families["careteam_db_pool_max_connections"].samples[0].value == 10
    assert families["careteam_partner_feed_events_behind"].samples[0].value == 0
    set_aside = families["careteam_partner_messages_set_aside"]
    assert {s.labels["status"]: s.value for s in set_aside.samples} == {
        "retrying": 0,
        "held": 0,
        "dead": 0,
        "redelivery_requested": 0,
    }
    # Without Kafka there is no relay to measure.
    assert "careteam_relay_events_behind" not in families


async def test_metrics_count_websocket_subscribers(server: ServerProcess) -> None:
    def subscribers() -> float:
        text = httpx.get(f"{server.url}/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        value: float = families["careteam_websocket_subscribers"].samples[0].value
        return value

    assert subscribers() == 0
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
    )
    try:
        token = server.token("care_manager")
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = "subscription { careEvents { patientId } }"
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        deadline = time.monotonic() + 10
        while subscribers() != 1:
            assert time.monotonic() < deadline, "the subscription was not counted"
            await asyncio.sleep(0.1)
    finally:
        await socket.close()
    deadline = time.monotonic() + 10
    while subscribers() != 0:
        assert time.monotonic() < deadline, "the closed subscription was still counted"
        await asyncio.sleep(0.1)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A PostgreSQL server for this test alone, so that it can be stopped mid-run."""
    pgdata = tmp_path / "pg"
    embedded = EmbeddedPostgres(str(pgdata), delete_on_exit=True)
    dsn = embedded.start()
    try:
        yield pgdata.resolve(), dsn
    finally:
        embedded.stop()


def test_a_command_while_postgres_is_down_is_a_typed_retryable_503(
    own_postgres: tuple[Path, str], tmp_path: Path
) -> None:
    pgdata, dsn = own_postgres
    server = ServerProcess(data_dir=tmp_path / "serve", env={"CARETEAM_DATABASE_URL": dsn})
    server.start()
    try:
        server.use(server.token("care_manager"))
        body = server.graphql(REGISTER, {"input": _input(1)})
        assert body["data"]["registerPatient"]["__typename"] == "PatientPayload"

        pg_ctl(pgdata, "-m", "immediate", "-w", "stop")
        response = _post(server, REGISTER, {"input": _input(2)})
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"].isdigit()
        errors = response.json()["errors"]
        assert errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert errors[0]["extensions"]["retryable"] is True
        assert errors[0]["extensions"]["retryAfterSeconds"] >= 1
        assert "Unexpected error" not in response.text
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and "Retry-After" in ready.headers

        start(pgdata)
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after PostgreSQL restarted"
            time.sleep(0.2)
        again = _post(server, REGISTER, {"input": _input(3)})
        assert again.status_code == 200
        assert again.json()["data"]["registerPatient"]["__typename"] == "PatientPayload"
        log_text = server.log_path.read_text()
        assert "Synthetic" not in log_text and "OPS-" not in log_text
    finally:
        server.stop()


CONSENT = """mutation($id: UUID!) { grantConsent(input: {patientId: $id, kind: DATA_SHARING,
  partnerOrganisationId: "00000000-0000-4000-8000-0000000000b1"}) { __typename } }"""


def _answer_problem(response: httpx.Response) -> str | None:
    """None for an answer a client can act on (data, the typed retryable 503, or the
    typed "recorded, not readable yet" while the in-process projector's connections are
    being terminated); else what was wrong with it, the masked error's errorId included."""
    if response.status_code == 503:
        error = response.json()["errors"][0]
        typed = error["extensions"].get("code") == "SERVICE_UNAVAILABLE"
        return None if typed and error["extensions"].get("retryable") is True else response.text
    if response.status_code == 200 and _not_yet_visible(response):
        return None
    if response.status_code != 200 or "errors" in response.json():
        return f"{response.status_code} {response.text[:300]}"
    return None


def _not_yet_visible(response: httpx.Response) -> bool:
    errors = response.json().get("errors") or []
    return bool(errors) and all(
        e.get("extensions", {}).get("code") == "RESULT_NOT_YET_VISIBLE"
        and e["extensions"].get("written") is True
        and e["extensions"].get("retryable") is True
        for e in errors
    )


@pytest.mark.slow
def test_commands_while_backends_are_terminated_get_an_answer_or_the_typed_retryable_error(
    own_postgres: tuple[Path, str], tmp_path: Path
) -> None:
    """Connections dropped under a running serve (pg_terminate_backend of every client
    backend, again and again, as a restart does): each command answers with its data or
    the typed retryable 503, never a masked "Unexpected error.". A pooled connection
    whose backend died while idle used to fail in asyncpg's client ("cannot switch to
    state"), and a read audit whose insert lost its connection failed the same way."""
    import asyncio
    import random
    import threading
    import uuid

    import asyncpg

    _, dsn = own_postgres
    # The projector loses its connection as often: a short read-your-writes wait keeps
    # the commands coming (an answer after a timed-out wait is data too).
    server = ServerProcess(
        data_dir=tmp_path / "serve",
        env={"CARETEAM_DATABASE_URL": dsn, "CARETEAM_READ_YOUR_WRITES_TIMEOUT_SECONDS": "0.5"},
    )
    server.start()
    stop = threading.Event()
    lock = threading.Lock()
    problems: list[str] = []
    counts = {"answered": 0, "unavailable": 0, "terminated": 0}

    async def terminate() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                conn = await asyncpg.connect(dsn)
                try:
                    killed = await conn.fetchval(
                        """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                           FROM pg_stat_activity WHERE datname = current_database()
                             AND pid <> pg_backend_pid() AND backend_type = 'client backend'"""
                    )
                finally:
                    await conn.close()
                counts["terminated"] += int(killed)
            await asyncio.sleep(random.uniform(0.01, 0.15))

    def send(client: httpx.Client, query: str, variables: dict[str, Any]) -> Any:
        key = str(uuid.uuid4())
        while not stop.is_set():
            response = client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {server.default_token}", "Idempotency-Key": key},
            )
            problem = _answer_problem(response)
            with lock:
                counts["answered"] += 1
                if problem is not None:
                    problems.append(problem)
                    return None
                if response.status_code != 503 and not _not_yet_visible(response):
                    return response.json()["data"]
                counts["unavailable"] += 1
            time.sleep(0.05)
        return None

    def clients() -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            n = 0
            while not stop.is_set():
                n += 1
                data = send(
                    client, REGISTER, {"input": _input(n + 1000 * threading.get_ident() % 10**6)}
                )
                patient = ((data or {}).get("registerPatient") or {}).get("patient")
                if patient is not None:
                    send(client, CONSENT, {"id": patient["id"]})

    try:
        server.use(server.token("care_manager"))
        threads = [threading.Thread(target=clients) for _ in range(3)]
        threads.append(threading.Thread(target=lambda: asyncio.run(terminate())))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not problems:
            if counts["answered"] >= 80 and counts["unavailable"] >= 10:
                break
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(60)
        print(f"\nbackends terminated under load: {counts}")
        assert problems == [], problems[:5]
        assert counts["terminated"] > 0 and counts["unavailable"] >= 10, counts
        log_text = server.log_path.read_text()
        assert "graphql unexpected error" not in log_text
        assert "Synthetic" not in log_text and "OPS-" not in log_text
    finally:
        stop.set()
        server.stop()


def test_no_embedded_postgres_outlives_a_sigkilled_serve(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path)
    server.env.pop("CARETEAM_DATABASE_URL", None)
    server.start()
    pgdata = (tmp_path / "postgres").resolve()
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        assert _running(pid)
        server.stop(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _running(pid) or _postgres_of(pgdata):
            assert time.monotonic() < deadline, "embedded PostgreSQL outlived its serve"
            time.sleep(0.2)
        assert not (pgdata / "postmaster.pid").exists()
        # The next serve on the same folder starts cleanly (and stops it on SIGTERM).
        server.start()
        server.stop()
        deadline = time.monotonic() + 30
        while _postgres_of(pgdata):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.stop(signal.SIGKILL)


def _spawn_projector(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    import sys

    with (data_dir / "projector.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "projector", "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _checkpoints(dsn: str) -> tuple[dict[str, int], int]:
    """The read models' checkpoint positions and the log's last position."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        positions = await read_model_positions(conn)
        last = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    finally:
        await conn.close()
    return positions, int(last)


async def test_serve_api_only_leaves_projection_to_a_projector_process(
    db_dsn: str, tmp_path: Path
) -> None:
    import asyncio

    server = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_READ_YOUR_WRITES_TIMEOUT_SECONDS": "1"},
        args=("--components", "api"),
    )
    server.start()
    projector: subprocess.Popen[bytes] | None = None
    try:
        server.use(server.token("care_manager"))
        unseen = await asyncio.to_thread(_post, server, REGISTER, {"input": _input(1)})
        # Written, but no read model shows it within the wait: a typed, retryable error
        # that says it was written, never PATIENT_NOT_FOUND.
        body = unseen.json()
        assert unseen.status_code == 200 and body["data"] is None, body
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "RESULT_NOT_YET_VISIBLE", error
        assert error["extensions"]["written"] is True and error["extensions"]["retryable"]
        await asyncio.sleep(1.0)
        positions, last = await _checkpoints(db_dsn)
        assert last > 0
        assert all(p == 0 for p in positions.values()), "an api-only serve projected"

        projector = _spawn_projector(tmp_path, server.env)
        deadline = time.monotonic() + 60
        while True:
            positions, last = await _checkpoints(db_dsn)
            if positions and all(p == last for p in positions.values()):
                break
            assert time.monotonic() < deadline, "the projector process did not catch up"
            await asyncio.sleep(0.2)

        # With the projector running elsewhere, a command's read-your-writes wait succeeds.
        response = await asyncio.to_thread(_post, server, REGISTER, {"input": _input(2)})
        assert response.json()["data"]["registerPatient"]["__typename"] == "PatientPayload"
    finally:
        if projector is not None:
            projector.send_signal(signal.SIGTERM)
            projector.wait(30)
        server.stop()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unknown_component_is_refused_at_start_naming_the_setting(
    how: str, tmp_path: Path
) -> None:
    import sys

    args = [sys.executable, "-m", "services.cli", "serve", "--data-dir", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARETEAM_")}
    if how == "flag":
        args += ["--components", "api,bogus"]
    else:
        env["CARETEAM_COMPONENTS"] = "projector,bogus"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "bogus" in done.stderr
    assert "CARETEAM_COMPONENTS" in done.stderr and "--components" in done.stderr
    assert not (tmp_path / "postgres").exists()


def test_a_worker_without_the_api_answers_its_probes_on_the_health_port(
    db_dsn: str, tmp_path: Path
) -> None:
    """`serve --components projector,sealer` with CARETEAM_HEALTH_PORT: /healthz and
    /readyz (database, migrations, audit chain) for a Kubernetes probe, and nothing else
    on that port; it stops cleanly on SIGTERM."""
    server = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn},
        args=("--components", "projector,sealer"),
    )
    server.env["CARETEAM_HEALTH_PORT"] = str(server.port)
    server.start()  # waits for /readyz on the health port to answer 200
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/readyz", timeout=5).json() == {"status": "ready"}
        assert httpx.post(f"{server.url}/graphql", json={}, timeout=5).status_code == 404
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode == 0
