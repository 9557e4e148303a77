"""Outcomes over time over GraphQL (issue #19 item 3; docs/outcomes.md).

- ``recordUtilisation``: an emergency department visit, a hospitalisation or a specialty
  mental-health referral of a patient, with its effective day and its source (command
  ``RecordUtilisation``; a day in the future or before the patient's birth is a
  ``ValidationError`` on ``effectiveOn``, nothing written).
- ``outcomesOverTime``: per enrollment month of the caller's organisation, utilisation
  per 1,000 enrolled patients in the 365 days before and after enrollment
  (``domain.rules.outcomes.cohort_utilisation``) and GAD-7 response and remission counts,
  read from ``projections/outcomes_series.py``. Aggregate counts only; every patient whose
  events were counted is recorded in the access log as a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Annotated, Any, ClassVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.rules.outcomes import CohortGad7, CohortUtilisation, UtilisationKind, UtilisationSource
from projections import outcomes_series as model
from projections.clinic_calendar import day_of
from services.api.authz import Denied, check_role, patient_scope_sql
from services.api.commanding import deny, record_reads
from services.api.context import CareteamContext
from services.api.errors import ForbiddenError, result_union
from services.api.patient_types import PatientResult
from services.api.record_commands import INPUT, answer_patient, occurred_at_field
from services.commands.commands import PatientCommand

strawberry.enum(
    UtilisationKind,
    description="A use of the wider health system collaborative care means to change.",
)
strawberry.enum(UtilisationSource, description="Where careteam learned of a utilisation event.")


# --- the command -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecordUtilisation(PatientCommand):
    """Record an emergency visit, hospitalisation or specialty referral of the patient."""

    operation: ClassVar[str] = "recordUtilisation"
    kind: UtilisationKind
    source: UtilisationSource
    effective_on: date

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.record_utilisation(
            kind=self.kind,
            source=self.source,
            effective_on=self.effective_on,
            occurred_at=self.at(now),
            now=now,
        )


@strawberry.input(description="A use of the wider health system by a patient.")
class RecordUtilisationInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    kind: UtilisationKind = strawberry.field(description="What it was.")
    source: UtilisationSource = strawberry.field(description="Where careteam learned of it.")
    effective_on: date = strawberry.field(
        description="The day it took place: not in the future, not before the patient's birth."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.type(description="System-level utilisation (issue #19).")
class OutcomesMutation:
    @strawberry.mutation(
        description="Record an emergency department visit, hospitalisation or specialty "
        "mental-health referral of the patient, with its day and source. Care manager or "
        "PCP on the care team. `createdId` is the event's id."
    )
    async def record_utilisation(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RecordUtilisationInput, INPUT],
    ) -> PatientResult:
        command = RecordUtilisation(
            patient=input.patient_id,
            kind=input.kind,
            source=input.source,
            effective_on=input.effective_on,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)


# --- the series --------------------------------------------------------------------------

OPERATION = "outcomesOverTime"


@dataclass(frozen=True)
class Series:
    """The organisation's series as of a day: utilisation rows and GAD-7 rows per month."""

    as_of: date
    utilisation: list[CohortUtilisation]
    gad7: list[CohortGad7]


async def load_series(ctx: CareteamContext, as_of: date | None, fields: tuple[str, ...]) -> Series:
    """Authorised (``outcomesOverTime``; raises ``Denied``) and audited: every patient
    whose document was counted is recorded as read, with ``fields`` as what was shown."""
    principal = ctx.require_principal()
    check_role(principal, OPERATION)
    day = as_of or day_of(ctx.runtime.clock())

    def scope(key: str, first: int) -> tuple[str, list[object]]:
        return patient_scope_sql(OPERATION, principal, key, first)

    async with ctx.runtime.pool.acquire() as conn:
        docs = await model.fetch_enrolled(conn, principal.organisation_id, day, scope=scope)
    ids = [UUID(d["patient_id"]) for d in docs]
    if ids:
        await record_reads(ctx, OPERATION, ids, fields)
    return Series(day, model.utilisation_series(docs, day), model.gad7_series(docs, day))


def _float(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 3)


