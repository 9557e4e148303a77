"""The role views count days in the clinic's zone, over HTTP against the real server
(issue 18, clinic calendars; docs/clinical-time.md, section 9).

The organisation is in America/Los_Angeles and the server's clock
(``CARETEAM_TEST_CLOCK_START``, a test-only setting) reads 23:30 local time on a day on
which daylight saving time changes, which is already the next day in UTC. "Today" in the
registry and the worklist, days since the last contact and which tasks are overdue must
follow the local day: in UTC every one of them would be a day later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.e2e.journey import command
from tests.e2e.server import ServerProcess

ZONE = "America/Los_Angeles"

SET_ORG = """mutation($i: SetOrganisationInput!) { setOrganisation(input: $i) {
    __typename ... on ValidationError { code field } } }"""
ROW = """query($id: UUID!) { registryRow(patientId: $id) {
    asOf daysSinceLastContact lastContactAt } }"""
CASELOAD = "query { caseload { asOf } }"
WORKLIST = """query { worklist { __typename ... on WorklistConnection {
    asOf edges { node { kind patientId taskId dueOn overdue urgency } } } } }"""
PATIENT = "... on PatientPayload { patient { id } }"
CREATED = "... on PatientPayload { createdId }"


@dataclass(frozen=True)
class DstDay:
    """A server clock at 23:30 local on a daylight-saving day, and contacts around it."""

    name: str
    clock: str  # the server's clock, in UTC: already the next day there
    local_today: str
    yesterday: str
    enrolled_at: str
    contact_yesterday: str  # 10:00 local the day before: two UTC days before the clock
    contact_on_the_day: str  # early on the DST day itself, around the change
    contact_15_days_ago: str  # 20:00 local, 15 local days before: overdue from today


SPRING = DstDay(
    name="dst-starts",
    clock="2026-03-09T06:30:00+00:00",  # 23:30 PDT on Sunday 8 March 2026
    local_today="2026-03-08",
    yesterday="2026-03-07",
    enrolled_at="2026-02-02T10:00:00-08:00",
    contact_yesterday="2026-03-07T10:00:00-08:00",
    contact_on_the_day="2026-03-08T01:59:00-08:00",  # the last PST minute
    contact_15_days_ago="2026-02-21T20:00:00-08:00",  # 22 February in UTC
)
AUTUMN = DstDay(
    name="dst-ends",
    clock="2026-11-02T07:30:00+00:00",  # 23:30 PST on Sunday 1 November 2026
    local_today="2026-11-01",
    yesterday="2026-10-31",
    enrolled_at="2026-10-01T10:00:00-07:00",
    contact_yesterday="2026-10-31T10:00:00-07:00",
    contact_on_the_day="2026-11-01T01:30:00-08:00",  # the second 01:30 (PST)
    contact_15_days_ago="2026-10-17T20:00:00-07:00",  # 18 October in UTC
)


@pytest.fixture
def clinic_server(db_dsn: str, tmp_path: Path) -> Iterator[Callable[[DstDay], ServerProcess]]:
    """Starts careteam serve with its clock set for a DstDay (one server per test)."""
    started: list[ServerProcess] = []

    def start(day: DstDay) -> ServerProcess:
        proc = ServerProcess(
            data_dir=tmp_path,
            env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_TEST_CLOCK_START": day.clock},
        )
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["__typename"] == "PatientPayload", result
    return result


def _patient(
    server: ServerProcess, cm: str, day: DstDay, contact_at: str, family_name: str = "Test"
) -> str:
    """A patient of ``cm`` enrolled a month before, with one contact at ``contact_at``."""
    pid: str = _ok(
        command(
            server,
            "registerPatient",
            {
                "givenName": "Zone",
                "familyName": family_name,
                "birthDate": "1980-05-05",
                "mrn": f"Z-{uuid4().hex[:8]}",
                "occurredAt": day.enrolled_at,
            },
            cm,
            PATIENT,
        )
    )["patient"]["id"]
    _ok(command(server, "enrollPatient", {"patientId": pid, "occurredAt": day.enrolled_at}, cm, ""))
    _ok(
        command(
            server,
            "logContact",
            {
                "patientId": pid,
                "activityKind": "CONTACT",
                "modalityKind": "PHONE",
                "minutes": 10,
                "occurredAt": contact_at,
            },
            cm,
            "",
        )
    )
    return pid


def _row(server: ServerProcess, token: str, pid: str) -> dict[str, Any]:
    """The registry row once the read model has the contact."""
    deadline = time.monotonic() + 15
    while True:
        body = server.graphql(ROW, {"id": pid}, token=token)
        assert "errors" not in body, body
        row: dict[str, Any] | None = body["data"]["registryRow"]
        if (row and row["lastContactAt"]) or time.monotonic() > deadline:
            assert row is not None and row["lastContactAt"], body
            return row
        time.sleep(0.2)


def _worklist(server: ServerProcess, token: str, wanted: int) -> tuple[str, list[dict[str, Any]]]:
    """The worklist's asOf and its items, once ``wanted`` tasks are shown."""
    deadline = time.monotonic() + 15
    while True:
        body = server.graphql(WORKLIST, token=token)
        assert "errors" not in body, body
        page = body["data"]["worklist"]
        assert page["__typename"] == "WorklistConnection", page
        items = [e["node"] for e in page["edges"]]
        if sum(i["kind"] == "TASK" for i in items) >= wanted or time.monotonic() > deadline:
            return page["asOf"], items
        time.sleep(0.2)


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=lambda d: d.name)
def test_today_days_since_contact_and_due_tasks_follow_the_clinics_local_day(
    clinic_server: Callable[[DstDay], ServerProcess], day: DstDay
) -> None:
    server = clinic_server(day)
    org, cm_id = uuid4(), uuid4()
    admin = server.token("admin", org=org)
    cm = server.token("care_manager", org=org, user=cm_id)
    set_org = server.graphql(SET_ORG, {"i": {"name": "Clinic", "timeZone": ZONE}}, token=admin)
    assert set_org["data"]["setOrganisation"]["__typename"] == "Organisation", set_org

    before = _patient(server, cm, day, day.contact_yesterday)
    same_day = _patient(server, cm, day, day.contact_on_the_day)
    overdue = _patient(server, cm, day, day.contact_15_days_ago)

    # "Today" is the local day; the contacts' days are local days (UTC: 2 and 1).
    yesterday_row = _row(server, cm, before)
    assert (yesterday_row["asOf"], yesterday_row["daysSinceLastContact"]) == (day.local_today, 1)
    same_day_row = _row(server, cm, same_day)
    assert (same_day_row["asOf"], same_day_row["daysSinceLastContact"]) == (day.local_today, 0)
    overdue_row = _row(server, cm, overdue)
    assert overdue_row["daysSinceLastContact"] == 15  # over 14: overdue (UTC: 14, not yet)
    caseload = server.graphql(CASELOAD, token=cm)
    assert caseload["data"]["caseload"]["asOf"] == day.local_today, caseload

    # A task due today is due, not overdue (in UTC it would be a day late); one due
    # yesterday is overdue.
    due_today = _ok(
        command(
            server,
            "createTask",
            {"patientId": before, "kind": "OUTREACH", "dueOn": day.local_today},
            cm,
            CREATED,
        )
    )["createdId"]
    due_yesterday = _ok(
        command(
            server,
            "createTask",
            {"patientId": before, "kind": "OTHER", "dueOn": day.yesterday},
            cm,
            CREATED,
        )
    )["createdId"]
    as_of, items = _worklist(server, cm, 2)
    assert as_of == day.local_today
    tasks = [i for i in items if i["kind"] == "TASK"]
    shown = {t["taskId"]: (t["dueOn"], t["overdue"], t["urgency"]) for t in tasks}
    assert shown == {
        due_yesterday: (day.yesterday, True, 1),
        due_today: (day.local_today, False, 5),
    }

    # Outreach is due from the local day the contact became 15 days old: today, though
    # the stored (UTC) onset is tomorrow; the others were contacted too recently.
    outreach = [(i["patientId"], i["dueOn"]) for i in items if i["kind"] == "OUTREACH_DUE"]
    assert outreach == [(overdue, day.local_today)]


