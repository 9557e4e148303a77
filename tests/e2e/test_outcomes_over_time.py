"""Outcomes over time over HTTP (issue #19 item 3): a seeded population enrolled in
different months, with emergency visits, a hospitalisation, a specialty referral and
GAD-7 scores before and after enrollment. The per-month measures of ``outcomesOverTime``
equal the hand computation below, the CSV says the same with no patient id in it, the
chart renders in a headless Chromium cut off from the internet, and bad input is a typed
error with nothing written.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from tests.e2e.browser import dump_dom
from tests.e2e.journey import event_count
from tests.e2e.server import ServerProcess

AS_OF = "2026-12-01"

ERRORS = """
    ... on ValidationError { code field }
    ... on NotAllowedError { code field }
    ... on ForbiddenError { code }
"""

SERIES = """query($asOf: Date) { outcomesOverTime(asOf: $asOf) { __typename
    ... on OutcomesOverTime {
      asOf
      months { year month enrolled
        utilisation { kind enrolled beforeEvents beforePer1000 afterPatients afterEvents
                      afterPer1000 }
        gad7 { withBaseline followedUp response remission } }
    }
    ... on ForbiddenError { code }
} }"""

# GAD-7 answer sets and their totals.
GAD7 = {
    16: [3, 3, 2, 2, 2, 2, 2],
    10: [2, 2, 2, 1, 1, 1, 1],
    8: [2, 1, 1, 1, 1, 1, 1],
    6: [1, 1, 1, 1, 1, 1, 0],
    4: [1, 1, 1, 1, 0, 0, 0],
}

# The population: enrollment day, utilisation (kind, day), GAD-7 (day, total).
ED, HOSP, SPEC = "EMERGENCY_VISIT", "HOSPITALISATION", "SPECIALTY_MENTAL_HEALTH_REFERRAL"
POPULATION: list[dict[str, Any]] = [
    {  # cohort 2025-01
        "enrolled": "2025-01-15",
        "events": [
            (ED, "2024-06-01"),  # day -228: before
            (ED, "2024-12-01"),  # day -45: before
            (ED, "2025-01-15"),  # the enrollment day: in neither window
            (ED, "2025-03-01"),  # day 45: after
            (ED, "2026-02-01"),  # day 382: outside the after window
            (HOSP, "2024-10-10"),  # before
        ],
        "gad7": [("2025-01-15", 16), ("2025-04-15", 4)],  # response and remission
    },
    {
        "enrolled": "2025-01-20",
        "events": [(ED, "2023-12-01"), (ED, "2025-06-01")],  # day -416: outside; after
        "gad7": [("2025-01-20", 10), ("2025-05-01", 6)],  # neither (6 > 5, 40% better)
    },
    {"enrolled": "2025-01-31", "events": [], "gad7": [("2025-02-01", 8)]},  # baseline only
    {  # cohort 2026-03: the year after enrollment has not passed on 2026-12-01
        "enrolled": "2026-03-10",
        "events": [
            (ED, "2026-01-05"),
            (ED, "2026-02-20"),
            (ED, "2026-05-01"),  # after, but the window is still open: not counted
            (SPEC, "2026-04-01"),  # likewise
        ],
        "gad7": [],
    },
    {"enrolled": "2026-03-25", "events": [(ED, "2025-12-24")], "gad7": []},
]


def _util(
    kind: str,
    enrolled: int,
    before: int,
    before_rate: float | None,
    after_patients: int,
    after: int,
    after_rate: float | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "enrolled": enrolled,
        "beforeEvents": before,
        "beforePer1000": before_rate,
        "afterPatients": after_patients,
        "afterEvents": after,
        "afterPer1000": after_rate,
    }


# The hand computation. Cohort 2025-01: 3 patients, all past day 365 on 2026-12-01.
#   ED before: 2 (patient 1) -> 2 * 1000 / 3 = 666.667; after: 1 + 1 = 2 -> 666.667.
#   Hospitalisation before: 1 -> 333.333; after: 0 -> 0.0. Specialty: 0 and 0.
#   GAD-7: 3 with a baseline, 2 followed up; 16 -> 4 responds and remits; 10 -> 6 neither.
# Cohort 2026-03: 2 patients, none past day 365.
#   ED before: 2 + 1 = 3 -> 3 * 1000 / 2 = 1500.0; after: no patient yet -> null.
EXPECTED = [
    {
        "year": 2025,
        "month": 1,
        "enrolled": 3,
        "utilisation": [
            _util("EMERGENCY_VISIT", 3, 2, 666.667, 3, 2, 666.667),
            _util("HOSPITALISATION", 3, 1, 333.333, 3, 0, 0.0),
            _util("SPECIALTY_MENTAL_HEALTH_REFERRAL", 3, 0, 0.0, 3, 0, 0.0),
        ],
        "gad7": {"withBaseline": 3, "followedUp": 2, "response": 1, "remission": 1},
    },
    {
        "year": 2026,
        "month": 3,
        "enrolled": 2,
        "utilisation": [
            _util("EMERGENCY_VISIT", 2, 3, 1500.0, 0, 0, None),
            _util("HOSPITALISATION", 2, 0, 0.0, 0, 0, None),
            _util("SPECIALTY_MENTAL_HEALTH_REFERRAL", 2, 0, 0.0, 0, 0, None),
        ],
        "gad7": {"withBaseline": 0, "followedUp": 0, "response": 0, "remission": 0},
    },
]


def run(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    input_type = operation[0].upper() + operation[1:] + "Input"
    document = (
        f"mutation($input: {input_type}!) {{ {operation}(input: $input) "
        f"{{ __typename ... on PatientPayload {{ patient {{ id }} createdId }} {ERRORS} }} }}"
    )
    body = server.graphql(document, {"input": input}, token=token)
    assert "errors" not in body, body
    return body["data"][operation]


def seed_patient(server: ServerProcess, cm: str, spec: dict[str, Any], n: int) -> str:
    """Registered in 2023, enrolled on its day; its utilisation and GAD-7 recorded."""
    registered = run(
        server,
        "registerPatient",
        {
            "givenName": "Test",
            "familyName": "Person",
            "birthDate": "1970-03-03",
            "mrn": f"OUT-{n}",
            "occurredAt": "2023-01-02T15:00:00Z",
        },
        cm,
    )
    assert registered["__typename"] == "PatientPayload", registered
    pid: str = registered["patient"]["id"]
    enrolled = run(
        server,
        "enrollPatient",
        {"patientId": pid, "occurredAt": f"{spec['enrolled']}T15:00:00Z"},
        cm,
    )
    assert enrolled["__typename"] == "PatientPayload", enrolled
    for kind, day in spec["events"]:
        done = run(
            server,
            "recordUtilisation",
            {"patientId": pid, "kind": kind, "source": "CLAIMS", "effectiveOn": day},
            cm,
        )
        assert done["__typename"] == "PatientPayload" and done["createdId"], done
    for day, total in spec["gad7"]:
        done = run(
            server,
            "recordScreening",
            {
                "patientId": pid,
                "instrument": "GAD7",
                "answers": GAD7[total],
                "occurredAt": f"{day}T16:00:00Z",
            },
            cm,
        )
        assert done["__typename"] == "PatientPayload", done
    return pid


def get(url: str, *, token: str | None = None, **params: str) -> httpx.Response:
    """A GET to careteam, with the bearer token if given (as server.graphql does)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, params=params, headers=headers, timeout=30)


