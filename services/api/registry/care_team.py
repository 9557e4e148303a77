"""Care-team measures per month over GraphQL (issue #19 item 3; docs/outcomes.md,
"Care-team measures per month").

``careTeamOverTime(by, fromMonth, toMonth, asOf)``: per month of the caller's
organisation, or per care manager and month, the caseload size, the share contacted,
the time to first psychiatric review, PHQ-9 and GAD-7 response and remission at 12 weeks
and 6 months, NCQA DRR-E, DMS-E and DSF-E (``projections/care_team_series.py``). Bounded: at
most 36 months a request. Aggregate counts only; every patient counted is recorded in
the access log as read. The same numbers as CSV and chart: services/api/registry/outcomes_page.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.rules.care_team_months import MAX_MONTHS, months_from_to
from projections import care_team_months as model
from projections.care_team_series import CareTeamMonth, CareTeamSeries, StatusCount
from projections.clinic_calendar import day_of
from services.api.authz import Denied, check_role, patient_scope_sql
from services.api.commanding import deny, record_reads
from services.api.context import CareteamContext
from services.api.errors import ForbiddenError, ValidationError, result_union
from services.api.registry.types import MeasureSummaryView
from services.api.types import staff_names

OPERATION = "careTeamOverTime"


@strawberry.enum(description="How the care-team measures are grouped.")
class SeriesDimension(enum.Enum):
    ORGANISATION = "organisation"
    CARE_MANAGER = "care_manager"


class RangeError(ValueError):
    """A month range that cannot be served (a typed error on ``field``; nothing read)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def month_range(
    from_month: date | None, to_month: date | None, as_of: date
) -> list[tuple[int, int]]:
    """The months asked for: by default the 12 months ending with the as-of month.
    Raises ``RangeError`` for a reversed range or one longer than 36 months."""
    last = to_month or as_of
    if from_month is None:
        back = last.year * 12 + last.month - 1 - 11  # months since year 0, eleven back
        from_month = date(back // 12, back % 12 + 1, 1)
    first = from_month
    if first.replace(day=1) > last.replace(day=1):
        raise RangeError("RANGE_REVERSED", "fromMonth is after toMonth", "fromMonth")
    months = months_from_to(first, last)
    if len(months) > MAX_MONTHS:
        raise RangeError(
            "RANGE_TOO_LONG", f"ask for at most {MAX_MONTHS} months at once", "toMonth"
        )
    return months


@dataclass(frozen=True)
class CareTeamResult:
    """The series as of a day for the months asked."""

    as_of: date
    by: SeriesDimension
    series: list[CareTeamSeries]
    # Care managers' display names from the staff directory (staff, not patient data).
    names: dict[UUID, str | None] = field(default_factory=dict)


async def load_care_team(
    ctx: CareteamContext,
    by: SeriesDimension,
    from_month: date | None,
    to_month: date | None,
    as_of: date | None,
    fields: tuple[str, ...],
) -> CareTeamResult:
    """Validated (``RangeError`` before anything is read), authorised (``Denied``) and
    audited: every patient counted is recorded as read, with ``fields``."""
    principal = ctx.require_principal()
    day = as_of or day_of(ctx.runtime.clock())
    months = month_range(from_month, to_month, day)
    check_role(principal, OPERATION)

    def scope(key: str, first: int) -> tuple[str, list[object]]:
        return patient_scope_sql(OPERATION, principal, key, first)

    async with ctx.runtime.pool.acquire() as conn:
        series, counted = await model.fetch_series(
            conn,
            principal.organisation_id,
            months,
            day,
            by_care_manager=by is SeriesDimension.CARE_MANAGER,
            scope=scope,
        )
    if counted:
        await record_reads(ctx, OPERATION, sorted(counted, key=str), fields)
    managers = [s.care_manager_id for s in series if s.care_manager_id is not None]
    names = await staff_names(ctx).load_many(managers) if managers else []
    return CareTeamResult(day, by, series, dict(zip(managers, names, strict=True)))


def share(part: int, whole: int) -> float | None:
    """``part`` / ``whole`` to 3 decimals; None when ``whole`` is 0."""
    return None if not whole else round(part / whole, 3)


@strawberry.type(
    name="StatusCount", description="A time-bound measure's patients and their status on asOf."
)
class StatusCountView:
    eligible: int = strawberry.field(description="Patients the measure counts.")
    met: int = strawberry.field(description="Met.")
    open: int = strawberry.field(description="Not met yet, but the time allowed has not passed.")
    not_met: int = strawberry.field(description="Not met, and the time allowed has passed.")

    @classmethod
    def build(cls, s: StatusCount) -> StatusCountView:
        return cls(eligible=s.eligible, met=s.met, open=s.open, not_met=s.not_met)


@strawberry.type(
    name="CareTeamMonth", description="The care-team measures of one month for one group."
)
class CareTeamMonthView:
    year: int = strawberry.field(description="Year.")
    month: int = strawberry.field(description="Month, 1-12.")
    caseload: int = strawberry.field(
        description="Patients with an episode on the caseload on some day of the month."
    )
    contacted: int = strawberry.field(
        description="Of those, patients with a contact (not an outreach attempt) that month."
    )
    contacted_share: float | None = strawberry.field(
        description="contacted / caseload (3 decimals); null with no caseload."
    )
    enrolled: int = strawberry.field(description="Episodes enrolled that month.")
    reviewed: int = strawberry.field(
        description="Of those, with a first psychiatric case review (on or after the "
        "enrollment day) by asOf."
    )
    median_days_to_psychiatric_review: float | None = strawberry.field(
        description="Median days from enrollment to that first review, over the reviewed "
        "episodes; null if none."
    )
    phq9_at_12_weeks: MeasureSummaryView = strawberry.field(
        description="Episodes enrolled that month: PHQ-9 response and remission on days "
        "70-98 after the index score."
    )
    phq9_at_6_months: MeasureSummaryView = strawberry.field(
        description="The same on days 120-240 after the index score."
    )
    drr_e: MeasureSummaryView = strawberry.field(
        description="NCQA DRR-E of the episodes enrolled that month."
    )
    dms_e: StatusCountView = strawberry.field(
        description="NCQA DMS-E: patients with a contact that month; met when the "
        "four-month period holding the month has a complete PHQ-9."
    )
    dsf_e: StatusCountView = strawberry.field(
        description="NCQA DSF-E: patients with a positive PHQ-2 that month; met when a "
        "complete PHQ-9 followed the first one that day or within 30 days."
    )
    gad7_at_12_weeks: MeasureSummaryView = strawberry.field(
        description="Episodes enrolled that month: GAD-7 response (at least 50% below the "
        "episode's first complete GAD-7) and remission (below 5) on the most recent GAD-7 "
        "on days 70-98 after that first one."
    )
    gad7_at_6_months: MeasureSummaryView = strawberry.field(
        description="The same on days 120-240 after the first complete GAD-7."
    )

    @classmethod
    def build(cls, m: CareTeamMonth) -> CareTeamMonthView:
        return cls(
            year=m.year,
            month=m.month,
            caseload=m.caseload,
            contacted=m.contacted,
            contacted_share=share(m.contacted, m.caseload),
            enrolled=m.enrolled,
            reviewed=m.reviewed,
            median_days_to_psychiatric_review=m.median_days_to_review,
            phq9_at_12_weeks=MeasureSummaryView.build(m.twelve_weeks),
            phq9_at_6_months=MeasureSummaryView.build(m.six_months),
            drr_e=MeasureSummaryView.build(m.drr_e),
            dms_e=StatusCountView.build(m.dms_e),
            dsf_e=StatusCountView.build(m.dsf_e),
            gad7_at_12_weeks=MeasureSummaryView.build(m.gad7_twelve_weeks),
            gad7_at_6_months=MeasureSummaryView.build(m.gad7_six_months),
        )


@strawberry.type(name="CareTeamSeries", description="One group's months, oldest first.")
class CareTeamSeriesView:
    care_manager_id: UUID | None = strawberry.field(
        description="The care manager; null for the whole organisation (by ORGANISATION) "
        "or for patients without a care manager (by CARE_MANAGER)."
    )
    care_manager_name: str | None = strawberry.field(
        description="The care manager's display name from the staff directory; null when "
        "not listed (or for the organisation and the unassigned)."
    )
    months: list[CareTeamMonthView] = strawberry.field(description="Every month asked for.")


@strawberry.type(description="Care-team measures per month, as of a day.")
class CareTeamOverTime:
    as_of: date = strawberry.field(description="The day the measures are computed for.")
    by: SeriesDimension = strawberry.field(description="How the series are grouped.")
    series: list[CareTeamSeriesView] = strawberry.field(
        description="By ORGANISATION one series; by CARE_MANAGER one per care manager "
        "(by id), then the unassigned patients."
    )

    @classmethod
    def build(cls, result: CareTeamResult) -> CareTeamOverTime:
        return cls(
            as_of=result.as_of,
            by=result.by,
            series=[
                CareTeamSeriesView(
                    care_manager_id=s.care_manager_id,
                    care_manager_name=None
                    if s.care_manager_id is None
                    else result.names.get(s.care_manager_id),
                    months=[CareTeamMonthView.build(m) for m in s.months],
                )
                for s in result.series
            ],
        )


CareTeamOverTimeResult = Annotated[
    CareTeamOverTime | ValidationError | ForbiddenError,
    result_union("CareTeamOverTimeResult", "The care-team measures, or why not."),
]


@strawberry.type(description="Care-team measures over time (issue #19).")
class CareTeamQuery:
    @strawberry.field(
        description="Per month of your organisation (by ORGANISATION) or per care manager "
        "and month (by CARE_MANAGER): caseload size, share contacted, time to first "
        "psychiatric review, PHQ-9 and GAD-7 response and remission at 12 weeks and 6 "
        "months, NCQA DRR-E, DMS-E and DSF-E, as of `asOf` (default today), for the months from "
        "`fromMonth` to `toMonth` (any day of each; default the 12 months ending with "
        "asOf's; at most 36). Compliance and administrators. Aggregate counts only; every "
        "patient counted is recorded as read. Also at /outcomes/care-team.csv and on the "
        "page /outcomes/."
    )
    async def care_team_over_time(
        self,
        info: Info[CareteamContext, None],
        by: SeriesDimension = SeriesDimension.ORGANISATION,
        from_month: date | None = None,
        to_month: date | None = None,
        as_of: date | None = None,
    ) -> CareTeamOverTimeResult:
        try:
            result = await load_care_team(
                info.context, by, from_month, to_month, as_of, ("careTeamOverTime",)
            )
        except RangeError as bad:
            return ValidationError(code=bad.code, message=bad.message, field=bad.field)
        except Denied as denied:
            return await deny(info.context, denied, None)
        return CareTeamOverTime.build(result)