def test_a_clinic_without_a_zone_keeps_utc_days(
    clinic_server: Callable[[DstDay], ServerProcess],
) -> None:
    """No zone set: the same clock and contact count in UTC (the default)."""
    server = clinic_server(SPRING)
    org = uuid4()
    cm = server.token("care_manager", org=org, user=uuid4())
    pid = _patient(server, cm, SPRING, SPRING.contact_yesterday)
    row = _row(server, cm, pid)
    assert (row["asOf"], row["daysSinceLastContact"]) == ("2026-03-09", 2)


ORDERED = """query { caseload(sortBy: FAMILY_NAME) { asOf
    edges { node { patientId flagged flags { kind } } } } }"""
SCREEN = "... on PatientPayload { patient { id } }"


def _screened(server: ServerProcess, cm: str, psy: tuple[str, str], pid: str, at: str) -> None:
    """A low PHQ-9 (5, item 9 answered 0) and the psychiatric consultant's case review,
    both at ``at``: no measurement due and no review needed, so only Overdue contact
    can flag."""
    answers = [1, 1, 1, 1, 1, 0, 0, 0, 0]
    input = {"patientId": pid, "instrument": "PHQ9", "answers": answers, "occurredAt": at}
    _ok(command(server, "recordScreening", input, cm, SCREEN))
    psy_id, psy_token = psy
    team = {"patientId": pid, "psychiatricConsultantId": psy_id}
    _ok(command(server, "assignCareTeam", team, cm, ""))
    _ok(command(server, "recordCaseReview", {"patientId": pid, "occurredAt": at}, psy_token, ""))


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=lambda d: d.name)
def test_the_flagged_first_order_follows_the_local_day_once_the_zone_is_set(
    clinic_server: Callable[[DstDay], ServerProcess], day: DstDay
) -> None:
    """The caseload's "flagged first" order reads the stored onset days: they are derived
    in the zone the organisation recorded in the log, and setting the zone re-derives
    the rows written before it. The patient whose last contact became overdue today
    (local) is flagged first; in UTC days the onset is tomorrow and they would sort by
    name after the other."""
    server = clinic_server(day)
    org, cm_id = uuid4(), uuid4()
    admin = server.token("admin", org=org)
    cm = server.token("care_manager", org=org, user=cm_id)
    psy_id = uuid4()
    psy = (str(psy_id), server.token("psychiatrist", org=org, user=psy_id))
    # Written while the organisation has no zone (UTC days).
    recent = _patient(server, cm, day, day.contact_yesterday, family_name="Aaa")
    _screened(server, cm, psy, recent, day.contact_yesterday)
    overdue = _patient(server, cm, day, day.contact_15_days_ago, family_name="Zzz")
    _screened(server, cm, psy, overdue, day.contact_15_days_ago)

    set_org = server.graphql(SET_ORG, {"i": {"name": "Clinic", "timeZone": ZONE}}, token=admin)
    assert set_org["data"]["setOrganisation"]["__typename"] == "Organisation", set_org
    body = server.graphql(ORDERED, token=cm)
    assert "errors" not in body, body
    page = body["data"]["caseload"]
    assert page["asOf"] == day.local_today
    rows = [(e["node"]["patientId"], e["node"]["flagged"]) for e in page["edges"]]
    assert rows == [(overdue, True), (recent, False)], page

    # The zone back to UTC re-derives again: today is the next day there, both contacts
    # are older by the UTC calendar, and only the overdue one is flagged.
    utc = server.graphql(SET_ORG, {"i": {"name": "Clinic", "timeZone": "UTC"}}, token=admin)
    assert utc["data"]["setOrganisation"]["__typename"] == "Organisation", utc
    again = server.graphql(ORDERED, token=cm)["data"]["caseload"]
    assert again["asOf"] == day.clock[:10]
    assert [(e["node"]["patientId"], e["node"]["flagged"]) for e in again["edges"]] == rows
