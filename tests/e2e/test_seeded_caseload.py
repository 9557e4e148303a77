"""`careteam seed` makes a caseload through the user-facing commands; every role's query
answers over HTTP from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

from tests.e2e.server import DEFAULT_ORG, ServerProcess

CM = UUID("00000000-0000-4000-8000-0000000000c1")
PCP = UUID("00000000-0000-4000-8000-0000000000b1")
PSY = UUID("00000000-0000-4000-8000-0000000000a1")
PATIENTS = 12


def test_seeded_caseload_answers_every_role_query(db_dsn: str, tmp_path: Path) -> None:
    """Seed 12 patients, then the care manager, PCP, psychiatrist and billing views agree."""
    env = {**os.environ, "CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_DATA_DIR": str(tmp_path)}
    env.pop("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", None)
    seeded = subprocess.run(
        [sys.executable, "-m", "services.cli", "seed", "--patients", str(PATIENTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    assert f"seeded {PATIENTS} patients" in seeded.stdout
    assert f"{PATIENTS}/{PATIENTS}" in seeded.stderr, "the progress bar reaches the end"

    server = ServerProcess(data_dir=tmp_path, env={"CARETEAM_DATABASE_URL": db_dsn}).start()
    try:
        cm = server.token("care_manager", user=CM, org=DEFAULT_ORG)
        caseload = server.graphql(
            "{ caseload(first: 100) { totalCount edges { node { patientId status "
            "weeksInTreatment flags { kind ruleId ruleVersion } } } } }",
            token=cm,
        )["data"]["caseload"]
        assert caseload["totalCount"] == PATIENTS
        assert {e["node"]["status"] for e in caseload["edges"]} <= {
            "active_treatment",
            "relapse_prevention",
            "enrolled",
        }
        flags = [f for e in caseload["edges"] for f in e["node"]["flags"]]
        assert all(f["ruleId"] and f["ruleVersion"] for f in flags)

        pcp = server.token("pcp", user=PCP, org=DEFAULT_ORG)
        panel = server.graphql("{ panel { patients { patientId } } }", token=pcp)
        assert len(panel["data"]["panel"]["patients"]) == PATIENTS

        psy = server.token("psychiatrist", user=PSY, org=DEFAULT_ORG)
        queue = server.graphql("{ reviewQueue { totalCount } }", token=psy)
        assert 0 < queue["data"]["reviewQueue"]["totalCount"] <= PATIENTS

        outsider = server.token("care_manager", org=DEFAULT_ORG)
        empty = server.graphql("{ caseload { totalCount } }", token=outsider)
        assert empty["data"]["caseload"]["totalCount"] == 0
    finally:
        server.stop()
