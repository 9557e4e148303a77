"""The caseload's fast read path answers exactly what a replay of the log says (issue 14).

`careteam seed` makes a caseload through the domain commands (relative to now). For each
of several "today"s (the seeding day, the last day of the month and the first of the
next, and the first day on which the rules switch a flag on for some patient after the
seeding, with the day before it) a real `careteam serve` runs with its clock on that day
and answers the caseload over HTTP twice (the second answer comes from the server's row
memo) and once more with aliases, a fragment and `@include`. Every field of every row is
compared with the reference: the patient's events read back from the log, folded by the
registry projection's ``evolve`` and evaluated for that day by the rule modules
(``services.api.compliance.queries.caseload_as_of``, the replay `caseloadAsOf` answers with),
serialised here by hand.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from projections.caseload import CaseloadRow, RegistryFlag, ScorePoint
from services.api.compliance.queries import caseload_as_of
from services.api.enums import EpisodeStatus, InstrumentCode, ReviewReason
from services.api.registry.types import RelapsePreventionPlanStatus
from services.crypto import KeyRing, load_master_key
from services.database import create_pool
from services.eventstore import EventStore, row_to_event
from services.settings import Settings
from tests.e2e.server import DEFAULT_ORG, ServerProcess

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

CM = UUID("00000000-0000-4000-8000-0000000000c1")
PATIENTS = 24

SCORE = "{ instrument instrumentCode total severity takenAt }"
ROW = f"""patientId givenName familyName mrn status episodeStatus episodeNumber enrolledAt
  weeksInTreatment baselinePhq9 {SCORE} latestPhq9 {SCORE} phq9PercentChange
  baselineGad7 {SCORE} latestGad7 {SCORE} gad7PercentChange contactCount outreachCount
  lastContactAt daysSinceLastContact lastCaseReviewAt careManagerId pcpId
  psychiatricConsultantId careManagerName relapsePreventionPlan relapsePreventionPlanAt
  minutesThisMonth flags {{ kind ruleId ruleVersion inputs summary source flagId raisedAt }}
  flagged reviewReasons reviewReasonKinds asOf"""
CASELOAD = f"""query {{ caseload(first: 200) {{ totalCount asOf
  edges {{ node {{ {ROW} }} }} pageInfo {{ hasNextPage }} }} }}"""
# The same selection through aliases, a fragment and a directive.
SHAPED = f"""query($all: Boolean!) {{ c: caseload(first: 200) {{ n: totalCount
  edges {{ node {{ ...row latest: latestPhq9 @include(if: $all) {{ total }} }} }} }} }}
  fragment row on CaseloadRow {{ {ROW} }}"""


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _percent(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _score(point: ScorePoint | None) -> dict[str, Any] | None:
    if point is None:
        return None
    return {
        "instrument": point.instrument,
        "instrumentCode": InstrumentCode(point.instrument).name,
        "total": point.total,
        "severity": point.severity,
        "takenAt": point.taken_at.isoformat(),
    }


def _flag(flag: RegistryFlag) -> dict[str, Any]:
    return {
        "kind": flag.kind,
        "ruleId": flag.rule_id,
        "ruleVersion": flag.rule_version,
        "inputs": dict(flag.inputs),
        "summary": flag.summary,
        "source": flag.source,
        "flagId": None if flag.flag_id is None else str(flag.flag_id),
        "raisedAt": _instant(flag.raised_at),
    }


def expected_node(row: CaseloadRow, names: dict[UUID, str]) -> dict[str, Any]:
    """The reference row as the GraphQL answer should serialise it."""
    known = {r.value for r in ReviewReason}
    return {
        "patientId": str(row.patient_id),
        "givenName": row.given_name,
        "familyName": row.family_name,
        "mrn": row.mrn,
        "status": row.status,
        "episodeStatus": None if row.status is None else EpisodeStatus(row.status).name,
        "episodeNumber": row.episode_number,
        "enrolledAt": _instant(row.enrolled_at),
        "weeksInTreatment": row.weeks_in_treatment,
        "baselinePhq9": _score(row.baseline_phq9),
        "latestPhq9": _score(row.latest_phq9),
        "phq9PercentChange": _percent(row.phq9_percent_change),
        "baselineGad7": _score(row.baseline_gad7),
        "latestGad7": _score(row.latest_gad7),
        "gad7PercentChange": _percent(row.gad7_percent_change),
        "contactCount": row.contact_count,
        "outreachCount": row.outreach_count,
        "lastContactAt": _instant(row.last_contact_at),
        "daysSinceLastContact": row.days_since_last_contact,
        "lastCaseReviewAt": _instant(row.last_case_review_at),
        "careManagerId": None if row.care_manager_id is None else str(row.care_manager_id),
        "pcpId": None if row.pcp_id is None else str(row.pcp_id),
        "psychiatricConsultantId": None
        if row.psychiatric_consultant_id is None
        else str(row.psychiatric_consultant_id),
        "careManagerName": names.get(row.care_manager_id) if row.care_manager_id else None,
        "relapsePreventionPlan": RelapsePreventionPlanStatus(
            row.relapse_prevention_plan.value
        ).name,
        "relapsePreventionPlanAt": _instant(row.relapse_prevention_plan_at),
        "minutesThisMonth": row.minutes_this_month,
        "flags": [_flag(f) for f in row.flags],
        "flagged": bool(row.flags),
        "reviewReasons": list(row.review_reasons),
        "reviewReasonKinds": [ReviewReason(r).name for r in row.review_reasons if r in known],
        "asOf": row.as_of.isoformat(),
    }


def differences(got: Any, want: Any, path: str) -> list[str]:
    """Every field where ``got`` differs from ``want``, by its path in the answer."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}.{k}: missing" for k in want if k not in got]
        out += [f"{path}.{k}: not expected" for k in got if k not in want]
        for key in want:
            if key in got:
                out += differences(got[key], want[key], f"{path}.{key}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, expected {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    if type(got) is not type(want) or got != want:
        return [f"{path}: {got!r}, expected {want!r}"]
    return []


async def _replay(dsn: str, data_dir: Path) -> tuple[list[Any], dict[UUID, str]]:
    """Every event of the log in order, decrypted, and the staff directory's names."""
    pool = await create_pool(dsn, Settings())
    try:
        store = EventStore(pool, keyring=KeyRing(load_master_key(None, data_dir)))
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
                          stream_type, stream_version, patient_id, event_type, event_version,
                          payload, metadata, occurred_at, recorded_at
                   FROM events ORDER BY position"""
            )
            records = await store.decrypt([row_to_event(r) for r in rows], conn)
            staff = await conn.fetch("SELECT user_id, display_name FROM staff")
    finally:
        await pool.close()
    return records, {r["user_id"]: r["display_name"] for r in staff}


def reference(records: list[Any], day: date) -> list[CaseloadRow]:
    """The caseload for ``day`` from the replay, in the query's order (flagged first, then
    the earliest enrollment, then the patient id)."""
    at = datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)
    rows = [
        r
        for r in caseload_as_of(records, at, CM)
        if r.status in {"enrolled", "active_treatment", "relapse_prevention"}
    ]
    return sorted(rows, key=lambda r: (not r.flags, r.enrolled_at, r.patient_id))


def first_switch_on(records: list[Any], start: date) -> date:
    """The first day after ``start`` on which a rule raises a flag it did not the day
    before, for some patient of the replay."""
    before = {r.patient_id: {f.kind for f in r.flags} for r in reference(records, start)}
    for offset in range(1, 60):
        day = start + timedelta(days=offset)
        now = {r.patient_id: {f.kind for f in r.flags} for r in reference(records, day)}
        if any(kinds - before.get(pid, set()) for pid, kinds in now.items()):
            return day
        before = now
    raise AssertionError("no flag switches on within 60 days of the seeding")


def _nodes(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in page["edges"]]


def _serve(db_dsn: str, data_dir: Path, clock: datetime, until: date) -> list[dict[str, Any]]:
    """Answers of a server whose clock starts at ``clock``: the caseload again and again
    until its day is ``until`` (each answer says its day in ``asOf``), then once more and
    once through aliases, a fragment and a directive."""
    server = ServerProcess(
        data_dir=data_dir,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_TEST_CLOCK_START": clock.isoformat()},
    ).start()
    bodies: list[dict[str, Any]] = []
    try:
        server.use(server.token("care_manager", user=CM, org=DEFAULT_ORG))
        for _ in range(600):
            bodies.append(server.graphql(CASELOAD))
            assert "errors" not in bodies[-1], bodies[-1].get("errors")
            if bodies[-1]["data"]["caseload"]["asOf"] == until.isoformat():
                break
            time.sleep(0.25)
        bodies.append(server.graphql(CASELOAD))
        bodies.append(server.graphql(SHAPED, {"all": True}))
    finally:
        server.stop()
    return bodies


def _across_midnight(db_dsn: str, data_dir: Path, day: date) -> list[dict[str, Any]]:
    """Answers from one server process for the day before ``day`` and for ``day``: its
    clock starts shortly before midnight (with a wider margin if the server took too
    long to start to answer before midnight)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for margin in (30, 120):
        bodies = _serve(db_dsn, data_dir, midnight - timedelta(seconds=margin), day)
        if day - timedelta(days=1) in _days(bodies):
            return bodies
    raise AssertionError("the server never answered before midnight")


