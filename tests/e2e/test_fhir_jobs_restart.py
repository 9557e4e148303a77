"""FHIR import and Bulk Data export jobs outlive their server: a real ``careteam serve`` is
killed with SIGKILL during and after jobs and started again on the same database; an
erasure reaches a finished export."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_fhir_import import csv_text, history, run_import, start_import

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

FORGET = """mutation($id: UUID!) { forgetPatient(patientId: $id, reason: "erasure request") {
  __typename } }"""


@pytest.fixture
def restartable(db_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """careteam serve on its own database, which a test may kill and start again."""
    proc = ServerProcess(data_dir=tmp_path, env={"CARETEAM_DATABASE_URL": db_dsn})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def restart_after_sigkill(server: ServerProcess) -> None:
    server.stop(signal.SIGKILL)
    assert server.proc is not None and server.proc.returncode == -signal.SIGKILL
    server.start()


def get(url: str, token: str) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def delete(url: str, token: str) -> httpx.Response:
    return httpx.delete(url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def poll(url: str, token: str, *, until: Any, seconds: float = 120.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        answer = get(url, token)
        if until(answer):
            return answer
        assert time.monotonic() < deadline, (answer.status_code, answer.headers)
        time.sleep(0.2)


def progress(answer: httpx.Response) -> tuple[int, int]:
    done, _, total = answer.headers["X-Progress"].partition("/")
    return int(done), int(total)


def export(server: ServerProcess, token: str) -> str:
    kick = httpx.get(
        f"{server.url}/fhir/Patient/$export",
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
        timeout=30.0,
    )
    assert kick.status_code == 202, kick.text
    return kick.headers["Content-Location"]


async def fetch(db_dsn: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_an_import_killed_midway_answers_how_far_it_got_and_a_finished_report_survives(
    restartable: ServerProcess, db_dsn: str
) -> None:
    """A finished import's report and an interrupted import's progress are answered by
    the restarted server at the same status URLs; importing the interrupted file again
    completes it, leaving what was written before the kill unchanged. An export killed
    while it builds answers that it was interrupted."""
    server = restartable
    token = server.token("care_manager", user=uuid4())
    rehearsal = csv_text([history(i) for i in range(3)])
    checked = start_import(server, token, rehearsal, "text/csv", dry_run=True)
    checked_url = checked.headers["Content-Location"]
    finished = poll(checked_url, token, until=lambda a: a.status_code != 202)
    assert finished.status_code == 200, finished.text
    rows = 60
    body = csv_text([history(i) for i in range(rows)])
    started = start_import(server, token, body, "text/csv")
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    running = poll(status_url, token, until=lambda a: progress(a)[0] >= 3)
    assert running.status_code == 202

    restart_after_sigkill(server)

    assert get(checked_url, token).json() == finished.json()
    assert get(status_url, server.token("care_manager", user=uuid4())).status_code == 404
    stopped = poll(status_url, token, until=lambda a: a.status_code != 202)
    assert stopped.status_code == 500
    outcome = stopped.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "incomplete"
    done, total = progress(stopped)
    assert total == rows and 3 <= done < rows
    written = await fetch(db_dsn, "SELECT DISTINCT patient_id FROM patient_mrn_index")
    assert done <= len(written) <= done + 1 < rows

    again = run_import(server, token, body)
    assert again["counts"].get("rejected", 0) == 0
    assert again["counts"]["unchanged"] == len(written)
    assert again["counts"]["created"] == rows - len(written)

    building = export(server, token)
    restart_after_sigkill(server)
    interrupted = poll(building, token, until=lambda a: a.status_code != 202)
    assert interrupted.status_code == 500
    assert interrupted.json()["issue"][0]["code"] == "incomplete"


async def test_a_finished_export_is_served_after_a_restart_and_forgetting_a_patient_removes_them(
    restartable: ServerProcess, db_dsn: str
) -> None:
    """The manifest and files of a finished Bulk Data export are served by the restarted
    server; the stored lines are ciphertext; forgetting a patient afterwards deletes their
    lines, so neither the manifest nor any file holds them any more."""
    server = restartable
    token = server.token("care_manager", user=uuid4())
    report = run_import(server, token, csv_text([history(i) for i in (1, 2)]))
    ids = [entry["patientId"] for entry in report["entries"]]
    assert report["counts"] == {"created": 2}
    status_url = export(server, token)
    manifest = poll(status_url, token, until=lambda a: a.status_code != 202)
    assert manifest.status_code == 200, manifest.text
    before = {o["type"]: get(o["url"], token).text for o in manifest.json()["output"]}
    assert all(ids[0] in text and ids[1] in text for text in before.values())
    stored = await fetch(db_dsn, "SELECT line::text AS line FROM fhir_export_lines")
    assert stored and not [r for r in stored if "Import1" in r["line"] or "IMP-0" in r["line"]]

    restart_after_sigkill(server)

    again = get(status_url, token)
    assert again.status_code == 200
    assert again.json() == manifest.json()
    assert {o["type"]: get(o["url"], token).text for o in again.json()["output"]} == before

    admin = server.token("admin", user=uuid4())
    forgot = server.graphql(FORGET, {"id": ids[0]}, token=admin)
    assert forgot["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", forgot
    left = await fetch(
        db_dsn, "SELECT count(*) AS n FROM fhir_export_lines WHERE patient_id = $1", UUID(ids[0])
    )
    assert left[0]["n"] == 0
    after = get(status_url, token).json()
    counts = {o["type"]: o["count"] for o in after["output"]}
    assert counts["Patient"] == 1
    for output in after["output"]:
        text = get(output["url"], token).text
        assert ids[0] not in text and "Import1" not in text
        assert ids[1] in text

    assert delete(status_url, token).status_code == 202
    assert get(status_url, token).status_code == 404
    assert await fetch(db_dsn, "SELECT 1 FROM fhir_export_lines") == []
