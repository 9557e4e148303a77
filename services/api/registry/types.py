"""GraphQL shapes of the role read models: caseload, billing, outcomes, queues, trackers.

Read-model shapes only (never domain objects): each type has a ``build`` function from
the pure row the projection module derives for the query's day.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from fractions import Fraction
from typing import Any, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.rules.billing import BillingProgram
from domain.rules.outcomes import EpisodeOutcomes, WindowOutcome
from projections import caseload as caseload_model
from projections import trackers as trackers_model
from projections.billing import BillingRow
from projections.caseload import CaseloadRow, RegistryFlag, ScorePoint, SdqPoint
from projections.outcomes import CareManagerOutcomes, EpisodeOutcome, MeasureSummary
from projections.panel import PanelPatient
from projections.review_queue import ReviewEntry
from projections.trackers import Actor as TrackerActor
from projections.trackers import Step
from services.api.enums import (
    ActivityType,
    ConsultationNoteStatus,
    EpisodeStatus,
    InstrumentCode,
    RecommendationResponse,
    RequiredElement,
    ReviewReason,
    SdqBandKind,
    SdqCategoryKind,
    SdqForm,
    member,
)
from services.api.types import staff_name
from services.auth import Role

T = TypeVar("T")


def _float(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 4)


@strawberry.enum(description="Orderings of the caseload; each ends with the patient id.")
class CaseloadSortKey(enum.Enum):
    ENROLLED_AT = "enrolled_at"
    LAST_CONTACT = "last_contact"
    LATEST_PHQ9 = "latest_phq9"
    FAMILY_NAME = "family_name"


@strawberry.enum(description="Where the relapse prevention plan stands in this episode.")
class RelapsePreventionPlanStatus(enum.Enum):
    WRITTEN = "written"
    DUE = "due"
    NOT_DUE = "not_due"


@strawberry.type(
    name="RegistryFlag",
    description="A registry flag, explainable: the rule, its version, its inputs.",
)
class RegistryFlagView:
    kind: str = strawberry.field(
        description="safety_risk, not_improving, overdue_contact, measurement_due, "
        "needs_psychiatric_review, or a team member's kind."
    )
    rule_id: str = strawberry.field(description="The rule that raised it.")
    rule_version: str = strawberry.field(description="The version of that rule.")
    inputs: strawberry.scalars.JSON = strawberry.field(
        description="The values the rule read (days as ISO dates, fractions as numbers)."
    )
    summary: str = strawberry.field(description="What the flag means; never patient data.")
    source: str = strawberry.field(
        description="rule: evaluated for today; recorded: raised on the patient's record and "
        "not cleared yet."
    )
    flag_id: UUID | None = strawberry.field(description="Id of a recorded flag.")
    raised_at: datetime | None = strawberry.field(description="When a recorded flag was raised.")

    @classmethod
    def build(cls, flag: RegistryFlag) -> RegistryFlagView:
        inputs: Any = dict(flag.inputs)
        return cls(
            kind=flag.kind,
            rule_id=flag.rule_id,
            rule_version=flag.rule_version,
            inputs=inputs,
            summary=flag.summary,
            source=flag.source,
            flag_id=flag.flag_id,
            raised_at=flag.raised_at,
        )


@strawberry.type(
    name="RegistryScore",
    description="A complete score with the time it was taken.",
)
class ScoreView:
    instrument: str = strawberry.field(
        description="The questionnaire as its lower-case code.",
        deprecation_reason="Use instrumentCode (an enum).",
    )
    total: int = strawberry.field(description="Total score.")
    severity: str | None = strawberry.field(description="Severity band.")
    taken_at: datetime = strawberry.field(description="When it was taken (effective time).")

    @strawberry.field(description="Which questionnaire (PHQ-9, PHQ-A or GAD-7).")
    def instrument_code(self) -> InstrumentCode:
        return InstrumentCode(self.instrument)

    @classmethod
    def build(cls, point: ScorePoint | None) -> ScoreView | None:
        if point is None:
            return None
        return cls(
            instrument=point.instrument,
            total=point.total,
            severity=point.severity,
            taken_at=point.taken_at,
        )


@strawberry.type(
    name="RegistrySdq",
    description="The patient's latest SDQ (any form): total difficulties and its bands.",
)
class SdqView:
    informant: SdqForm = strawberry.field(description="Whose form it was.")
    total_difficulties: int | None = strawberry.field(
        description="Emotional + conduct + hyperactivity + peer problems (0-40); null when "
        "an item of those subscales was not answered."
    )
    band: SdqBandKind | None = strawberry.field(
        description="The total's band in the official four-band scheme for that form."
    )
    category: SdqCategoryKind | None = strawberry.field(
        description="The total's band in the original three-band scheme for that form."
    )
    taken_at: datetime = strawberry.field(description="When it was answered.")

    @classmethod
    def build(cls, point: SdqPoint | None) -> SdqView | None:
        if point is None:
            return None
        return cls(
            informant=SdqForm(point.informant),
            total_difficulties=point.total_difficulties,
            band=None if point.band is None else SdqBandKind(point.band),
            category=None if point.category is None else SdqCategoryKind(point.category),
            taken_at=point.taken_at,
        )


@strawberry.type(
    name="CaseloadRow",
    description="One patient's registry row; time-dependent values are for asOf.",
)
class CaseloadRowView:
    patient_id: UUID = strawberry.field(description="Patient id.")
    given_name: str | None = strawberry.field(description="Given name; null once forgotten.")
    family_name: str | None = strawberry.field(description="Family name; null once forgotten.")
    mrn: str | None = strawberry.field(description="Medical record number; null once forgotten.")
    status: str | None = strawberry.field(
        description="Episode status as its lower-case value.",
        deprecation_reason="Use episodeStatus (an enum).",
    )

    @strawberry.field(description="Where the patient's current episode stands.")
    def episode_status(self) -> EpisodeStatus | None:
        return member(EpisodeStatus, self.status)

    episode_number: int = strawberry.field(description="Current episode number.")
    enrolled_at: datetime | None = strawberry.field(description="Enrollment of this episode.")
    weeks_in_treatment: int | None = strawberry.field(
        description="Whole weeks since enrollment (to the episode's end once it ended)."
    )
    baseline_phq9: ScoreView | None = strawberry.field(
        description="First complete PHQ-9 (or PHQ-A) of the episode by effective time."
    )
    latest_phq9: ScoreView | None = strawberry.field(
        description="Most recently taken complete PHQ-9 (or PHQ-A) of the episode."
    )
    phq9_percent_change: float | None = strawberry.field(
        description="Percent change from baseline (negative is better); null with one score."
    )
    baseline_gad7: ScoreView | None = strawberry.field(description="First complete GAD-7.")
    latest_gad7: ScoreView | None = strawberry.field(description="Most recent complete GAD-7.")
    gad7_percent_change: float | None = strawberry.field(
        description="GAD-7 percent change from baseline (negative is better)."
    )
    latest_sdq: SdqView | None = strawberry.field(
        description="Latest SDQ (Strengths and Difficulties Questionnaire, any form)."
    )
    contact_count: int = strawberry.field(description="Contacts with the patient this episode.")
    outreach_count: int = strawberry.field(description="Outreach attempts this episode.")
    last_contact_at: datetime | None = strawberry.field(description="Last contact (effective).")
    days_since_last_contact: int | None = strawberry.field(
        description="Days from the last contact to asOf."
    )
    last_case_review_at: datetime | None = strawberry.field(
        description="Last psychiatric case review this episode."
    )
    care_manager_id: UUID | None = strawberry.field(description="Care manager.")
    pcp_id: UUID | None = strawberry.field(description="Primary care provider.")
    psychiatric_consultant_id: UUID | None = strawberry.field(description="Psychiatric consultant.")

    @strawberry.field(description="The care manager's display name from the staff directory.")
    async def care_manager_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.care_manager_id)

    @strawberry.field(description="The PCP's display name from the staff directory.")
    async def pcp_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.pcp_id)

    @strawberry.field(
        description="The psychiatric consultant's display name from the staff directory."
    )
    async def psychiatric_consultant_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.psychiatric_consultant_id)

    relapse_prevention_plan: RelapsePreventionPlanStatus = strawberry.field(
        description="written; due (the treatment rule says relapse prevention); not_due."
    )
    relapse_prevention_plan_at: datetime | None = strawberry.field(
        description="When the plan was written."
    )
    minutes_this_month: int = strawberry.field(
        description="Care manager minutes logged in asOf's calendar month."
    )
    flags: list[RegistryFlagView] = strawberry.field(description="Flags raised on asOf.")
    flagged: bool = strawberry.field(description="True when any flag is raised.")
    review_reasons: list[str] = strawberry.field(
        description="Why a psychiatric review is needed, as lower-case values; empty when not.",
        deprecation_reason="Use reviewReasonKinds (enums).",
    )
    as_of: date = strawberry.field(description="The day the row was evaluated for.")

    @strawberry.field(
        description="Why a psychiatric review is needed; empty when not. A reason an older "
        "rule version recorded that the current rules do not know is left out (it stays "
        "in the deprecated reviewReasons)."
    )
    def review_reason_kinds(self) -> list[ReviewReason]:
        known = {r.value for r in ReviewReason}
        return [ReviewReason(r) for r in self.review_reasons if r in known]

    @classmethod
    def build(cls, row: CaseloadRow) -> CaseloadRowView:
        return cls(
            patient_id=row.patient_id,
            given_name=row.given_name,
            family_name=row.family_name,
            mrn=row.mrn,
            status=row.status,
            episode_number=row.episode_number,
            enrolled_at=row.enrolled_at,
            weeks_in_treatment=row.weeks_in_treatment,
            baseline_phq9=ScoreView.build(row.baseline_phq9),
            latest_phq9=ScoreView.build(row.latest_phq9),
            phq9_percent_change=_float(row.phq9_percent_change),
            baseline_gad7=ScoreView.build(row.baseline_gad7),
            latest_gad7=ScoreView.build(row.latest_gad7),
            gad7_percent_change=_float(row.gad7_percent_change),
            latest_sdq=SdqView.build(row.latest_sdq),
            contact_count=row.contact_count,
            outreach_count=row.outreach_count,
            last_contact_at=row.last_contact_at,
            days_since_last_contact=row.days_since_last_contact,
            last_case_review_at=row.last_case_review_at,
            care_manager_id=row.care_manager_id,
            pcp_id=row.pcp_id,
            psychiatric_consultant_id=row.psychiatric_consultant_id,
            relapse_prevention_plan=RelapsePreventionPlanStatus(row.relapse_prevention_plan.value),
            relapse_prevention_plan_at=row.relapse_prevention_plan_at,
            minutes_this_month=row.minutes_this_month,
            flags=[RegistryFlagView.build(f) for f in row.flags],
            flagged=bool(row.flags),
            review_reasons=list(row.review_reasons),
            as_of=row.as_of,
        )


@strawberry.type(
    name="PageInfo",
    description="Where a page ends and whether another follows: the one paging state of "
    "every connection (pass `endCursor` as `after` for the next page).",
)
class RegistryPageInfo:
    has_next_page: bool = strawberry.field(description="True when more rows follow.")
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` for the next page; null on an empty page."
    )


@strawberry.type(name="CaseloadEdge", description="One caseload row and its cursor.")
class CaseloadEdge:
    cursor: str = strawberry.field(description="Opaque position of this row.")
    node: CaseloadRowView = strawberry.field(description="The row.")


@strawberry.type(name="CaseloadConnection", description="A page of the caseload registry.")
class CaseloadConnection:
    edges: list[CaseloadEdge] = strawberry.field(description="The rows of this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Rows matching the filter, all pages.")
    as_of: date = strawberry.field(description="The day flags and counts were evaluated for.")
    max_page_size: int = strawberry.field(
        default=caseload_model.MAX_PAGE_SIZE, description="The largest `first` accepted."
    )


PageInfo = RegistryPageInfo
"""The one GraphQL `PageInfo` (the Python name RegistryPageInfo stays for importers)."""


# --- billing -----------------------------------------------------------------------------

# Registered here, before any type below uses it (services.api.team.directory imports this
# module first); strawberry would otherwise wrap the plain enum under another name.
strawberry.enum(Role, name="StaffRole", description="What a member of staff may do in careteam.")
strawberry.enum(
    BillingProgram,
    description="How an organisation bills behavioral health integration "
    "(docs/billing-programs.md).",
)


@strawberry.type(name="BillingCode", description="A billing code with its units.")
class BillingCode:
    code: str = strawberry.field(description="CPT/HCPCS code, e.g. 99492, 99494, G2214.")
    units: int = strawberry.field(description="Units billed.")


@strawberry.type(
    name="MinuteEntry",
    description="One logged care manager activity in the month.",
)
class MinuteEntryView:
    contact_id: UUID = strawberry.field(description="The activity's id.")
    occurred_at: datetime = strawberry.field(description="When it took place.")
    minutes: int = strawberry.field(description="Minutes logged.")
    activity: str = strawberry.field(
        description="The activity as its lower-case value.",
        deprecation_reason="Use activityKind (an enum).",
    )

    @strawberry.field(description="What the care manager did.")
    def activity_kind(self) -> ActivityType:
        return ActivityType(self.activity)


@strawberry.type(
    name="MinutesByRole",
    description="Minutes in the month performed by staff in one role.",
)
class MinutesByRoleView:
    role: Role = strawberry.field(description="The performer's role when the work was logged.")
    minutes: int = strawberry.field(description="Their minutes.")


@strawberry.type(
    name="BillingShortfall",
    description="A code the month does not reach yet, and the counted minutes it still needs.",
)
class BillingShortfallView:
    code: str = strawberry.field(description="CPT/HCPCS code, e.g. 99493.")
    minutes_needed: int = strawberry.field(description="Counted minutes still needed.")


@strawberry.type(
    name="BillingRow",
    description="What one patient-month bills, and why.",
)
class BillingRowView:
    patient_id: UUID = strawberry.field(description="Patient id.")
    care_manager_id: UUID | None = strawberry.field(description="Current care manager.")
    month: date = strawberry.field(description="First day of the billed month.")
    episode_number: int | None = strawberry.field(description="The episode billed.")
    episode_started_on: date | None = strawberry.field(description="The episode's first day.")
    first_month: bool = strawberry.field(
        description="True in the episode's first calendar month (99492)."
    )
    consent_on: date | None = strawberry.field(
        description="Grant day of the collaborative care consent covering the month."
    )
    logged_minutes: int = strawberry.field(description="All minutes logged in the month.")
    inpatient_minutes: int = strawberry.field(description="Minutes while inpatient (not counted).")
    minutes_before_consent: int = strawberry.field(description="Minutes before consent.")
    minutes_after_revocation: int = strawberry.field(
        description="Minutes on or after a consent revocation (left out)."
    )
    counted_minutes: int = strawberry.field(description="Minutes that count for billing.")
    codes: list[BillingCode] = strawberry.field(description="Codes the counted minutes support.")
    missing_documentation: list[str] = strawberry.field(
        description="Required elements not documented, as lower-case values.",
        deprecation_reason="Use missingElements (enums).",
    )

    @strawberry.field(description="Required elements not documented; empty when none.")
    def missing_elements(self) -> list[RequiredElement]:
        return [RequiredElement(m) for m in self.missing_documentation]

    billable: bool = strawberry.field(description="Consent in place and at least one code.")
    ready_to_submit: bool = strawberry.field(description="Billable with nothing missing.")
    rule_id: str | None = strawberry.field(description="The billing rule.")
    rule_version: str | None = strawberry.field(description="Its version in force that month.")
    entries: list[MinuteEntryView] = strawberry.field(description="The month's minute entries.")
    # --- issue 18: clinic calendar, program, qualifying time, what is missing ---
    time_zone: str = strawberry.field(
        default="UTC", description="The clinic zone whose calendar cut the month."
    )
    program: BillingProgram | None = strawberry.field(
        default=None,
        description="The organisation's program that decided the codes; null when the "
        "organisation records none (collaborative care).",
    )
    counted_minutes_by_role: list[MinutesByRoleView] = strawberry.field(
        default_factory=list,
        description="Minutes that qualified, by the performer's role (care manager time).",
    )
    non_qualifying_minutes_by_role: list[MinutesByRoleView] = strawberry.field(
        default_factory=list,
        description="Minutes that never count, by the performer's role (e.g. the billing "
        "practitioner's own time).",
    )
    shortfalls: list[BillingShortfallView] = strawberry.field(
        default_factory=list,
        description="Codes not reached this month and the counted minutes each still needs.",
    )
    apcm_add_ons_possible: bool = strawberry.field(
        default=False,
        description="False: G0568-G0570 need an APCM base code (G0556-G0558) billed the same "
        "month, and careteam records no APCM enrolment, so they are never derived.",
    )

    @classmethod
    def build(cls, row: BillingRow, month: date) -> BillingRowView:
        billed = row.billing
        logged = sum(e.minutes for e in row.entries)
        counted_by_role: dict[str, int] = {}
        if billed is not None and billed.counted_minutes:
            # Counted minutes are qualifying (care manager) time by construction.
            counted_by_role[Role.CARE_MANAGER.value] = billed.counted_minutes
        return cls(
            time_zone=row.time_zone,
            program=billed.program if billed else None,
            counted_minutes_by_role=[
                MinutesByRoleView(role=Role(r), minutes=m) for r, m in counted_by_role.items()
            ],
            non_qualifying_minutes_by_role=[
                MinutesByRoleView(role=Role(r), minutes=m)
                for r, m in row.non_qualifying_minutes
                if r in Role.__members__.values()
            ],
            shortfalls=[
                BillingShortfallView(code=s.code, minutes_needed=s.minutes)
                for s in (billed.shortfalls if billed else ())
            ],
            patient_id=row.patient_id,
            care_manager_id=row.care_manager_id,
            month=month,
            episode_number=row.episode_number,
            episode_started_on=row.episode_started_on,
            first_month=billed.first_month if billed else False,
            consent_on=row.consent_on,
            logged_minutes=logged,
            inpatient_minutes=billed.inpatient_minutes if billed else 0,
            minutes_before_consent=billed.minutes_before_consent if billed else 0,
            minutes_after_revocation=row.minutes_after_revocation,
            counted_minutes=billed.counted_minutes if billed else 0,
            codes=[BillingCode(code=c.code, units=c.units) for c in billed.codes] if billed else [],
            missing_documentation=[m.value for m in billed.missing_documentation] if billed else [],
            billable=billed.billable if billed else False,
            ready_to_submit=billed.ready_to_submit if billed else False,
            rule_id=billed.rule_id if billed else None,
            rule_version=billed.rule_version if billed else None,
            entries=[
                MinuteEntryView(
                    contact_id=e.contact_id,
                    occurred_at=e.occurred_at,
                    minutes=e.minutes,
                    activity=e.activity,
                )
                for e in row.entries
            ],
        )


@strawberry.type(
    name="BillingSummary", description="Billing of one month for every patient in view."
)
class BillingSummary:
    month: date = strawberry.field(description="First day of the month.")
    rows: list[BillingRowView] = strawberry.field(description="One row per patient.")
    billable_units: list[BillingCode] = strawberry.field(
        description="Units per code over the billable rows."
    )


# --- outcomes ----------------------------------------------------------------------------


@strawberry.type(
    name="DatedScore",
    description="A complete PHQ-9 total and the day it was taken.",
)
class DatedScoreView:
    taken_on: date = strawberry.field(description="Day taken.")
    total: int = strawberry.field(description="Total.")


@strawberry.enum(description="An outcome measure over a window after the index score.")
class OutcomeMeasure(enum.Enum):
    TWELVE_WEEKS = "twelve_weeks"
    SIX_MONTHS = "six_months"
    DRR_E = "drr_e"
    CMS159 = "cms159"
    GAD7_TWELVE_WEEKS = "gad7_twelve_weeks"
    GAD7_SIX_MONTHS = "gad7_six_months"


@strawberry.type(
    name="WindowMeasure",
    description="A window measure for one episode.",
)
class WindowMeasureView:
    measure: str = strawberry.field(
        description="The measure in lower case.",
        deprecation_reason="Use measureKind (OutcomeMeasure).",
    )
    measure_kind: OutcomeMeasure = strawberry.field(description="The measure.")
    rule_version: str = strawberry.field(description="Outcome rule version.")
    eligible: bool = strawberry.field(description="In the measure's denominator.")
    ineligible_reason: str | None = strawberry.field(description="Why not, when not.")
    window_start: date | None = strawberry.field(description="First day of the window.")
    window_end: date | None = strawberry.field(description="Last day of the window.")
    window_closed: bool = strawberry.field(description="False while a score can still count.")
    counted: DatedScoreView | None = strawberry.field(description="The score that counts.")
    follow_up: bool = strawberry.field(description="A score was taken in the window.")
    response: bool = strawberry.field(description="50% or more below the index score.")
    remission: bool = strawberry.field(description="Below 5.")

    @classmethod
    def build(cls, w: WindowOutcome) -> WindowMeasureView:
        counted = None
        if w.counted is not None:
            counted = DatedScoreView(taken_on=w.counted.day, total=w.counted.total)
        return cls(
            measure=w.measure,
            measure_kind=OutcomeMeasure(w.measure),
            rule_version=w.rule_version,
            eligible=w.eligible,
            ineligible_reason=w.ineligible.value if w.ineligible else None,
            window_start=w.window_start,
            window_end=w.window_end,
            window_closed=w.window_closed,
            counted=counted,
            follow_up=w.follow_up,
            response=w.response,
            remission=w.remission,
        )


@strawberry.type(
    name="EpisodeOutcome",
    description="The outcome measures of one episode.",
)
class EpisodeOutcomeView:
    patient_id: UUID = strawberry.field(description="Patient id.")
    care_manager_id: UUID | None = strawberry.field(description="Current care manager.")
    episode_number: int = strawberry.field(description="Episode.")
    status: str = strawberry.field(description="The episode's status.")
    age_at_index: int = strawberry.field(description="Age on the index score's day.")
    baseline: DatedScoreView = strawberry.field(description="Index score.")
    latest: DatedScoreView | None = strawberry.field(description="Latest score after it.")
    improvement: float | None = strawberry.field(
        description="Improvement from baseline as a fraction (0.5 = halved)."
    )
    response: bool = strawberry.field(description="Response now.")
    remission: bool = strawberry.field(description="Remission now.")
    twelve_weeks: WindowMeasureView = strawberry.field(description="At 12 weeks (days 70-98).")
    drr_e: WindowMeasureView = strawberry.field(description="NCQA DRR-E (days 120-240).")
    cms159: WindowMeasureView = strawberry.field(description="CMS159 (12 months +/- 60 days).")
    gad7_at_12_weeks: WindowMeasureView | None = strawberry.field(
        description="GAD-7 response (at least 50% below the episode's first complete GAD-7) "
        "and remission (below 5) on the most recent GAD-7 on days 70-98 after that first "
        "one; null without a GAD-7 in the episode."
    )
    gad7_at_6_months: WindowMeasureView | None = strawberry.field(
        description="The same on days 120-240; null without a GAD-7 in the episode."
    )

    @classmethod
    def build(cls, e: EpisodeOutcome) -> EpisodeOutcomeView:
        o: EpisodeOutcomes = e.outcomes
        assert o.baseline is not None  # episodes without an index score are not reported
        latest = None
        if o.latest is not None:
            latest = DatedScoreView(taken_on=o.latest.day, total=o.latest.total)
        return cls(
            patient_id=e.patient_id,
            care_manager_id=e.care_manager_id,
            episode_number=e.episode_number,
            status=e.status,
            age_at_index=e.age_at_index,
            baseline=DatedScoreView(taken_on=o.baseline.day, total=o.baseline.total),
            latest=latest,
            improvement=_float(o.improvement),
            response=o.response,
            remission=o.remission,
            twelve_weeks=WindowMeasureView.build(o.twelve_weeks),
            drr_e=WindowMeasureView.build(o.drr_e),
            cms159=WindowMeasureView.build(o.cms159),
            gad7_at_12_weeks=None
            if e.gad7_twelve_weeks is None
            else WindowMeasureView.build(e.gad7_twelve_weeks),
            gad7_at_6_months=None
            if e.gad7_six_months is None
            else WindowMeasureView.build(e.gad7_six_months),
        )


@strawberry.type(
    name="MeasureSummary",
    description="A measure over many episodes; rates count closed windows only.",
)
class MeasureSummaryView:
    measure: str = strawberry.field(
        description="The measure in lower case.",
        deprecation_reason="Use measureKind (OutcomeMeasure).",
    )
    measure_kind: OutcomeMeasure = strawberry.field(description="The measure.")
    episodes: int = strawberry.field(description="Episodes with an index score.")
    eligible: int = strawberry.field(description="Episodes in the denominator.")
    in_progress: int = strawberry.field(description="Eligible episodes with an open window.")
    final: int = strawberry.field(description="Eligible episodes whose window has closed.")
    follow_up: int = strawberry.field(description="Final episodes with a score in the window.")
    response: int = strawberry.field(description="Final episodes with a response.")
    remission: int = strawberry.field(description="Final episodes in remission.")

    @classmethod
    def build(cls, s: MeasureSummary) -> MeasureSummaryView:
        return cls(**s.__dict__, measure_kind=OutcomeMeasure(s.measure))


@strawberry.type(
    name="CareManagerOutcomes",
    description="The measures over one care manager's episodes.",
)
class CareManagerOutcomesView:
    care_manager_id: UUID | None = strawberry.field(description="Care manager (null: none).")
    episodes: int = strawberry.field(description="Episodes with an index score.")
    twelve_weeks: MeasureSummaryView = strawberry.field(description="At 12 weeks.")
    drr_e: MeasureSummaryView = strawberry.field(description="NCQA DRR-E.")
    cms159: MeasureSummaryView = strawberry.field(description="CMS159.")
    gad7_at_12_weeks: MeasureSummaryView = strawberry.field(
        description="GAD-7 at 12 weeks, over the episodes with a GAD-7."
    )
    gad7_at_6_months: MeasureSummaryView = strawberry.field(
        description="GAD-7 at 6 months, over the episodes with a GAD-7."
    )

    @classmethod
    def build(cls, c: CareManagerOutcomes) -> CareManagerOutcomesView:
        return cls(
            care_manager_id=c.care_manager_id,
            episodes=c.episodes,
            twelve_weeks=MeasureSummaryView.build(c.twelve_weeks),
            drr_e=MeasureSummaryView.build(c.drr_e),
            cms159=MeasureSummaryView.build(c.cms159),
            gad7_at_12_weeks=MeasureSummaryView.build(c.gad7_twelve_weeks),
            gad7_at_6_months=MeasureSummaryView.build(c.gad7_six_months),
        )


@strawberry.type(description="Outcome measures as of a day, by effective time.")
class OutcomesReport:
    as_of: date = strawberry.field(description="The day measured.")
    by_care_manager: list[CareManagerOutcomesView] = strawberry.field(
        description="Per care manager."
    )
    episodes: list[EpisodeOutcomeView] = strawberry.field(description="Per episode.")


# --- trackers, review queue, panel -------------------------------------------------------


@strawberry.enum(description="A step of a referral or consultation loop.")
class TrackerStepKind(enum.Enum):
    SEND = "send"
    ANSWER = "answer"
    SCHEDULE = "schedule"
    REPORT_BACK = "report_back"
    DRAFT = "draft"
    SIGN = "sign"
    ACKNOWLEDGE = "acknowledge"
    RESPOND = "respond"
    IMPLEMENT = "implement"


strawberry.enum(TrackerActor, name="TrackerActor", description="Whose move a loop's step is.")


@strawberry.type(description="A step still to be taken in a loop, with its due day.")
class TrackerStep:
    name: str = strawberry.field(
        description="The step in lower case.",
        deprecation_reason="Use step (TrackerStepKind).",
    )
    step: TrackerStepKind = strawberry.field(
        description="The step: SEND, ANSWER, SCHEDULE, REPORT_BACK (referral); DRAFT, SIGN, "
        "ACKNOWLEDGE, RESPOND, IMPLEMENT (consultation)."
    )
    actor: str = strawberry.field(
        description="Whose move, in lower case.",
        deprecation_reason="Use actorKind (TrackerActor).",
    )
    actor_kind: TrackerActor = strawberry.field(description="Whose move it is.")
    due_on: date = strawberry.field(description="The last day it is on time.")
    overdue: bool = strawberry.field(description="True after the due day.")
    rule_id: str = strawberry.field(description="The step-limit rule.")
    rule_version: str = strawberry.field(description="Its version.")
    recommendation_id: UUID | None = strawberry.field(description="For a recommendation step.")

    @classmethod
    def build(cls, s: Step) -> TrackerStep:
        return cls(
            name=s.name,
            step=TrackerStepKind(s.name),
            actor=s.actor.value,
            actor_kind=TrackerActor(s.actor),
            due_on=s.due_on,
            overdue=s.overdue,
            rule_id=s.rule_id,
            rule_version=s.rule_version,
            recommendation_id=s.recommendation_id,
        )


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


@strawberry.type(
    name="ReferralTracker",
    description="A referral to an outside service and where its loop stands.",
)
class ReferralTrackerView:
    id: UUID = strawberry.field(description="Referral id.")
    patient_id: UUID = strawberry.field(description="Patient id.")
    service: str = strawberry.field(description="The service referred to.")
    receiving_organisation_id: UUID | None = strawberry.field(description="Receiving party.")
    status: str = strawberry.field(description="requested ... completed, declined, cancelled.")
    requested_at: datetime = strawberry.field(description="Requested.")
    expected_by: date = strawberry.field(description="The loop should be closed by this day.")
    sent_at: datetime | None = strawberry.field(description="Sent.")
    accepted_at: datetime | None = strawberry.field(description="Accepted.")
    appointment_at: datetime | None = strawberry.field(description="Appointment.")
    closed_at: datetime | None = strawberry.field(description="Completed, declined or cancelled.")
    report_back: bool = strawberry.field(description="The report came back (loop closed).")
    overdue: bool = strawberry.field(description="Not closed after its expected-by day.")
    next_step: TrackerStep | None = strawberry.field(description="The next step, if open.")

    @classmethod
    def build(cls, doc: dict[str, Any], overdue: bool, step: Step | None) -> ReferralTrackerView:
        requested = _dt(doc["requested_at"])
        assert requested is not None
        return cls(
            id=UUID(doc["id"]),
            patient_id=UUID(doc["patient_id"]),
            service=doc["service"],
            receiving_organisation_id=_uuid(doc["receiving_organisation_id"]),
            status=doc["status"],
            requested_at=requested,
            expected_by=date.fromisoformat(doc["expected_by"]),
            sent_at=_dt(doc["sent_at"]),
            accepted_at=_dt(doc["accepted_at"]),
            appointment_at=_dt(doc["appointment_at"]),
            closed_at=_dt(doc["closed_at"]),
            report_back=doc["report_back"],
            overdue=overdue or (step is not None and step.overdue),
            next_step=None if step is None else TrackerStep.build(step),
        )


@strawberry.type(
    name="ConsultationRecommendation",
    description="One recommendation of a consultation note and the PCP's answer.",
)
class RecommendationView:
    id: UUID = strawberry.field(description="Recommendation id.")
    text: str | None = strawberry.field(description="The recommendation; null once forgotten.")
    response: str | None = strawberry.field(
        description="The PCP's answer as its lower-case value; null before one.",
        deprecation_reason="Use responseKind (an enum).",
    )
    responded_at: datetime | None = strawberry.field(description="When answered.")
    implemented_at: datetime | None = strawberry.field(description="When put into practice.")

    @strawberry.field(description="The PCP's answer; null before one.")
    def response_kind(self) -> RecommendationResponse | None:
        return member(RecommendationResponse, self.response)


@strawberry.type(
    name="ConsultationTracker",
    description="A psychiatric consultation and where its loop stands.",
)
class ConsultationTrackerView:
    id: UUID = strawberry.field(description="Consultation note id.")
    patient_id: UUID = strawberry.field(description="Patient id.")
    consultant_id: UUID | None = strawberry.field(description="Consultant asked (if named).")
    status: str = strawberry.field(
        description="Where the note stands, as its lower-case value.",
        deprecation_reason="Use noteStatus (an enum).",
    )
    requested_at: datetime = strawberry.field(description="Requested.")
    drafted_at: datetime | None = strawberry.field(description="First draft.")
    signed_at: datetime | None = strawberry.field(description="Signed.")
    acknowledged_at: datetime | None = strawberry.field(description="Acknowledged by the PCP.")
    recommendations: list[RecommendationView] = strawberry.field(description="Recommendations.")
    steps: list[TrackerStep] = strawberry.field(description="Open steps with due days.")
    overdue: bool = strawberry.field(description="True when any open step is overdue.")

    @strawberry.field(description="Where the note stands in the consultation loop.")
    def note_status(self) -> ConsultationNoteStatus:
        return ConsultationNoteStatus(self.status)

    @classmethod
    def build(cls, doc: dict[str, Any], steps: list[Step]) -> ConsultationTrackerView:
        requested = _dt(doc["requested_at"])
        assert requested is not None
        return cls(
            id=UUID(doc["id"]),
            patient_id=UUID(doc["patient_id"]),
            consultant_id=_uuid(doc["consultant_id"]),
            status=doc["status"],
            requested_at=requested,
            drafted_at=_dt(doc["drafted_at"]),
            signed_at=_dt(doc["signed_at"]),
            acknowledged_at=_dt(doc["acknowledged_at"]),
            recommendations=[
                RecommendationView(
                    id=UUID(r["id"]),
                    text=r["text"],
                    response=r["response"],
                    responded_at=_dt(r["responded_at"]),
                    implemented_at=_dt(r["implemented_at"]),
                )
                for r in doc["recommendations"]
            ],
            steps=[TrackerStep.build(s) for s in steps],
            overdue=any(s.overdue for s in steps),
        )


@strawberry.enum(description="Review queue order: safety first, then not improving, then new.")
class ReviewPriorityLevel(enum.Enum):
    SAFETY_RISK = 0
    NOT_IMPROVING = 1
    NEW_ENROLLMENT = 2
    TEAM_REQUEST = 3


@strawberry.type(description="A patient on the review queue.")
class ReviewQueueEntry:
    cursor: str = strawberry.field(description="Opaque position of this entry.")
    priority: ReviewPriorityLevel = strawberry.field(description="Why it is placed here.")
    patient: CaseloadRowView = strawberry.field(description="The patient's registry row.")

    @classmethod
    def build(cls, cursor: str, entry: ReviewEntry) -> ReviewQueueEntry:
        return cls(
            cursor=cursor,
            priority=ReviewPriorityLevel(int(entry.priority)),
            patient=CaseloadRowView.build(entry.row),
        )


@strawberry.type(description="One patient of the review queue and its cursor.")
class ReviewQueueEdge:
    cursor: str = strawberry.field(description="Opaque position of this entry (an `after`).")
    node: ReviewQueueEntry = strawberry.field(description="The patient and why they are here.")


@strawberry.type(description="The psychiatric consultant's queue for the caseload review.")
class ReviewQueue:
    as_of: date = strawberry.field(description="The day evaluated.")
    patients: list[ReviewQueueEntry] = strawberry.field(
        description="Patients, most urgent first.",
        deprecation_reason="Use edges { node } (a Relay-style connection).",
    )
    edges: list[ReviewQueueEdge] = strawberry.field(
        description="The patients of this page, most urgent first."
    )
    max_page_size: int = strawberry.field(
        default=caseload_model.MAX_PAGE_SIZE, description="The largest `first` accepted."
    )
    page_info: RegistryPageInfo = strawberry.field(description="Paging state of `patients`.")
    total_count: int = strawberry.field(description="Patients on the queue, all pages.")
    notes_to_draft: list[ConsultationTrackerView] = strawberry.field(
        description="Requested consultations waiting for a draft; at most 500.",
        deprecation_reason="Capped at 500: use notesToDraftPage (paged with its own first/after).",
    )
    notes_to_sign: list[ConsultationTrackerView] = strawberry.field(
        description="Drafted notes waiting for a signature; at most 500.",
        deprecation_reason="Capped at 500: use notesToSignPage (paged with its own first/after).",
    )
    # How the two note pages are read when selected (services.api.registry.queries).
    to_draft_page_of: strawberry.Private[PageOf[ConsultationTrackerConnection]]
    to_sign_page_of: strawberry.Private[PageOf[ConsultationTrackerConnection]]

    @strawberry.field(
        description="Requested consultations waiting for a draft, oldest request first, a "
        "page at a time (`first` 1 to 200)."
    )
    async def notes_to_draft_page(
        self,
        info: Info[Any, None],
        first: int = trackers_model.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ConsultationTrackerConnection:
        return await self.to_draft_page_of(info, first, after)

    @strawberry.field(
        description="Drafted notes waiting for a signature, oldest request first, a page at "
        "a time (`first` 1 to 200)."
    )
    async def notes_to_sign_page(
        self,
        info: Info[Any, None],
        first: int = trackers_model.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ConsultationTrackerConnection:
        return await self.to_sign_page_of(info, first, after)


@strawberry.type(
    name="PanelPatient",
    description="A patient on the PCP's panel with what is open for the PCP.",
)
class PanelPatientView:
    patient_id: UUID = strawberry.field(description="Patient id.")
    given_name: str | None = strawberry.field(description="Given name; null once forgotten.")
    family_name: str | None = strawberry.field(description="Family name; null once forgotten.")
    mrn: str | None = strawberry.field(description="Medical record number; null once forgotten.")
    status: str | None = strawberry.field(description="Episode status.")
    weeks_in_treatment: int | None = strawberry.field(description="Weeks since enrollment.")
    latest_phq9: ScoreView | None = strawberry.field(description="Latest complete PHQ-9.")
    phq9_percent_change: float | None = strawberry.field(description="Change from baseline.")
    latest_gad7: ScoreView | None = strawberry.field(description="Latest complete GAD-7.")
    safety_risk: bool = strawberry.field(description="A safety alert is active.")
    safety_flags: list[RegistryFlagView] = strawberry.field(description="The safety flag(s).")
    recommendations_awaiting: int = strawberry.field(
        description="Psychiatric recommendations waiting for the PCP."
    )
    open_referrals: int = strawberry.field(description="Referrals not closed.")
    overdue_referrals: int = strawberry.field(description="Open referrals that are overdue.")

    @classmethod
    def build(cls, p: PanelPatient) -> PanelPatientView:
        row = p.row
        return cls(
            patient_id=row.patient_id,
            given_name=row.given_name,
            family_name=row.family_name,
            mrn=row.mrn,
            status=row.status,
            weeks_in_treatment=row.weeks_in_treatment,
            latest_phq9=ScoreView.build(row.latest_phq9),
            phq9_percent_change=_float(row.phq9_percent_change),
            latest_gad7=ScoreView.build(row.latest_gad7),
            safety_risk=p.safety_risk,
            safety_flags=[RegistryFlagView.build(f) for f in row.flags if f.kind == "safety_risk"],
            recommendations_awaiting=p.recommendations_awaiting,
            open_referrals=p.open_referrals,
            overdue_referrals=p.overdue_referrals,
        )


@strawberry.type(description="One panel patient and its cursor.")
class PanelPatientEdge:
    cursor: str = strawberry.field(description="Opaque position of this patient (an `after`).")
    node: PanelPatientView = strawberry.field(description="The patient.")


@strawberry.type(description="A page of the PCP's panel, safety alerts first, then by name.")
class PanelPatientConnection:
    edges: list[PanelPatientEdge] = strawberry.field(description="The patients of this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Patients on the panel, all pages.")
    max_page_size: int = strawberry.field(description="The largest `first` accepted.")


@strawberry.type(description="One referral loop and its cursor.")
class ReferralTrackerEdge:
    cursor: str = strawberry.field(description="Opaque position of this loop (an `after`).")
    node: ReferralTrackerView = strawberry.field(description="The referral loop.")


@strawberry.type(description="A page of referral loops, oldest request first.")
class ReferralTrackerConnection:
    edges: list[ReferralTrackerEdge] = strawberry.field(description="The loops of this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Loops matching the filter, all pages.")
    max_page_size: int = strawberry.field(
        default=trackers_model.TRACKER_MAX_PAGE, description="The largest `first` accepted."
    )


@strawberry.type(description="One consultation loop and its cursor.")
class ConsultationTrackerEdge:
    cursor: str = strawberry.field(description="Opaque position of this loop (an `after`).")
    node: ConsultationTrackerView = strawberry.field(description="The consultation loop.")


@strawberry.type(description="A page of consultation loops, oldest request first.")
class ConsultationTrackerConnection:
    edges: list[ConsultationTrackerEdge] = strawberry.field(description="The loops of this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Loops matching the filter, all pages.")
    max_page_size: int = strawberry.field(
        default=trackers_model.TRACKER_MAX_PAGE, description="The largest `first` accepted."
    )


PageOf = Callable[[Info[Any, None], int, str | None], Awaitable[T]]
"""Reads one page of a list on demand: (info, first, after) to the connection."""


@strawberry.type(description="The PCP's collaborative care panel.")
class Panel:
    as_of: date = strawberry.field(description="The day evaluated.")
    patients: list[PanelPatientView] = strawberry.field(
        description="Safety alerts first; at most 500.",
        deprecation_reason="Capped at 500: use patientPage (paged with panel's first/after).",
    )
    patient_page: PanelPatientConnection = strawberry.field(
        description="The page of the panel asked for with panel's `first` and `after`."
    )
    consultations_awaiting: list[ConsultationTrackerView] = strawberry.field(
        description="Signed notes to acknowledge, recommendations to answer or implement; "
        "at most 500.",
        deprecation_reason="Capped at 500: use consultationsAwaitingPage (paged with its own "
        "first/after).",
    )
    referrals: list[ReferralTrackerView] = strawberry.field(
        description="Open referrals of the panel, oldest first; at most 500.",
        deprecation_reason="Capped at 500: use referralPage (paged with its own first/after).",
    )
    # How the two tracker pages are read when selected (services.api.registry.queries).
    consultations_page_of: strawberry.Private[PageOf[ConsultationTrackerConnection]]
    referrals_page_of: strawberry.Private[PageOf[ReferralTrackerConnection]]

    @strawberry.field(
        description="Signed notes to acknowledge, recommendations to answer or implement, "
        "oldest request first, a page at a time (`first` 1 to 200)."
    )
    async def consultations_awaiting_page(
        self,
        info: Info[Any, None],
        first: int = trackers_model.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ConsultationTrackerConnection:
        return await self.consultations_page_of(info, first, after)

    @strawberry.field(
        description="Open referrals of the panel, oldest request first, a page at a time "
        "(`first` 1 to 200)."
    )
    async def referral_page(
        self,
        info: Info[Any, None],
        first: int = trackers_model.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ReferralTrackerConnection:
        return await self.referrals_page_of(info, first, after)


@strawberry.type(
    name="ProjectionLag",
    description="How far one read model is behind the log.",
)
class ProjectionLagView:
    name: str = strawberry.field(description="Projection name.")
    events_behind: int = strawberry.field(description="Events in the log not applied yet.")
    position: int = strawberry.field(description="Log position of its checkpoint.")
