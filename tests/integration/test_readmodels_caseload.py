"""The caseload registry on real PostgreSQL: projector, keyset pages, flags for the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from projections import caseload as caseload_model
from projections import keyset
from services.auth import Role
from tests.integration.readmodels_support import (
    CARE_MANAGER,
    OTHER_CARE_MANAGER,
    PSYCHIATRIST,
    Clinic,
    day,
    open_clinic,
    phq9,
)


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


CASELOAD = """
query($first: Int!, $after: String, $sort: CaseloadSortKey!, $flagged: Boolean!,
      $cm: UUID) {
  caseload(first: $first, after: $after, sortBy: $sort, flaggedFirst: $flagged,
           careManagerId: $cm) {
    totalCount asOf maxPageSize
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      patientId familyName status weeksInTreatment flagged minutesThisMonth
      daysSinceLastContact contactCount
      latestPhq9 { total } baselinePhq9 { total } phq9PercentChange
      flags { kind ruleId ruleVersion inputs source }
    } }
  }
}"""


async def caseload(clinic: Clinic, **variables: Any) -> dict[str, Any]:
    values = {"first": 50, "after": None, "sort": "ENROLLED_AT", "flagged": True, "cm": None}
    values.update(variables)
    data = await clinic.query(CASELOAD, values)
    result: dict[str, Any] = data["caseload"]
    return result


def contacted(on_day: int, minutes: int = 20) -> Any:
    return lambda p: p.log_contact(
        activity="contact",
        modality="phone",
        minutes=minutes,
        occurred_at=day(on_day),
        now=day(on_day),
    )


def screened(on_day: int, total: int, item9: int = 0) -> Any:
    return lambda p: p.record_screening(
        instrument="phq9",
        answers=phq9(total, item9=item9),
        occurred_at=day(on_day),
        now=day(on_day),
    )


def reviewed(on_day: int) -> Any:
    return lambda p: p.record_case_review(
        consultant_id=PSYCHIATRIST, occurred_at=day(on_day), now=day(on_day)
    )


async def test_paging_with_cursors_returns_every_row_once_in_order(clinic: Clinic) -> None:
    """Five patients in pages of two: no row repeated or skipped, order by enrollment."""
    ids = [await clinic.patient(enrolled_at=day(-n)) for n in range(5)]
    for pid in ids:
        await clinic.on_patient(pid, contacted(1))
        await clinic.on_patient(pid, reviewed(1))
        await clinic.on_patient(pid, screened(1, 10))
    await clinic.catch_up()
    clinic.today = day(2)
    seen: list[str] = []
    after = None
    while True:
        page = await caseload(clinic, first=2, after=after, flagged=False)
        seen.extend(e["node"]["patientId"] for e in page["edges"])
        assert page["totalCount"] == 5
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [str(pid) for pid in reversed(ids)]
    # Past the last row: no row, and still the count of every matching row.
    beyond = await caseload(clinic, first=2, after=page["pageInfo"]["endCursor"], flagged=False)
    assert (beyond["edges"], beyond["totalCount"]) == ([], 5)


async def test_flagged_patients_come_first_and_the_flag_explains_itself(clinic: Clinic) -> None:
    """A safety answer puts its patient first, with the rule, version and inputs."""
    calm = await clinic.patient(family_name="Calm")
    risky = await clinic.patient(family_name="Risk", enrolled_at=day(1))
    for pid, item9 in ((calm, 0), (risky, 2)):
        await clinic.on_patient(pid, contacted(2))
        await clinic.on_patient(pid, reviewed(2))
        await clinic.on_patient(pid, screened(2, 8, item9=item9))
    await clinic.catch_up()
    clinic.today = day(3)
    plain = await caseload(clinic, flagged=False)
    assert [e["node"]["familyName"] for e in plain["edges"]] == ["Calm", "Risk"]
    flagged = await caseload(clinic, flagged=True)
    first = flagged["edges"][0]["node"]
    assert first["familyName"] == "Risk" and first["flagged"]
    safety = [f for f in first["flags"] if f["kind"] == "safety_risk" and f["source"] == "rule"]
    assert safety[0]["ruleId"] == "flags.safety_risk"
    assert safety[0]["inputs"]["latest_item9"] == 2
    assert not flagged["edges"][1]["node"]["flagged"]


async def test_a_flag_appears_when_the_clock_passes_its_day_without_any_new_event(
    clinic: Clinic,
) -> None:
    """Overdue contact: not on day 14 after the last contact, raised on day 15."""
    pid = await clinic.patient()
    await clinic.on_patient(pid, contacted(0))
    await clinic.on_patient(pid, reviewed(0))
    await clinic.on_patient(pid, screened(0, 12))
    await clinic.catch_up()

    async def kinds_on(n: int) -> tuple[set[str], bool]:
        clinic.today = day(n)
        page = await caseload(clinic, flagged=True)
        node = page["edges"][0]["node"]
        return {f["kind"] for f in node["flags"]}, node["flagged"]

    assert await kinds_on(14) == (set(), False)
    assert await kinds_on(15) == ({"overdue_contact"}, True)
    kinds, _ = await kinds_on(70)
    # Only a baseline: nothing measured since, so Measurement due, not Not improving
    # (docs/clinical-time.md), and no review for it.
    assert kinds == {"overdue_contact", "measurement_due"}


async def test_not_improving_flips_between_week_nine_and_week_ten_of_the_clock(
    clinic: Clinic,
) -> None:
    """Baseline 20, latest 14 on day 60: under 50% better; the flag waits for week 10."""
    pid = await clinic.patient()
    await clinic.on_patient(pid, reviewed(0))
    for n, total in ((0, 20), (60, 14)):
        await clinic.on_patient(pid, screened(n, total))
        await clinic.on_patient(pid, contacted(n))
    await clinic.on_patient(pid, contacted(65))
    await clinic.catch_up()
    clinic.today = day(69)
    week9 = (await caseload(clinic))["edges"][0]["node"]
    clinic.today = day(70)
    week10 = (await caseload(clinic))["edges"][0]["node"]
    assert week9["weeksInTreatment"] == 9 and week10["weeksInTreatment"] == 10
    assert "not_improving" not in {f["kind"] for f in week9["flags"]}
    assert "not_improving" in {f["kind"] for f in week10["flags"]}
    assert week10["phq9PercentChange"] == -30.0


async def test_the_caseload_shows_only_the_callers_patients_and_this_months_minutes(
    clinic: Clinic,
) -> None:
    """Another care manager's patient is invisible; minutes count the clock's month."""
    mine = await clinic.patient()
    await clinic.patient(care_manager=OTHER_CARE_MANAGER)
    await clinic.on_patient(mine, contacted(1, minutes=25))  # March
    await clinic.on_patient(mine, contacted(31, minutes=10))  # April
    await clinic.catch_up()
    clinic.today = day(35)
    page = await caseload(clinic)
    assert [e["node"]["patientId"] for e in page["edges"]] == [str(mine)]
    assert page["edges"][0]["node"]["minutesThisMonth"] == 10
    assert page["edges"][0]["node"]["contactCount"] == 2
    filtered = await caseload(clinic, cm=str(OTHER_CARE_MANAGER))
    assert filtered["totalCount"] == 0
    admin = await clinic.query(
        "{ caseload(careManagerId: null) { totalCount } }", role=Role.ADMIN, user=UUID(int=7)
    )
    assert admin["caseload"]["totalCount"] == 2


async def test_a_care_manager_naming_nobody_gets_the_patients_they_manage(
    clinic: Clinic,
) -> None:
    """On another care manager's patient's team in another role, a care manager still sees
    only their own caseload by default, and that patient when naming its care manager."""
    mine = await clinic.patient()
    theirs = await clinic.patient(care_manager=OTHER_CARE_MANAGER)
    await clinic.on_patient(
        theirs,
        lambda p: p.assign_care_team(pcp_id=CARE_MANAGER, occurred_at=day(1), now=day(1)),
    )
    await clinic.catch_up()
    own = await caseload(clinic)
    assert [e["node"]["patientId"] for e in own["edges"]] == [str(mine)]
    named = await caseload(clinic, cm=str(OTHER_CARE_MANAGER))
    assert [e["node"]["patientId"] for e in named["edges"]] == [str(theirs)]


async def test_a_page_larger_than_the_maximum_or_a_forged_cursor_is_refused(
    clinic: Clinic,
) -> None:
    """Bad paging input is an error with a code, never a silent truncation."""
    errors = await clinic.query_errors("{ caseload(first: 201) { totalCount } }")
    assert errors is not None and errors[0].extensions == {"code": "PAGE_SIZE"}
    errors = await clinic.query_errors('{ caseload(after: "Zm9v") { totalCount } }')
    assert errors is not None and errors[0].extensions == {"code": "INVALID_CURSOR"}


async def test_a_registry_row_of_a_patient_outside_the_team_reads_as_null(
    clinic: Clinic,
) -> None:
    """The restriction is in the SQL: no row, no leak."""
    theirs = await clinic.patient(care_manager=OTHER_CARE_MANAGER)
    await clinic.catch_up()
    data = await clinic.query(
        "query($id: UUID!) { registryRow(patientId: $id) { patientId } }", {"id": str(theirs)}
    )
    assert data["registryRow"] is None
    data = await clinic.query(
        "query($id: UUID!) { registryRow(patientId: $id) { patientId status } }",
        {"id": str(theirs)},
        user=OTHER_CARE_MANAGER,
    )
    assert data["registryRow"] == {"patientId": str(theirs), "status": "active_treatment"}


async def test_rebuilding_the_read_models_from_the_log_gives_the_same_rows(
    clinic: Clinic,
) -> None:
    """Reset and replay: every registry, billing and tracker table comes back identical."""
    pid = await clinic.patient()
    await clinic.on_patient(pid, contacted(3))
    await clinic.on_patient(
        pid,
        lambda p: p.record_screening(
            instrument="phq9", answers=phq9(14, item9=1), occurred_at=day(2), now=day(9)
        ),
    )
    await clinic.catch_up()
    tables = ["rm_registry", "rm_billing_facts", "rm_billing_minutes"]
    async with clinic.runtime.pool.acquire() as conn:
        before = {
            t: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in tables
        }
        for projection in clinic.runtime.projector.projections:
            await projection.reset(conn)
        await conn.execute("DELETE FROM checkpoints")
    await clinic.catch_up()
    async with clinic.runtime.pool.acquire() as conn:
        after = {
            t: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in tables
        }
    assert after == before
    assert before["rm_registry"][0]["safety_risk_on"] is not None


LAG = "{ projectionLag { name eventsBehind position } }"


async def test_projection_lag_counts_events_not_yet_applied(clinic: Clinic) -> None:
    """Before catch-up the registry is behind; after it, nothing is."""
    await clinic.patient()
    lag = {r["name"]: r["eventsBehind"] for r in (await clinic.query(LAG))["projectionLag"]}
    assert lag["registry"] > 0 and lag["billing"] > 0
    await clinic.catch_up()
    lag = {r["name"]: r["eventsBehind"] for r in (await clinic.query(LAG))["projectionLag"]}
    assert set(lag.values()) == {0}


async def test_every_patient_returned_by_the_caseload_is_recorded_as_read(
    clinic: Clinic,
) -> None:
    """Who read which patient, through which query, which fields: committed before replying."""
    mine = await clinic.patient()
    await clinic.patient(care_manager=OTHER_CARE_MANAGER)
    await clinic.catch_up()
    await clinic.query("{ caseload { edges { node { patientId latestPhq9 { total } } } } }")
    async with clinic.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT patient_id, operation, outcome, fields FROM access_log_entries"
            " WHERE operation = 'caseload'"
        )
    assert [(r["patient_id"], r["outcome"]) for r in rows] == [(mine, "allowed")]
    assert rows[0]["fields"] == [
        "caseload.edges.node.patientId",
        "caseload.edges.node.latestPhq9.total",
    ]


async def test_a_caseload_of_several_patients_is_one_access_row_and_each_is_found_as_read(
    clinic: Clinic,
) -> None:
    """The read of a list is one access row naming its patients in the order returned;
    looked up by any one patient's id (the audit trail's way), the read is there."""
    mine = [await clinic.patient() for _ in range(3)]
    await clinic.catch_up()
    answer = await clinic.query("{ caseload { edges { node { patientId } } } }")
    returned = [UUID(e["node"]["patientId"]) for e in answer["caseload"]["edges"]]
    assert sorted(returned) == sorted(mine)
    async with clinic.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT patient_id, patient_ids FROM access_log WHERE operation = 'caseload'"
        )
        found = {
            patient: await conn.fetchval(
                """SELECT count(*) FROM access_log_entries
                   WHERE patient_id = $1 AND listed @> ARRAY[$1]::uuid[]
                     AND operation = 'caseload'""",
                patient,
            )
            for patient in mine
        }
    assert [(r["patient_id"], r["patient_ids"]) for r in rows] == [(None, returned)]
    assert found == {patient: 1 for patient in mine}


# --- the read path's memo: the page without documents, then only the missing ones -------

ROWS = """{ caseload(first: 10, flaggedFirst: false) {
  edges { node { patientId contactCount minutesThisMonth } } } }"""


def _counts(data: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {
        e["node"]["patientId"]: (e["node"]["contactCount"], e["node"]["minutesThisMonth"])
        for e in data["caseload"]["edges"]
    }


async def test_a_row_that_changed_since_it_was_memoised_is_answered_anew(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered from the memo while nothing changes (no document is read); a new event or a
    rebuild of the read model writes a new version of a row, and only that row is read."""
    first, second = await clinic.patient(), await clinic.patient(enrolled_at=day(1))
    await clinic.catch_up()
    clinic.today = day(2)
    read: list[list[UUID]] = []
    fetch_documents = caseload_model.fetch_documents

    async def counted(conn: Any, keys: Any) -> Any:
        read.append(list(keys))
        return await fetch_documents(conn, keys)

    monkeypatch.setattr(caseload_model, "fetch_documents", counted)
    assert _counts(await clinic.query(ROWS)) == {str(first): (0, 0), str(second): (0, 0)}
    assert sorted(read.pop()) == sorted([first, second])
    assert _counts(await clinic.query(ROWS)) == {str(first): (0, 0), str(second): (0, 0)}
    assert read == []  # every row from the memo
    await clinic.on_patient(second, contacted(2, minutes=15), now=day(2))
    await clinic.catch_up()
    assert _counts(await clinic.query(ROWS)) == {str(first): (0, 0), str(second): (1, 15)}
    assert read.pop() == [second]
    # A rebuild writes every row again (the same documents, new versions): read again.
    async with clinic.runtime.pool.acquire() as conn:
        for projection in clinic.runtime.projector.projections:
            await projection.reset(conn)
        await conn.execute("DELETE FROM checkpoints")
    await clinic.catch_up()
    assert _counts(await clinic.query(ROWS)) == {str(first): (0, 0), str(second): (1, 15)}
    assert sorted(read.pop()) == sorted([first, second])