def _days(bodies: list[dict[str, Any]]) -> set[date]:
    """The days the plain caseload answers were evaluated for."""
    pages = [b["data"]["caseload"] for b in bodies if "caseload" in b["data"]]
    return {date.fromisoformat(p["asOf"]) for p in pages}


def check(body: dict[str, Any], records: list[Any], names: dict[UUID, str]) -> int:
    """Compares one answer with the replay for its day, field by field; rows compared."""
    assert "errors" not in body, body.get("errors")
    if "caseload" in body["data"]:
        page = body["data"]["caseload"]
        day = date.fromisoformat(page["asOf"])
        want = [expected_node(r, names) for r in reference(records, day)]
        assert page["totalCount"] == len(want)
        assert page["pageInfo"] == {"hasNextPage": False}
        label = f"{day} caseload"
    else:
        page = body["data"]["c"]
        day = date.fromisoformat(_nodes(page)[0]["asOf"])
        want = [
            {
                **w,
                "latest": None if w["latestPhq9"] is None else {"total": w["latestPhq9"]["total"]},
            }
            for w in (expected_node(r, names) for r in reference(records, day))
        ]
        assert page["n"] == len(want)
        label = f"{day} shaped"
    assert want, "the seeded caseload is not empty"
    found = differences(_nodes(page), want, label)
    assert not found, "\n".join(found[:20])
    return len(want)