async def _reads(db_dsn: str, operation: str, fields: str) -> set[UUID]:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            """SELECT DISTINCT patient_id FROM access_log_entries
               WHERE operation = $1 AND outcome = 'allowed' AND $2 = ANY(fields)""",
            operation,
            fields,
        )
    finally:
        await conn.close()
    return {r["patient_id"] for r in rows}


async def test_the_series_per_month_equals_the_hand_computation_in_graphql_csv_and_chart(
    server: ServerProcess, db_dsn: str
) -> None:
    org = uuid4()
    cm = server.token("care_manager", org=org)
    ids = [seed_patient(server, cm, spec, n) for n, spec in enumerate(POPULATION)]
    # Another organisation's patient with an emergency visit counts nowhere here.
    other_cm = server.token("care_manager", org=uuid4())
    seed_patient(
        server, other_cm, {"enrolled": "2025-01-10", "events": [(ED, "2024-12-12")], "gad7": []}, 99
    )

    admin = server.token("admin", org=org)
    body = server.graphql(SERIES, {"asOf": AS_OF}, token=admin)
    assert "errors" not in body, body
    series = body["data"]["outcomesOverTime"]
    assert series["__typename"] == "OutcomesOverTime"
    assert series["asOf"] == AS_OF
    assert series["months"] == EXPECTED
    # Audited: every counted patient is recorded as read by this query.
    assert await _reads(db_dsn, "outcomesOverTime", "outcomesOverTime") == {UUID(i) for i in ids}

    # Compliance may read it too; a care manager may not (typed, audited refusal).
    compliance = server.graphql(SERIES, {"asOf": AS_OF}, token=server.token("compliance", org=org))
    assert compliance["data"]["outcomesOverTime"]["months"] == EXPECTED
    refused = server.graphql(SERIES, {"asOf": AS_OF}, token=cm)
    assert refused["data"]["outcomesOverTime"] == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }

    # The CSV: the same numbers, one row per month and kind, and no patient id.
    url = f"{server.url}/outcomes/series.csv"
    assert get(url, asOf=AS_OF).status_code == 401
    assert get(url, token=cm, asOf=AS_OF).status_code == 403
    bad_day = get(url, token=admin, asOf="yesterday")
    assert bad_day.status_code == 400 and bad_day.json()["errors"][0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "asOf",
    }
    got = get(url, token=admin, asOf=AS_OF)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert not any(i in got.text for i in ids)
    rows = list(csv.DictReader(io.StringIO(got.text)))
    from_graphql = [
        (f"{m['year']:04d}-{m['month']:02d}", u, m["gad7"])
        for m in EXPECTED
        for u in m["utilisation"]
    ]
    assert len(rows) == len(from_graphql) == 6
    for row, (month, u, g) in zip(rows, from_graphql, strict=True):
        assert row["as_of"] == AS_OF and row["enrollment_month"] == month
        assert row["kind"] == u["kind"].lower()
        assert int(row["enrolled"]) == u["enrolled"]
        assert int(row["before_events"]) == u["beforeEvents"]
        assert float(row["before_per_1000"]) == u["beforePer1000"]
        assert int(row["after_patients"]) == u["afterPatients"]
        assert int(row["after_events"]) == u["afterEvents"]
        after = row["after_per_1000"]
        assert (None if after == "" else float(after)) == u["afterPer1000"]
        assert int(row["gad7_with_baseline"]) == g["withBaseline"]
        assert int(row["gad7_response"]) == g["response"]
        assert int(row["gad7_remission"]) == g["remission"]
    assert await _reads(db_dsn, "outcomesOverTime", "outcomesOverTime.csv") == {
        UUID(i) for i in ids
    }

    # The chart: plain SVG with a bar per month and window, drawn by careteam.
    svg = get(f"{server.url}/outcomes/chart.svg", token=admin, asOf=AS_OF, kind="emergency_visit")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<script" not in svg.text and "http://" not in svg.text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert 'data-month="2025-01" data-window="before" data-per-1000="666.667"' in svg.text
    assert 'data-month="2025-01" data-window="after" data-per-1000="666.667"' in svg.text
    assert 'data-month="2026-03" data-window="before" data-per-1000="1500.000"' in svg.text
    assert 'data-month="2026-03" data-window="after"' not in svg.text

    # The page, in a browser that cannot reach the internet: the three utilisation charts
    # appear, and the fourteen care-team charts (tests/e2e/test_care_team_over_time.py).
    dom = dump_dom(f"{server.url}/outcomes/#token={admin}&asOf={AS_OF}", budget_ms=20000)
    assert dom.count("<svg") == 17, dom[-2000:]
    assert 'data-month="2026-03" data-window="before" data-per-1000="1500.000"' in dom
    assert "Not shown" not in dom


