"""Care-team measures per month read from the month rows kept at projection time equal
the former computation on read from every patient's document, on real PostgreSQL, for a
seeded population (random enrollments, hand-overs, discharges and re-enrollments,
contacts, reviews, PHQ-9, GAD-7 and PHQ-2 screens), on many as-of days, by organisation
and by care manager; and again after ``careteam rebuild care_team_months``."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain.patient import Patient
from projections.care_team_months import fetch_series, month_facts
from projections.care_team_months import projection as care_team_months
from projections.care_team_series import care_team_series
from projections.outcomes_series import TABLE as SERIES_TABLE
from projections.registry import projection_tables
from services.projector.rebuild import rebuild
from tests.integration.readmodels_support import (
    CARE_MANAGER,
    NOW,
    ORG,
    OTHER_CARE_MANAGER,
    PCP,
    PSYCHIATRIST,
    Clinic,
    day,
    open_clinic,
    phq9,
)

# The commands are built as if run late in 2027: some events are after NOW.
LATER = datetime(2027, 12, 31, tzinfo=UTC)
WANTED = [(2026, m) for m in range(1, 13)] + [(2027, 1)]


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


def _gad7(total: int) -> list[int | None]:
    answers: list[int | None] = []
    for _ in range(7):
        answers.append(min(3, total))
        total -= min(3, total)
    return answers


def _patient(rng: random.Random, n: int) -> Patient:
    """A patient whose commands run in the order they happened (days after T0)."""
    start = rng.randrange(-40, 120)
    patient = Patient.register(
        given_name="Test",
        family_name="Person",
        birth_date=date(rng.choice([1970, 2012, 2013]), 5, 17),
        mrn=f"CTM-{n}",
        organisation_id=ORG,
        occurred_at=day(start - 30),
        now=LATER,
    )
    managers = [CARE_MANAGER, OTHER_CARE_MANAGER]
    patient.assign_care_team(
        care_manager_id=rng.choice(managers),
        pcp_id=PCP,
        psychiatric_consultant_id=PSYCHIATRIST,
        occurred_at=day(start - 20),
        now=LATER,
    )
    if rng.random() < 0.3:  # screened before enrollment
        patient.record_screening(
            instrument="phq2", answers=[2, rng.randrange(4)], occurred_at=day(start - 10), now=LATER
        )
    actions: list[tuple[int, int, str]] = []
    for _ in range(rng.randrange(2, 14)):
        kind = rng.choice(["phq9", "phq9", "gad7", "phq2", "contact", "contact", "review", "cm"])
        actions.append((rng.randrange(0, 260), rng.randrange(24), kind))
    patient.enroll(occurred_at=day(start), now=LATER)
    patient.record_screening(
        instrument="phq9", answers=phq9(rng.randrange(5, 25)), occurred_at=day(start, 1), now=LATER
    )
    discharge = start + rng.randrange(60, 300) if rng.random() < 0.4 else None
    enrolled = True
    last = day(start, 1)
    for offset, hours, kind in sorted(actions):
        at = day(start + offset, hours % 6 + 2)
        if discharge is not None and start + offset > discharge:
            # Discharged after the last step before that day; half are enrolled again.
            discharge = None
            patient.discharge(reason="completed", occurred_at=last + timedelta(hours=1), now=LATER)
            enrolled = False
            if rng.random() < 0.5:
                patient.enroll(occurred_at=last + timedelta(hours=2), now=LATER)
                enrolled = True
        last = at
        if kind == "phq9":
            patient.record_screening(
                instrument="phq9", answers=phq9(rng.randrange(0, 25)), occurred_at=at, now=LATER
            )
        elif kind == "gad7":
            patient.record_screening(
                instrument="gad7", answers=_gad7(rng.randrange(0, 22)), occurred_at=at, now=LATER
            )
        elif kind == "phq2":
            answers = [rng.randrange(4), rng.randrange(4)]
            patient.record_screening(instrument="phq2", answers=answers, occurred_at=at, now=LATER)
        elif kind == "contact" and enrolled:
            patient.log_contact(
                activity=rng.choice(["contact", "contact", "outreach"]),
                modality="phone",
                minutes=10,
                occurred_at=at,
                now=LATER,
            )
        elif kind == "review" and enrolled:
            patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=at, now=LATER)
        elif kind == "cm":  # a hand-over to the other care manager
            current = patient.care_team.care_manager_id
            other = next(m for m in managers if m != current)
            patient.assign_care_team(care_manager_id=other, occurred_at=at, now=LATER)
    return patient


async def _compare(clinic: Clinic, as_of_days: list[date]) -> int:
    """Compares both computations on each day; returns how many patient-months counted."""
    async with clinic.runtime.pool.acquire() as conn:
        docs = [
            r["doc"]
            for r in await conn.fetch(
                f"SELECT doc FROM {SERIES_TABLE} WHERE organisation_id = $1", ORG
            )
        ]
        counted_months = 0
        for as_of in as_of_days:
            for by in (True, False):
                expected, expected_counted = care_team_series(
                    docs, WANTED, as_of, by_care_manager=by
                )
                got, got_counted = await fetch_series(conn, ORG, WANTED, as_of, by_care_manager=by)
                assert got == expected, (as_of, by)
                assert got_counted == expected_counted, (as_of, by)
                counted_months += sum(m.caseload for s in got for m in s.months)
    return counted_months


async def test_the_month_rows_equal_the_computation_on_read_and_survive_a_rebuild(
    clinic: Clinic,
) -> None:
    rng = random.Random(1919)
    for n in range(40):
        await clinic.create(_patient(rng, n))
    await clinic.catch_up()
    days = [date(2026, 1, 1) + timedelta(days=d) for d in range(0, 420, 3)]
    days += [date(2026, m, 1) for m in range(1, 13)] + [date(2026, 12, 31), date(2027, 1, 31)]
    counted = await _compare(clinic, days)
    assert counted > 200  # the population fills the months (not a comparison of empties)

    # Rebuilt from the log into new tables and swapped in: the same answers.
    async with clinic.runtime.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM rm_care_team_months")
        await conn.execute("DELETE FROM rm_care_team_months")
    await rebuild(clinic.runtime.store, [care_team_months], projection_tables())
    async with clinic.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rm_care_team_months") == before
    assert await _compare(clinic, days[::5]) > 0


async def test_a_later_event_replaces_the_patients_rows(clinic: Clinic) -> None:
    patient_id = await clinic.patient()
    await clinic.catch_up()
    as_of = date(2026, 6, 30)
    async with clinic.runtime.pool.acquire() as conn:
        (series,) = (await fetch_series(conn, ORG, WANTED, as_of, by_care_manager=False))[0]
    march = series.months[2]
    assert (march.caseload, march.contacted) == (1, 0)
    await clinic.on_patient(
        patient_id,
        lambda p: p.log_contact(
            activity="contact", modality="phone", minutes=5, occurred_at=day(3), now=NOW
        ),
    )
    await clinic.catch_up()
    async with clinic.runtime.pool.acquire() as conn:
        (series,) = (await fetch_series(conn, ORG, WANTED, as_of, by_care_manager=False))[0]
        rows = await conn.fetchval(
            "SELECT count(*) FROM rm_care_team_months WHERE patient_id = $1", patient_id
        )
        doc = await conn.fetchval("SELECT doc FROM rm_care_team_facts WHERE key = $1", patient_id)
    assert (series.months[2].caseload, series.months[2].contacted) == (1, 1)
    # The patient's rows were replaced, not added to.
    assert rows == len(month_facts(doc)) > 0


async def test_a_batch_reads_once_writes_once_and_an_unchanged_document_writes_nothing(
    clinic: Clinic,
) -> None:
    """Two statements per batch: the facts documents read, then the changed ones written
    with their month rows replaced; a batch that leaves every document as it was (an
    outreach is not a contact of the measures) writes nothing and keeps the rows."""
    patient_id = await clinic.patient()
    await clinic.catch_up()
    statements: list[str] = []

    def logger(record: Any) -> None:
        statements.append(record.query)

    cases = (
        ("outreach", 1, ["SELECT"]),
        ("contact", 2, ["SELECT", "WITH"]),
    )
    for activity, minutes, expected in cases:
        await clinic.on_patient(
            patient_id,
            lambda p, a=activity, m=minutes: p.log_contact(
                activity=a, modality="phone", minutes=m, occurred_at=day(3), now=NOW
            ),
        )
        (last,) = (await clinic.runtime.store.read_stream(patient_id))[-1:]
        async with clinic.runtime.pool.acquire() as conn:
            before = await conn.fetch(
                "SELECT ctid::text AS at, * FROM rm_care_team_months WHERE patient_id = $1 "
                "ORDER BY ctid",
                patient_id,
            )
            conn.add_query_logger(logger)
            async with conn.transaction():
                await care_team_months.apply(conn, [last])
            conn.remove_query_logger(logger)
            after = await conn.fetch(
                "SELECT ctid::text AS at, * FROM rm_care_team_months WHERE patient_id = $1 "
                "ORDER BY ctid",
                patient_id,
            )
            doc = await conn.fetchval(
                "SELECT doc FROM rm_care_team_facts WHERE key = $1", patient_id
            )
        applied = [s.split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))]
        statements.clear()
        assert applied == expected, activity
        # Unchanged: the very same rows (where they lie); changed: replaced by the rows of
        # the new document.
        assert (after == before) == (activity == "outreach")
        assert len(after) == len(month_facts(doc)) > 0