def test_caseload_matches_the_replay_field_by_field(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_DATA_DIR": str(tmp_path)}
    env.pop("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", None)
    command = [sys.executable, "-m", "services.cli", "seed", "--patients", str(PATIENTS)]
    command += ["--care-manager", str(CM)]
    seeded = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    records, names = asyncio.run(_replay(db_dsn, tmp_path))

    seeded_on = datetime.now(UTC).date()  # the seed writes relative to the real clock
    next_month = (seeded_on.replace(day=28) + timedelta(days=4)).replace(day=1)
    switch = first_switch_on(records, seeded_on)
    noon = datetime(seeded_on.year, seeded_on.month, seeded_on.day, 12, tzinfo=UTC)
    bodies = _serve(db_dsn, tmp_path, noon, seeded_on)
    for day in sorted({next_month, switch}):
        bodies += _across_midnight(db_dsn, tmp_path, day)
    compared = sum(check(body, records, names) for body in bodies)

    wanted = {
        seeded_on,
        next_month - timedelta(days=1),
        next_month,
        switch - timedelta(days=1),
        switch,
    }
    assert wanted <= _days(bodies)

    # The days include a flag switching on and a month's minutes starting afresh.
    def kinds(day: date) -> set[tuple[UUID, str]]:
        return {(r.patient_id, f.kind) for r in reference(records, day) for f in r.flags}

    assert kinds(switch) - kinds(switch - timedelta(days=1))
    minutes = {d: sum(r.minutes_this_month for r in reference(records, d)) for d in wanted}
    assert minutes[next_month] == 0 < minutes[next_month - timedelta(days=1)]
    assert compared >= len(wanted) * PATIENTS // 2