@strawberry.type(description="One kind of utilisation of one enrollment-month cohort.")
class UtilisationPoint:
    kind: UtilisationKind = strawberry.field(description="What was counted.")
    enrolled: int = strawberry.field(description="Patients enrolled that month (by asOf).")
    before_events: int = strawberry.field(
        description="Events in the 365 days before each patient's enrollment day."
    )
    before_per_1000: float | None = strawberry.field(
        description="beforeEvents per 1,000 enrolled patients (3 decimals); null if none."
    )
    after_patients: int = strawberry.field(
        description="Patients whose 365 days after enrollment have passed by asOf."
    )
    after_events: int = strawberry.field(
        description="Their events in the 365 days after their enrollment day."
    )
    after_per_1000: float | None = strawberry.field(
        description="afterEvents per 1,000 afterPatients (3 decimals); null if none yet."
    )

    @classmethod
    def build(cls, row: CohortUtilisation) -> UtilisationPoint:
        return cls(
            kind=row.kind,
            enrolled=row.enrolled,
            before_events=row.before_events,
            before_per_1000=_float(row.before_per_1000),
            after_patients=row.after_patients,
            after_events=row.after_events,
            after_per_1000=_float(row.after_per_1000),
        )


@strawberry.type(description="GAD-7 outcomes of one enrollment-month cohort.")
class Gad7Point:
    with_baseline: int = strawberry.field(
        description="Patients with a complete GAD-7 from 30 days before enrollment on."
    )
    followed_up: int = strawberry.field(description="Of those, with a later complete GAD-7.")
    response: int = strawberry.field(description="Latest GAD-7 at least 50% below baseline.")
    remission: int = strawberry.field(description="Latest GAD-7 below 5.")


@strawberry.type(description="One enrollment month of the organisation.")
class OutcomesMonth:
    year: int = strawberry.field(description="Enrollment year.")
    month: int = strawberry.field(description="Enrollment month, 1-12.")
    enrolled: int = strawberry.field(description="Patients first enrolled that month.")
    utilisation: list[UtilisationPoint] = strawberry.field(description="One row per kind.")
    gad7: Gad7Point = strawberry.field(description="GAD-7 response and remission counts.")


@strawberry.type(description="The organisation's outcomes per enrollment month, as of a day.")
class OutcomesOverTime:
    as_of: date = strawberry.field(description="The day the series is computed for.")
    months: list[OutcomesMonth] = strawberry.field(description="Oldest month first.")

    @classmethod
    def build(cls, series: Series) -> OutcomesOverTime:
        gad = {(g.year, g.month): g for g in series.gad7}
        months: dict[tuple[int, int], list[UtilisationPoint]] = {}
        enrolled: dict[tuple[int, int], int] = {}
        for row in series.utilisation:
            months.setdefault((row.year, row.month), []).append(UtilisationPoint.build(row))
            enrolled[(row.year, row.month)] = row.enrolled
        return cls(
            as_of=series.as_of,
            months=[
                OutcomesMonth(
                    year=y,
                    month=m,
                    enrolled=enrolled[(y, m)],
                    utilisation=points,
                    gad7=Gad7Point(
                        with_baseline=gad[(y, m)].with_baseline,
                        followed_up=gad[(y, m)].followed_up,
                        response=gad[(y, m)].response,
                        remission=gad[(y, m)].remission,
                    ),
                )
                for (y, m), points in months.items()
            ],
        )


OutcomesOverTimeResult = Annotated[
    OutcomesOverTime | ForbiddenError,
    result_union("OutcomesOverTimeResult", "The outcomes series, or why not."),
]


@strawberry.type(description="Outcomes over time (issue #19).")
class OutcomesQuery:
    @strawberry.field(
        description="Per enrollment month of your organisation: emergency visits, "
        "hospitalisations and specialty referrals per 1,000 enrolled patients in the 365 "
        "days before and after enrollment, and GAD-7 response and remission counts, as of "
        "`asOf` (default today). Aggregate counts only; every patient counted is recorded "
        "as read. Also as CSV at /outcomes/series.csv and as a chart at /outcomes/."
    )
    async def outcomes_over_time(
        self, info: Info[CareteamContext, None], as_of: date | None = None
    ) -> OutcomesOverTimeResult:
        try:
            series = await load_series(info.context, as_of, ("outcomesOverTime",))
        except Denied as denied:
            return await deny(info.context, denied, None)
        return OutcomesOverTime.build(series)
