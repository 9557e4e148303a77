"""Rotating the master key as an operator does it: serve with the old key, roll to the new
key with the old one as previous, ``careteam keys rotate-master``, then serve with the new
key alone; and a process given a wrong key refuses to start, naming the settings."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.server import ServerProcess
from tests.e2e.test_patient_search import found, register, search

OLD = base64.b64encode(os.urandom(32)).decode()
NEW = base64.b64encode(os.urandom(32)).decode()
WRONG = base64.b64encode(os.urandom(32)).decode()
READ = """query($id: UUID!) { patient(id: $id) { ... on Patient { givenName familyName } } }"""


def _keys(data_dir: Path, env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "keys", action, "--data-dir", str(data_dir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _serve(tmp_path: Path, db_dsn: str, **keys: str) -> ServerProcess:
    env = {"CARETEAM_DATABASE_URL": db_dsn, **keys}
    return ServerProcess(data_dir=tmp_path, env=env).start()


def test_names_and_mrn_search_survive_a_master_key_rotation(tmp_path: Path, db_dsn: str) -> None:
    server = _serve(tmp_path, db_dsn, CARETEAM_MASTER_KEY=OLD)
    admin = server.token("admin")
    try:
        patient_id = register(server, admin, "Rotaqa", "Keyfield", "ROT-881")
    finally:
        server.stop()

    both = {"CARETEAM_MASTER_KEY": NEW, "CARETEAM_MASTER_KEY_PREVIOUS": OLD}
    # The replicas roll to the new key first; they read keys wrapped by either.
    server = _serve(tmp_path, db_dsn, **both)
    try:
        second = register(server, admin, "Rotaqb", "Keyfield", "ROT-882")
        before = _keys(tmp_path, {"CARETEAM_DATABASE_URL": db_dsn, **both}, "status")
        assert before.returncode == 1, before.stderr
        assert "1 wrapped by another master key" in before.stdout
        rotated = _keys(tmp_path, {"CARETEAM_DATABASE_URL": db_dsn, **both}, "rotate-master")
        assert rotated.returncode == 0, rotated.stderr
        assert "re-wrapped 1 patient keys; 1 already current" in rotated.stdout
    finally:
        server.stop()

    server = _serve(tmp_path, db_dsn, CARETEAM_MASTER_KEY=NEW)
    try:
        for pid, given in ((patient_id, "Rotaqa"), (second, "Rotaqb")):
            body = server.graphql(READ, {"id": pid}, token=admin)
            assert body["data"]["patient"] == {"givenName": given, "familyName": "Keyfield"}
        assert found(search(server, admin, mrn="ROT-881")) == [patient_id]
    finally:
        server.stop()

    # The old key alone can no longer start careteam on this database.
    old_only = {"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_MASTER_KEY": OLD}
    refused = _keys(tmp_path, old_only, "status")
    assert refused.returncode == 2
    assert "cannot start" in refused.stderr and "CARETEAM_MASTER_KEY_PREVIOUS" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_wrong_or_malformed_master_key_stops_the_start_naming_the_setting(
    tmp_path: Path, db_dsn: str
) -> None:
    server = _serve(tmp_path, db_dsn, CARETEAM_MASTER_KEY=OLD)
    try:
        register(server, server.token("admin"), "Rotaqc", "Keyfield", "ROT-883")
    finally:
        server.stop()
    base = {"CARETEAM_DATABASE_URL": db_dsn}
    wrong = _keys(tmp_path, {**base, "CARETEAM_MASTER_KEY": WRONG}, "status")
    assert wrong.returncode == 2 and "cannot start" in wrong.stderr, wrong.stderr
    malformed = _keys(
        tmp_path,
        {**base, "CARETEAM_MASTER_KEY": OLD, "CARETEAM_MASTER_KEY_PREVIOUS": "not-base64!"},
        "status",
    )
    assert malformed.returncode == 2
    assert "CARETEAM_MASTER_KEY_PREVIOUS is not base64" in malformed.stderr
    for result in (wrong, malformed):
        assert "Traceback" not in result.stderr
        assert OLD not in result.stderr + result.stdout and WRONG not in result.stderr
