"""Care-team measures per care manager and month over HTTP (issue #19 item 3): a seeded
population of five patients under two care managers (one patient handed from the first
to the second in March, one screened before anyone managed their care, one discharged in
February). ``careTeamOverTime`` by care manager and by organisation equals the hand
computation below for every measure and month, the CSV says the same (and blanks small
cells when asked), the charts render in a headless Chromium cut off from the internet,
and bad input is a typed error with nothing read.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from tests.e2e.browser import dump_dom
from tests.e2e.journey import command
from tests.e2e.server import ServerProcess

AS_OF = "2026-12-01"
FROM, TO = "2026-01-01", "2026-04-30"
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]

SUMMARY = "episodes eligible inProgress final followUp response remission"
STATUS = "eligible met open notMet"
QUERY = f"""query($by: SeriesDimension, $from: Date, $to: Date, $asOf: Date) {{
  careTeamOverTime(by: $by, fromMonth: $from, toMonth: $to, asOf: $asOf) {{ __typename
    ... on CareTeamOverTime {{ asOf by series {{ careManagerId careManagerName months {{
      year month caseload contacted contactedShare enrolled reviewed
      medianDaysToPsychiatricReview
      phq9At12Weeks {{ {SUMMARY} }} phq9At6Months {{ {SUMMARY} }} drrE {{ {SUMMARY} }}
      dmsE {{ {STATUS} }} dsfE {{ {STATUS} }}
      gad7At12Weeks {{ {SUMMARY} }} gad7At6Months {{ {SUMMARY} }} }} }} }}
    ... on ValidationError {{ code field }}
    ... on ForbiddenError {{ code }}
}} }}"""

PAYLOAD = "... on PatientPayload { patient { id } }"


def phq9(total: int) -> list[int]:
    """PHQ-9 answers with ``total`` and item 9 at 0 (no safety alert)."""
    answers = []
    for _ in range(8):
        answers.append(min(3, total))
        total -= answers[-1]
    assert total == 0
    return [*answers, 0]


def gad7(total: int) -> list[int]:
    """GAD-7 answers with ``total``."""
    answers = []
    for _ in range(7):
        answers.append(min(3, total))
        total -= answers[-1]
    assert total == 0
    return answers


def at(day: str, hour: int = 16) -> str:
    return f"{day}T{hour}:00:00Z"


class Seeder:
    """Runs the commands of the population in the order they happened."""

    def __init__(self, server: ServerProcess, org: UUID) -> None:
        self.server = server
        self.ids = {"a": uuid4(), "b": uuid4(), "psy": uuid4(), "pcp": uuid4()}
        self.tokens = {
            "a": server.token("care_manager", user=self.ids["a"], org=org),
            "b": server.token("care_manager", user=self.ids["b"], org=org),
            "psy": server.token("psychiatrist", user=self.ids["psy"], org=org),
            "pcp": server.token("pcp", user=self.ids["pcp"], org=org),
            "admin": server.token("admin", org=org),
        }
        self.n = 0

    def do(self, who: str, operation: str, input: dict[str, Any]) -> dict[str, Any]:
        result = command(self.server, operation, input, self.tokens[who], PAYLOAD)
        assert result["__typename"] == "PatientPayload", (operation, result)
        return result

    def register(self) -> str:
        """Registered by the PCP on 2025-11-01: no care manager yet."""
        self.n += 1
        done = self.do(
            "pcp",
            "registerPatient",
            {
                "givenName": "Test",
                "familyName": "Person",
                "birthDate": "1970-03-03",
                "mrn": f"CTM-{self.n}",
                "occurredAt": at("2025-11-01", 10),
            },
        )
        pid: str = done["patient"]["id"]
        return pid

    def assign(self, pid: str, manager: str, day: str) -> None:
        self.do(
            "admin",
            "assignCareTeam",
            {
                "patientId": pid,
                "careManagerId": str(self.ids[manager]),
                "psychiatricConsultantId": str(self.ids["psy"]),
                "occurredAt": at(day, 14),
            },
        )

    def enroll(self, pid: str, day: str) -> None:
        self.do("pcp", "enrollPatient", {"patientId": pid, "occurredAt": at(day, 15)})

    def phq9(self, pid: str, day: str, total: int) -> None:
        self.screen(pid, day, "PHQ9", phq9(total))

    def screen(self, pid: str, day: str, instrument: str, answers: list[int]) -> None:
        self.do(
            "pcp",
            "recordScreening",
            {"patientId": pid, "instrument": instrument, "answers": answers, "occurredAt": at(day)},
        )

    def contact(self, pid: str, manager: str, day: str) -> None:
        self.do(
            manager,
            "logContact",
            {
                "patientId": pid,
                "activityKind": "CONTACT",
                "modalityKind": "PHONE",
                "minutes": 10,
                "occurredAt": at(day, 17),
            },
        )

    def review(self, pid: str, day: str) -> None:
        self.do("psy", "recordCaseReview", {"patientId": pid, "occurredAt": at(day, 18)})


def seed(server: ServerProcess, org: UUID) -> tuple[Seeder, list[str]]:
    s = Seeder(server, org)
    # P1, care manager A: positive PHQ-2 on 5 Jan, enrolled 10 Jan with a PHQ-9 of 18,
    # reviewed on day 7, contacted 12 Jan and 20 Feb; PHQ-9 8 on day 84 (12 weeks:
    # response, not remission), 4 on day 181 (6 months and DRR-E: both).
    p1 = s.register()
    s.assign(p1, "a", "2026-01-10")
    s.enroll(p1, "2026-01-10")
    s.screen(p1, "2026-01-05", "PHQ2", [2, 2])
    s.phq9(p1, "2026-01-10", 18)
    s.contact(p1, "a", "2026-01-12")
    s.review(p1, "2026-01-17")
    s.contact(p1, "a", "2026-02-20")
    s.phq9(p1, "2026-04-04", 8)
    s.phq9(p1, "2026-07-10", 4)
    # P1's GAD-7: 12 at enrollment, 6 on day 84 (exactly half: response; 6 is not below
    # 5: no remission), 4 on day 181 (response and remission at 6 months).
    s.screen(p1, "2026-01-10", "GAD7", gad7(12))
    s.screen(p1, "2026-04-04", "GAD7", gad7(6))
    s.screen(p1, "2026-07-10", "GAD7", gad7(4))
    # P2, A then B from 15 March: enrolled 20 Jan with 12, reviewed on day 30, contacted
    # 25 Jan (by A) and 20 Mar (by B); PHQ-9 10 on day 80 (neither), nothing at 6 months.
    p2 = s.register()
    s.assign(p2, "a", "2026-01-20")
    s.enroll(p2, "2026-01-20")
    s.phq9(p2, "2026-01-20", 12)
    s.contact(p2, "a", "2026-01-25")
    s.review(p2, "2026-02-19")
    s.assign(p2, "b", "2026-03-15")
    s.contact(p2, "b", "2026-03-20")
    s.phq9(p2, "2026-04-10", 10)
    # P3: positive PHQ-2 on 2 Feb with nobody managing their care, no PHQ-9 within 30
    # days; B and enrolled 10 Mar with 8 (outside DRR-E: not above 9), contacted 12 Mar,
    # never reviewed; PHQ-9 3 on day 76 (12 weeks: both), nothing at 6 months.
    p3 = s.register()
    s.screen(p3, "2026-02-02", "PHQ2", [2, 1])
    s.assign(p3, "b", "2026-03-10")
    s.enroll(p3, "2026-03-10")
    s.phq9(p3, "2026-03-10", 8)
    s.contact(p3, "b", "2026-03-12")
    s.phq9(p3, "2026-05-25", 3)
    # P3's GAD-7: 9 at enrollment, 5 on day 76 (not half of 9; 5 is not below 5: neither),
    # then 4 on day 98, the window's last day (both); nothing at 6 months.
    s.screen(p3, "2026-03-10", "GAD7", gad7(9))
    s.screen(p3, "2026-05-25", "GAD7", gad7(5))
    s.screen(p3, "2026-06-16", "GAD7", gad7(4))
    # P4, B: enrolled in December 2025 with 15, contacted 8 Jan, discharged 10 Feb.
    p4 = s.register()
    s.assign(p4, "b", "2025-12-15")
    s.enroll(p4, "2025-12-15")
    s.phq9(p4, "2025-12-15", 15)
    s.contact(p4, "b", "2026-01-08")
    s.do(
        "b",
        "dischargePatient",
        {"patientId": p4, "reason": "COMPLETED", "occurredAt": at("2026-02-10")},
    )
    # P5, A: a negative PHQ-2, enrolled 5 Feb, reviewed on day 4, contacted 6 Feb, 6 Mar
    # and 6 Apr, never a PHQ-9 (no index score: in no window measure; DMS-E not met).
    p5 = s.register()
    s.assign(p5, "a", "2026-02-05")
    s.enroll(p5, "2026-02-05")
    s.screen(p5, "2026-02-05", "PHQ2", [1, 0])
    s.review(p5, "2026-02-09")
    s.contact(p5, "a", "2026-02-06")
    s.contact(p5, "a", "2026-03-06")
    s.contact(p5, "a", "2026-04-06")
    return s, [p1, p2, p3, p4, p5]


def summary(
    episodes: int = 0,
    eligible: int | None = None,
    final: int | None = None,
    follow_up: int = 0,
    response: int = 0,
    remission: int = 0,
) -> dict[str, int]:
    eligible = episodes if eligible is None else eligible
    final = eligible if final is None else final
    return {
        "episodes": episodes,
        "eligible": eligible,
        "inProgress": eligible - final,
        "final": final,
        "followUp": follow_up,
        "response": response,
        "remission": remission,
    }


def status(eligible: int = 0, met: int = 0) -> dict[str, int]:
    """Every window here has closed by 1 December: nothing is open."""
    return {"eligible": eligible, "met": met, "open": 0, "notMet": eligible - met}


def month(
    name: str,
    caseload: int = 0,
    contacted: int = 0,
    enrolled: int = 0,
    reviewed: int = 0,
    median: float | None = None,
    w12: dict[str, int] | None = None,
    m6: dict[str, int] | None = None,
    drr: dict[str, int] | None = None,
    dms: dict[str, int] | None = None,
    dsf: dict[str, int] | None = None,
    g12: dict[str, int] | None = None,
    g6: dict[str, int] | None = None,
) -> dict[str, Any]:
    year, number = name.split("-")
    return {
        "year": int(year),
        "month": int(number),
        "caseload": caseload,
        "contacted": contacted,
        "contactedShare": None if not caseload else round(contacted / caseload, 3),
        "enrolled": enrolled,
        "reviewed": reviewed,
        "medianDaysToPsychiatricReview": median,
        "phq9At12Weeks": w12 or summary(),
        "phq9At6Months": m6 or summary(),
        "drrE": drr or summary(),
        "dmsE": dms or status(),
        "dsfE": dsf or status(),
        "gad7At12Weeks": g12 or summary(),
        "gad7At6Months": g6 or summary(),
    }


# The hand computation, per care manager (the one assigned on the month's last day).
# January cohort of A (P1, P2): reviewed on days 7 and 30 -> median 18.5. 12 weeks
# (days 70-98): P1 18 -> 8 responds (8 <= 9), no remission; P2 12 -> 10 neither.
# 6 months (days 120-240) and DRR-E (both indexes above 9, adults): P1 18 -> 4 responds
# and remits; P2 has no score in the window. DMS-E (a PHQ-9 in January-April): P1, P2
# met; P4 (only a December PHQ-9) and P5 (none) not. DSF-E: P1's positive PHQ-2 of 5 Jan
# was followed by a PHQ-9 on 10 Jan; P3's of 2 Feb only on 10 Mar (36 days).
JAN_12W = summary(2, follow_up=2, response=1, remission=0)
JAN_6M = summary(2, follow_up=1, response=1, remission=1)
MAR_12W = summary(1, follow_up=1, response=1, remission=1)  # P3 8 -> 3
MAR_6M = summary(1, follow_up=0)
MAR_DRR = summary(1, eligible=0)  # P3's index of 8 is not above 9
# GAD-7 (same windows after the first complete GAD-7; response at least 50% below it,
# remission below 5): P1 in January 12 -> 6 at 12 weeks, 4 at 6 months; P2 and P5 have
# no GAD-7 (in neither measure). P3 in March 9 -> 4 on day 98 (the most recent in the
# window counts, not the 5 of day 76), nothing at 6 months.
JAN_G12 = summary(1, follow_up=1, response=1, remission=0)
JAN_G6 = summary(1, follow_up=1, response=1, remission=1)
MAR_G12 = summary(1, follow_up=1, response=1, remission=1)
MAR_G6 = summary(1, follow_up=0)

EXPECTED_A = [
    month(
        "2026-01",
        2,
        2,
        2,
        2,
        18.5,
        JAN_12W,
        JAN_6M,
        JAN_6M,
        status(2, 2),
        status(1, 1),
        JAN_G12,
        JAN_G6,
    ),
    month("2026-02", 3, 2, 1, 1, 4.0, dms=status(2, 1)),  # P1, P2, P5; P5 enrolled
    month("2026-03", 2, 1, dms=status(1, 0)),  # P1, P5 (P2 is B's now); P5 contacted
    month("2026-04", 2, 1, dms=status(1, 0)),
]
EXPECTED_B = [
    month("2026-01", 1, 1, dms=status(1, 0)),  # P4, contacted 8 Jan
    month("2026-02", 1, 0),  # P4 until the discharge on 10 Feb
    month(  # P2, P3
        "2026-03",
        2,
        2,
        1,
        0,
        None,
        MAR_12W,
        MAR_6M,
        MAR_DRR,
        status(2, 2),
        g12=MAR_G12,
        g6=MAR_G6,
    ),
    month("2026-04", 2, 0),
]
EXPECTED_UNASSIGNED = [
    month("2026-01"),
    month("2026-02", dsf=status(1, 0)),  # P3's screen, before any care manager
    month("2026-03"),
    month("2026-04"),
]
# The organisation: the sums (medians over all the month's reviewed episodes).
EXPECTED_ORG = [
    month(
        "2026-01",
        3,
        3,
        2,
        2,
        18.5,
        JAN_12W,
        JAN_6M,
        JAN_6M,
        status(3, 2),
        status(1, 1),
        JAN_G12,
        JAN_G6,
    ),
    month("2026-02", 4, 2, 1, 1, 4.0, dms=status(2, 1), dsf=status(1, 0)),
    month(
        "2026-03",
        4,
        3,
        1,
        0,
        None,
        MAR_12W,
        MAR_6M,
        MAR_DRR,
        status(3, 2),
        g12=MAR_G12,
        g6=MAR_G6,
    ),
    month("2026-04", 4, 1, dms=status(1, 0)),
]


def get(url: str, *, token: str | None = None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, params=params, headers=headers, timeout=60)


async def _reads(db_dsn: str, field: str) -> set[UUID]:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            """SELECT DISTINCT patient_id FROM access_log_entries
               WHERE operation = 'careTeamOverTime' AND outcome = 'allowed'
                 AND $1 = ANY(fields)""",
            field,
        )
    finally:
        await conn.close()
    return {r["patient_id"] for r in rows}


def _csv_month(row: dict[str, str], m: dict[str, Any]) -> None:
    """A CSV row says what the GraphQL month says."""
    assert row["month"] == f"{m['year']:04d}-{m['month']:02d}"
    for column, key in (
        ("caseload", "caseload"),
        ("contacted", "contacted"),
        ("enrolled", "enrolled"),
        ("reviewed", "reviewed"),
    ):
        assert int(row[column]) == m[key], column
    share = row["contacted_share"]
    assert (None if share == "" else float(share)) == m["contactedShare"]
    median = row["median_days_to_psychiatric_review"]
    assert (None if median == "" else float(median)) == m["medianDaysToPsychiatricReview"]
    for prefix, key in (
        ("phq9_12_weeks", "phq9At12Weeks"),
        ("phq9_6_months", "phq9At6Months"),
        ("drr_e", "drrE"),
        ("gad7_12_weeks", "gad7At12Weeks"),
        ("gad7_6_months", "gad7At6Months"),
    ):
        for column, field in (
            ("episodes", "episodes"),
            ("final", "final"),
            ("follow_up", "followUp"),
            ("response", "response"),
            ("remission", "remission"),
        ):
            assert int(row[f"{prefix}_{column}"]) == m[key][field], (prefix, column)
    for prefix, key in (("dms_e", "dmsE"), ("dsf_e", "dsfE")):
        for column in ("eligible", "met", "open"):
            assert int(row[f"{prefix}_{column}"]) == m[key][column], (prefix, column)


async def test_care_team_measures_per_care_manager_and_month_equal_the_hand_computation(
    server: ServerProcess, db_dsn: str
) -> None:
    org = uuid4()
    s, ids = seed(server, org)
    # Another organisation's patient counts nowhere here.
    other = Seeder(server, uuid4())
    elsewhere = other.register()
    other.assign(elsewhere, "a", "2026-01-10")
    other.enroll(elsewhere, "2026-01-10")

    admin = s.tokens["admin"]
    # A is listed in the staff directory (a name shown on the charts); B is not.
    put = server.graphql(
        "mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) { __typename } }",
        {
            "i": {
                "userId": str(s.ids["a"]),
                "displayName": "Casey Manager",
                "roles": ["CARE_MANAGER"],
            }
        },
        token=admin,
    )
    assert put["data"]["putStaffMember"]["__typename"] == "StaffMember", put
    window = {"from": FROM, "to": TO, "asOf": AS_OF}
    body = server.graphql(QUERY, {"by": "CARE_MANAGER", **window}, token=admin)
    assert "errors" not in body, body
    got = body["data"]["careTeamOverTime"]
    assert got["__typename"] == "CareTeamOverTime"
    assert (got["asOf"], got["by"]) == (AS_OF, "CARE_MANAGER")
    a, b = str(s.ids["a"]), str(s.ids["b"])
    managers = sorted([(a, EXPECTED_A), (b, EXPECTED_B)], key=lambda x: x[0])
    expected: list[dict[str, Any]] = [
        *({"careManagerId": m, "months": months} for m, months in managers),
        {"careManagerId": None, "months": EXPECTED_UNASSIGNED},
    ]
    assert [x["careManagerId"] for x in got["series"]] == [x["careManagerId"] for x in expected]
    names = {x["careManagerId"]: x["careManagerName"] for x in got["series"]}
    assert names == {a: "Casey Manager", b: None, None: None}
    for series, want in zip(got["series"], expected, strict=True):
        for m, w in zip(series["months"], want["months"], strict=True):
            assert m == w, (series["careManagerId"], m["month"])
    # Every patient counted (P3 only through DSF-E) is recorded as read by the query.
    assert await _reads(db_dsn, "careTeamOverTime") == {UUID(i) for i in ids}

    # By organisation: one series, the sums; compliance may read it too.
    org_body = server.graphql(
        QUERY, {"by": "ORGANISATION", **window}, token=server.token("compliance", org=org)
    )
    org_series = org_body["data"]["careTeamOverTime"]["series"]
    assert [x["careManagerId"] for x in org_series] == [None]
    for m, w in zip(org_series[0]["months"], EXPECTED_ORG, strict=True):
        assert m == w, m["month"]

    # A care manager may not read the series, not even their own (docs/outcomes.md).
    refused = server.graphql(QUERY, {"by": "CARE_MANAGER", **window}, token=s.tokens["a"])
    assert refused["data"]["careTeamOverTime"] == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }

    # The CSV: the same numbers, one row per care manager and month, no patient id.
    url = f"{server.url}/outcomes/care-team.csv"
    params = {"by": "care_manager", "fromMonth": FROM, "toMonth": TO, "asOf": AS_OF}
    assert get(url, **params).status_code == 401
    assert get(url, token=s.tokens["a"], **params).status_code == 403
    reply = get(url, token=admin, **params)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert not any(i in reply.text for i in ids)
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    flat = [(x["careManagerId"], m) for x in expected for m in x["months"]]
    assert len(rows) == len(flat) == 12
    for row, (manager, m) in zip(rows, flat, strict=True):
        assert row["as_of"] == AS_OF and row["by"] == "care_manager"
        assert row["care_manager_id"] == (manager or "")
        _csv_month(row, m)
    assert await _reads(db_dsn, "careTeamOverTime.csv") == {UUID(i) for i in ids}

    # Small cells blanked on request: with suppressBelow=3, A's January counts of 1 and 2
    # go, with the share and the median computed from them; zeros stay.
    small = get(url, token=admin, suppressBelow="3", **params)
    first = next(
        r
        for r in csv.DictReader(io.StringIO(small.text))
        if (r["care_manager_id"], r["month"]) == (a, "2026-01")
    )
    assert first["enrolled"] == "" and first["contacted_share"] == ""
    assert first["dms_e_eligible"] == "" and first["caseload"] == ""
    assert first["median_days_to_psychiatric_review"] == "" and first["phq9_12_weeks_final"] == ""
    assert first["drr_e_response"] == ""  # 1 is small too; 0 stays 0
    assert first["phq9_12_weeks_remission"] == "0"
    bad = get(url, token=admin, suppressBelow="many", **params)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "suppressBelow",
    }

    # The chart: plain SVG, one line per care manager, a point per month with a value.
    svg = get(
        f"{server.url}/outcomes/care-team.svg",
        token=admin,
        measure="contacted_share",
        **params,
    )
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<script" not in svg.text
    assert f'data-series="{a}" data-month="2026-02" data-value="0.667"' in svg.text
    assert f'data-series="{b}" data-month="2026-04" data-value="0.000"' in svg.text
    assert 'data-series="unassigned"' not in svg.text  # no caseload, no share
    # The legend names a listed care manager; one not in the directory by id.
    assert ">Casey Manager</text>" in svg.text and f">{b}</text>" in svg.text

    # GAD-7 on the charts: A's January 12-week response is 1 of 1.
    gad7_svg = get(
        f"{server.url}/outcomes/care-team.svg",
        token=admin,
        measure="gad7_response_12_weeks",
        **params,
    )
    assert gad7_svg.status_code == 200
    assert f'data-series="{a}" data-month="2026-01" data-value="1.000"' in gad7_svg.text
    assert f'data-series="{b}" data-month="2026-03" data-value="1.000"' in gad7_svg.text

    # The page, in a browser that cannot reach the internet: three utilisation charts and
    # fourteen care-team charts, each drawn by careteam.
    dom = dump_dom(
        f"{server.url}/outcomes/#token={admin}&asOf={AS_OF}&fromMonth={FROM}&toMonth={TO}",
        budget_ms=20000,
    )
    assert "Not shown" not in dom, dom[-2000:]
    assert dom.count("<svg") == 17, dom[-2000:]
    assert 'id="care-team-median_days_to_psychiatric_review"' in dom
    assert 'id="care-team-gad7_remission_6_months"' in dom
    assert f'data-series="{a}" data-month="2026-01" data-value="18.500"' in dom


async def test_a_bad_month_range_is_a_typed_error_and_reads_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    org = uuid4()
    admin = server.token("admin", org=org)
    reversed_range = server.graphql(
        QUERY, {"from": "2026-05-01", "to": "2026-04-30", "asOf": AS_OF}, token=admin
    )
    assert reversed_range["data"]["careTeamOverTime"] == {
        "__typename": "ValidationError",
        "code": "RANGE_REVERSED",
        "field": "fromMonth",
    }
    too_long = server.graphql(
        QUERY, {"from": "2023-01-01", "to": "2026-01-31", "asOf": AS_OF}, token=admin
    )
    assert too_long["data"]["careTeamOverTime"] == {
        "__typename": "ValidationError",
        "code": "RANGE_TOO_LONG",
        "field": "toMonth",
    }
    # 36 months is the most one request may ask for.
    longest = server.graphql(
        QUERY, {"from": "2023-02-01", "to": "2026-01-31", "asOf": AS_OF}, token=admin
    )
    assert len(longest["data"]["careTeamOverTime"]["series"][0]["months"]) == 36
    url = f"{server.url}/outcomes/care-team.csv"
    bad = get(url, token=admin, fromMonth="2026-05-01", toMonth="2026-04-01")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["extensions"] == {
        "code": "RANGE_REVERSED",
        "field": "fromMonth",
    }
    bad_day = get(url, token=admin, toMonth="April")
    assert bad_day.status_code == 400
    assert bad_day.json()["errors"][0]["extensions"]["field"] == "toMonth"
    chart = get(f"{server.url}/outcomes/care-team.svg", token=admin, measure="happiness")
    assert chart.status_code == 400
    assert chart.json()["errors"][0]["extensions"]["field"] == "measure"