async def test_a_visit_in_the_future_or_before_birth_is_a_typed_error_and_writes_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    cm_id = uuid4()
    cm = server.token("care_manager", user=cm_id)
    pid = seed_patient(server, cm, {"enrolled": "2025-01-15", "events": [], "gad7": []}, 1)
    before = await event_count(db_dsn, pid)
    cases = [
        (
            "2099-01-01",
            {"__typename": "ValidationError", "code": "OCCURRED_IN_FUTURE", "field": "effectiveOn"},
        ),
        (
            "1969-12-31",
            {
                "__typename": "ValidationError",
                "code": "OCCURRED_BEFORE_BIRTH",
                "field": "effectiveOn",
            },
        ),
    ]
    for day, error in cases:
        got = run(
            server,
            "recordUtilisation",
            {"patientId": pid, "kind": "HOSPITALISATION", "source": "EHR", "effectiveOn": day},
            cm,
        )
        assert got == error
    # A closed-set source: anything else is refused by the schema itself.
    body = server.graphql(
        """mutation($i: RecordUtilisationInput!) { recordUtilisation(input: $i) { __typename } }""",
        {
            "i": {
                "patientId": pid,
                "kind": "HOSPITALISATION",
                "source": "RUMOUR",
                "effectiveOn": "2025-02-01",
            }
        },
        token=cm,
    )
    assert "errors" in body
    # The psychiatric consultant does not record utilisation: refused, audited.
    psy = server.token("psychiatrist")
    refused = run(
        server,
        "recordUtilisation",
        {"patientId": pid, "kind": ED, "source": "PATIENT_REPORT", "effectiveOn": "2025-02-01"},
        psy,
    )
    assert refused["__typename"] == "ForbiddenError"
    assert await event_count(db_dsn, pid) == before