async def test_a_row_written_between_the_page_and_its_documents_reads_the_page_again(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projector writes a row after the page was read and before its document is: the
    page is read again with its documents, and the answer is the row as written."""
    first, second = await clinic.patient(), await clinic.patient(enrolled_at=day(1))
    await clinic.catch_up()
    clinic.today = day(2)
    pages: list[bool] = []
    fetch_caseload, fetch_documents = caseload_model.fetch_caseload, caseload_model.fetch_documents

    async def page(conn: Any, **kwargs: Any) -> Any:
        pages.append(kwargs["without_docs"])
        return await fetch_caseload(conn, **kwargs)

    async def documents_after_a_write(conn: Any, keys: Any) -> Any:
        await clinic.on_patient(second, contacted(2, minutes=10), now=day(2))
        await clinic.catch_up()  # another connection: the row's new version commits
        return await fetch_documents(conn, keys)

    monkeypatch.setattr(caseload_model, "fetch_caseload", page)
    monkeypatch.setattr(caseload_model, "fetch_documents", documents_after_a_write)
    assert _counts(await clinic.query(ROWS)) == {str(first): (0, 0), str(second): (1, 10)}
    assert pages == [True, False]  # without documents, then again with them


async def test_each_document_records_its_own_field_paths_as_read(clinic: Clinic) -> None:
    """The selected paths are remembered per parsed document: two documents asked in turn
    record their own paths each time (through a fragment and an alias too)."""
    await clinic.patient()
    await clinic.catch_up()
    plain = "{ caseload { edges { node { patientId contactCount } } } }"
    shaped = """{ c: caseload { edges { node { ...r latestPhq9 { total } } } totalCount } }
                fragment r on CaseloadRow { patientId }"""
    for document in (plain, shaped, plain, shaped):
        await clinic.query(document)
    async with clinic.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT fields FROM access_log WHERE operation = 'caseload' ORDER BY at, id"
        )
    plain_paths = ["caseload.edges.node.patientId", "caseload.edges.node.contactCount"]
    shaped_paths = [
        "caseload.edges.node.patientId",
        "caseload.edges.node.latestPhq9.total",
        "caseload.totalCount",
    ]
    assert [list(r["fields"]) for r in rows] == [plain_paths, shaped_paths] * 2


async def test_cursors_remembered_by_row_version_are_the_cursors_made_afresh(
    clinic: Clinic,
) -> None:
    """The caseload's page cursors, remembered by the rows' versions and the day, equal the
    cursors made from the rows' sort values, before and after a row's flag (a sort key)
    changes, and on other days (the day is part of a flag's sort value)."""
    await clinic.patient()
    risky = await clinic.patient(enrolled_at=day(1))
    await clinic.catch_up()
    ordering = "caseload:enrolled_at:flagged"

    async def remembered(on: datetime) -> list[str]:
        async with clinic.runtime.pool.acquire() as conn:
            page = await caseload_model.fetch_caseload(
                conn,
                today=on.date(),
                care_manager_id=None,
                flagged_first=True,
                sort=caseload_model.CaseloadSort.ENROLLED_AT,
                first=10,
                after=None,
            )
        return [cursor for cursor, _ in page.rows]

    async def made(on: datetime) -> list[str]:
        async with clinic.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT (flagged_on IS NOT NULL AND flagged_on <= $1) AS f, enrolled_at, key
                   FROM rm_registry WHERE on_caseload
                   ORDER BY f DESC, enrolled_at, key""",
                on.date(),
            )
        return [keyset.encode_cursor(ordering, list(r.values())) for r in rows]

    for _ in range(2):  # the second time from memory
        assert await remembered(day(2)) == await made(day(2))
    await clinic.on_patient(risky, screened(2, 12, item9=2), now=day(2))
    await clinic.catch_up()
    for on in (day(3), day(3), day(40)):
        assert await remembered(on) == await made(on)
