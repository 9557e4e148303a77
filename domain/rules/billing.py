"""Billing codes for one patient-month of collaborative care (US, time-based).

Source: docs/clinical-rules.md, "Billing (US, time-based, per calendar month)": CMS Physician
Fee Schedule final rules (CY2017: G0502-G0504, G0507; CY2018: CPT 99492-99494, 99484;
CY2021: G2214), CMS's Behavioral Health Integration booklet and payer CoCM policies.

Rule versions (``RULE_BOOK``), chosen by the first day of the billed month:
    2017.1  from 2017-01-01  G0502 / G0503 / G0504 and G0507 (general BHI)
    2018.1  from 2018-01-01  CPT 99492 / 99493 / 99494 and 99484
    2021.1  from 2021-01-01  adds G2214 (the month's first 30 minutes when the base
                             threshold is not met)
    2026.1  from 2026-01-01  CY2026 PFS final rule (CMS-1832-F): CoCM codes and thresholds
                             unchanged; adds G0568-G0570 (behavioral health add-ons to
                             APCM base codes G0556-G0558, no time requirement), which
                             careteam never derives (see ``APCM_ADD_ON_CODES``)

Billing programs (``BillingProgram``, chosen by the organisation, by date of service;
docs/billing-programs.md). Each program other than CoCM has its own rule book:
    billing.bhi_cp_csw  2024.1 from 2024-01-01  G0323 (general BHI directed by a clinical
                        psychologist or clinical social worker; CY2024 PFS final rule,
                        CMS-1784-F), from 20 minutes, like 99484
    billing.fqhc_rhc    2018.1 from 2018-01-01  G0512 (FQHC/RHC psychiatric CoCM; CY2018
                        PFS final rule and CMS FQHC/RHC care management guidance): one
                        unit per month from 70 minutes in the first month, 60 in later
                        months (the code's stated minimum, no midpoint rule)
                        2026.1 from 2026-01-01  G0512 discontinued (CMS-1832-F; NARHC CY26
                        summary; AHRQ Academy 2026 news): FQHCs and RHCs bill 99492,
                        99493, 99494 and G2214 under billing.cocm with the midpoint rule

Thresholds (the midpoint rule: a time-based unit is billable once more than half of
its typical time has passed, so 70 typical -> from 36, 60 -> from 31, 30 -> from 16):
    first month   base from 36 (70 typical); add-on from 86 (70 + 16), each further
                  unit every 30 minutes more (86 -> 1 unit, 116 -> 2, 146 -> 3)
    later months  base from 31 (60 typical); add-on from 76 (60 + 16), then 106, 136 ...
    G2214         from 16 when the base threshold is not met (first month 16-35,
                  later month 16-30); never with the base code or the add-on
    99484         general BHI, from 20; never in a month billed as CoCM

Usage: ``bill_month(PatientMonth(...))`` returns a ``MonthBilling``; pass ``rules=`` to
override the version (tests, or a payer that differs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Final, NamedTuple

from domain.common import ActivityType
from domain.rules import RuleBook, calendar_day

__all__ = [
    "APCM_ADD_ON_CODES",
    "BHI_DIRECTED_BOOK",
    "FQHC_BOOK",
    "RULE_BOOK",
    "RULE_ID",
    "ActivityType",
    "BillingMode",
    "BillingProgram",
    "BillingRules",
    "CodeUnits",
    "EntryOutsideMonthError",
    "MinuteEntry",
    "MonthBeforeEpisodeError",
    "MonthBilling",
    "MonthNotFirstDayError",
    "NegativeMinutesError",
    "PatientMonth",
    "RequiredElement",
    "Shortfall",
    "bill_month",
    "bill_program_month",
    "month_end",
    "program_rules_for",
    "rules_for",
]

RULE_ID = "billing.cocm"


class BillingMode(StrEnum):
    """How the practice bills this patient in this month.

    Choice: a month is either a CoCM month or a general-BHI month, never both, so
    99484 can never land beside a CoCM code (docs/clinical-rules.md: "never in the same
    month"). The caller decides the mode per patient-month (normally: COCM while the
    patient is enrolled in collaborative care; GENERAL_BHI for a practice or month
    that bills 99484 instead); the rules never mix the two.
    """

    COCM = "cocm"
    GENERAL_BHI = "general_bhi"


# ActivityType is the domain's own enumeration (domain/common.py), re-exported here.
class BillingProgram(StrEnum):
    """The billing program an organisation runs from a date (docs/billing-programs.md)."""

    COLLABORATIVE_CARE = "collaborative_care"
    GENERAL_BHI = "general_bhi"
    GENERAL_BHI_CP_CSW = "general_bhi_cp_csw"
    FQHC_RHC = "fqhc_rhc"


class RequiredElement(StrEnum):
    """Documentation a billed month needs; absent ones are listed, not silently fatal."""

    CONSENT = "consent"
    INITIAL_ASSESSMENT = "initial_assessment"
    CARE_PLAN = "care_plan"
    PSYCHIATRIC_CONSULTANT_REVIEW = "psychiatric_consultant_review"
    REGISTRY_TRACKING = "registry_tracking"
    # The billing practitioner's initiating visit (an E/M visit, AWV or IPPE) within the
    # year before the episode started, or since (CMS booklet "Behavioral Health
    # Integration Services", MLN909432; CY2017 PFS final rule, CMS-1654-F).
    INITIATING_VISIT = "initiating_visit"


class CodeUnits(NamedTuple):
    """One billing code with its units; equal to the plain tuple ``(code, units)``."""

    code: str
    units: int


@dataclass(frozen=True)
class BillingRules:
    """One version of the billing thresholds, in force from ``effective_from``."""

    version: str
    effective_from: date
    source: str
    first_month_code: str
    first_month_from: int
    later_month_code: str
    later_month_from: int
    add_on_code: str
    first_month_add_on_from: int
    later_month_add_on_from: int
    add_on_step: int
    # None before the code existed (G2214 is effective 2021-01-01).
    partial_month_code: str | None
    partial_month_from: int
    bhi_code: str
    bhi_from: int
    required_cocm: tuple[RequiredElement, ...]
    required_bhi: tuple[RequiredElement, ...]


# Consent is required for every code; the other elements follow each service's CMS
# definition. Choice: general BHI (99484) needs the initial assessment and a care
# plan but no psychiatric consultant and no registry, because CMS's 99484 elements do
# not include them; listing them for a BHI month would send the team after paperwork
# the service does not need.
_REQUIRED_COCM = (
    RequiredElement.CONSENT,
    RequiredElement.INITIAL_ASSESSMENT,
    RequiredElement.CARE_PLAN,
    RequiredElement.PSYCHIATRIC_CONSULTANT_REVIEW,
    RequiredElement.REGISTRY_TRACKING,
    RequiredElement.INITIATING_VISIT,
)
_REQUIRED_BHI = (
    RequiredElement.CONSENT,
    RequiredElement.INITIAL_ASSESSMENT,
    RequiredElement.CARE_PLAN,
    RequiredElement.INITIATING_VISIT,
)
# How long before the episode's start an initiating visit still initiates it: CMS
# requires one for new patients and for patients the billing practitioner has not seen
# within a year before BHI services begin (MLN909432). Choice: a recorded visit counts
# when it falls within 365 days before the episode's start day or any day since, up to
# the month's last day.
INITIATING_VISIT_LOOKBACK_DAYS: Final = 365

RULES_2017 = BillingRules(
    version="2017.1",
    effective_from=date(2017, 1, 1),
    source="CMS PFS CY2017 final rule: G0502, G0503, G0504 (CoCM), G0507 (general BHI)",
    first_month_code="G0502",
    first_month_from=36,
    later_month_code="G0503",
    later_month_from=31,
    add_on_code="G0504",
    first_month_add_on_from=86,
    later_month_add_on_from=76,
    add_on_step=30,
    partial_month_code=None,
    partial_month_from=16,
    bhi_code="G0507",
    bhi_from=20,
    required_cocm=_REQUIRED_COCM,
    required_bhi=_REQUIRED_BHI,
)

RULES_2018 = BillingRules(
    version="2018.1",
    effective_from=date(2018, 1, 1),
    source="CMS PFS CY2018 final rule: CPT 99492, 99493, 99494 (CoCM), 99484 (general BHI)",
    first_month_code="99492",
    first_month_from=36,
    later_month_code="99493",
    later_month_from=31,
    add_on_code="99494",
    first_month_add_on_from=86,
    later_month_add_on_from=76,
    add_on_step=30,
    partial_month_code=None,
    partial_month_from=16,
    bhi_code="99484",
    bhi_from=20,
    required_cocm=_REQUIRED_COCM,
    required_bhi=_REQUIRED_BHI,
)

RULES_2021 = BillingRules(
    version="2021.1",
    effective_from=date(2021, 1, 1),
    source="CMS PFS CY2021 final rule: adds G2214 (first 30 minutes of CoCM in a month)",
    first_month_code="99492",
    first_month_from=36,
    later_month_code="99493",
    later_month_from=31,
    add_on_code="99494",
    first_month_add_on_from=86,
    later_month_add_on_from=76,
    add_on_step=30,
    partial_month_code="G2214",
    partial_month_from=16,
    bhi_code="99484",
    bhi_from=20,
    required_cocm=_REQUIRED_COCM,
    required_bhi=_REQUIRED_BHI,
)

RULES_2026 = replace(
    RULES_2021,
    version="2026.1",
    effective_from=date(2026, 1, 1),
    source="CMS PFS CY2026 final rule (CMS-1832-F): CoCM codes unchanged; FQHC/RHC bill them "
    "too; G0568-G0570 added as APCM add-ons",
)

RULE_BOOK: RuleBook[BillingRules] = RuleBook(
    RULE_ID, (RULES_2017, RULES_2018, RULES_2021, RULES_2026)
)


def rules_for(month: date) -> BillingRules:
    """Return the billing rules in force for the month containing ``month``.

    Raises ``NoRuleInForceError`` for a month before the first version (2017-01).
    """
    return RULE_BOOK.in_force(calendar_day(month).replace(day=1))


class MonthNotFirstDayError(ValueError):
    """The billed month must be given as its first day."""

    def __init__(self) -> None:
        super().__init__("the billed month must be given as the first day of the month")


class EntryOutsideMonthError(ValueError):
    """A minute entry is dated outside the billed month."""

    def __init__(self, index: int) -> None:
        super().__init__(f"minute entry {index} is dated outside the billed month")
        self.index = index


class NegativeMinutesError(ValueError):
    """A minute entry has a negative duration."""

    def __init__(self, index: int) -> None:
        super().__init__(f"minute entry {index} has a negative duration")
        self.index = index


class MonthBeforeEpisodeError(ValueError):
    """The billed month lies before the month in which the episode's services started."""

    def __init__(self) -> None:
        super().__init__("the billed month lies before the episode's first month")


@dataclass(frozen=True)
class MinuteEntry:
    """Care manager time for the patient on one day.

    ``inpatient`` says the patient was an inpatient at the time: such time never
    counts (docs/clinical-rules.md).
    """

    on: date
    minutes: int
    activity: ActivityType
    inpatient: bool = False


@dataclass(frozen=True)
class PatientMonth:
    """The facts of one patient-month that billing needs, as of the end of the month.

    ``episode_started_on`` is the day CoCM services started for this episode. Choice:
    the *first month* (99492) is the calendar month containing that day, because CMS
    defines the initial code as the first calendar month of care management services
    in an episode; a new episode (after discharge, or six months without services)
    passes its own start day and so has its own first month. Normally the start day is
    the enrollment day, the enrollment contact being the episode's first logged service.

    ``consent_on`` is the effective day consent was obtained and documented (verbal or
    written, cost sharing explained), or ``None``. The four booleans say whether the
    other required elements are documented.
    """

    month: date
    episode_started_on: date
    entries: tuple[MinuteEntry, ...]
    consent_on: date | None
    initial_assessment_documented: bool
    care_plan_documented: bool
    psychiatric_review_documented: bool
    registry_tracking_documented: bool
    mode: BillingMode = BillingMode.COCM
    # A recorded initiating visit in the look-back window (INITIATING_VISIT_LOOKBACK_DAYS).
    initiating_visit_documented: bool = False


@dataclass(frozen=True)
class Shortfall:
    """What a code still lacks this month: ``minutes`` more counted minutes."""

    code: str
    minutes: int


@dataclass(frozen=True)
class MonthBilling:
    """What one patient-month bills, and why.

    ``codes`` are the codes the counted minutes support, e.g.
    ``(("99492", 1), ("99494", 2))``. ``billable`` is true when consent is in place
    and there is at least one code. Missing elements other than consent are listed
    in ``missing_documentation`` without removing a code; ``ready_to_submit`` is
    true only when nothing is missing.
    """

    month: date
    rule_id: str
    rule_version: str
    mode: BillingMode
    first_month: bool
    logged_minutes: int
    inpatient_minutes: int
    minutes_before_consent: int
    counted_minutes: int
    codes: tuple[CodeUnits, ...]
    missing_documentation: tuple[RequiredElement, ...]
    billable: bool
    program: BillingProgram | None = None
    shortfalls: tuple[Shortfall, ...] = ()

    @property
    def ready_to_submit(self) -> bool:
        """Billable and with every required element documented."""
        return self.billable and not self.missing_documentation


def month_end(month: date) -> date:
    """Return the last day of the month containing ``month``."""
    first = calendar_day(month).replace(day=1)
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def bill_month(facts: PatientMonth, rules: BillingRules | None = None) -> MonthBilling:
    """Derive the codes, counted minutes and missing documentation of a patient-month."""
    month = calendar_day(facts.month)
    if month.day != 1:
        raise MonthNotFirstDayError()
    episode_month = calendar_day(facts.episode_started_on).replace(day=1)
    if month < episode_month:
        raise MonthBeforeEpisodeError()
    rules = rules if rules is not None else rules_for(month)
    last_day = month_end(month)
    consent_on = calendar_day(facts.consent_on) if facts.consent_on is not None else None
    first_month = month == episode_month

    logged = inpatient = before_consent = 0
    for index, entry in enumerate(facts.entries):
        on = calendar_day(entry.on)
        if not month <= on <= last_day:
            raise EntryOutsideMonthError(index)
        if entry.minutes < 0:
            raise NegativeMinutesError(index)
        logged += entry.minutes
        # Inpatient is checked first, so a minute excluded for both reasons is
        # reported once, as inpatient (it would not count even with consent).
        #
        # Choice: consent must precede the service, so time logged before the
        # consent day does not count even if consent comes later in the month; the
        # consent day itself counts, because entries carry a day, not an hour, and
        # consent is usually obtained in that day's contact. Consent dated after the
        # month's last day means no consent for this month. Hence no consent -> no
        # counted minutes -> no codes. We do not list "would be" codes: time before
        # consent cannot be billed even once consent is documented, and a code on the
        # row would invite a claim; the time shows in ``minutes_before_consent``
        # instead. If consent was obtained but recorded late, the consent event
        # carries its effective day and the month is re-derived.
        if entry.inpatient:
            inpatient += entry.minutes
        elif consent_on is None or on < consent_on:
            before_consent += entry.minutes
    counted = logged - inpatient - before_consent

    if facts.mode is BillingMode.COCM:
        codes = _cocm_codes(counted, first_month, rules)
        required = rules.required_cocm
    else:
        codes = _bhi_codes(counted, rules)
        required = rules.required_bhi

    consented = consent_on is not None and consent_on <= last_day
    documented = {
        RequiredElement.CONSENT: consented,
        RequiredElement.INITIAL_ASSESSMENT: facts.initial_assessment_documented,
        RequiredElement.CARE_PLAN: facts.care_plan_documented,
        RequiredElement.PSYCHIATRIC_CONSULTANT_REVIEW: facts.psychiatric_review_documented,
        RequiredElement.REGISTRY_TRACKING: facts.registry_tracking_documented,
        RequiredElement.INITIATING_VISIT: facts.initiating_visit_documented,
    }
    missing = tuple(element for element in required if not documented[element])

    return MonthBilling(
        month=month,
        rule_id=RULE_ID,
        rule_version=rules.version,
        mode=facts.mode,
        first_month=first_month,
        logged_minutes=logged,
        inpatient_minutes=inpatient,
        minutes_before_consent=before_consent,
        counted_minutes=counted,
        codes=codes,
        missing_documentation=missing,
        billable=consented and bool(codes),
    )


def _cocm_codes(minutes: int, first_month: bool, rules: BillingRules) -> tuple[CodeUnits, ...]:
    """Base code (at most one, first-month or later-month, never both), add-on, or G2214."""
    if first_month:
        base_code, base_from = rules.first_month_code, rules.first_month_from
        add_on_from = rules.first_month_add_on_from
    else:
        base_code, base_from = rules.later_month_code, rules.later_month_from
        add_on_from = rules.later_month_add_on_from
    if minutes >= base_from:
        codes = [CodeUnits(base_code, 1)]
        if minutes >= add_on_from:
            units = (minutes - add_on_from) // rules.add_on_step + 1
            codes.append(CodeUnits(rules.add_on_code, units))
        return tuple(codes)
    if rules.partial_month_code is not None and minutes >= rules.partial_month_from:
        return (CodeUnits(rules.partial_month_code, 1),)
    return ()


def _bhi_codes(minutes: int, rules: BillingRules) -> tuple[CodeUnits, ...]:
    """General BHI: one unit from the threshold; no add-on exists for it."""
    if minutes >= rules.bhi_from:
        return (CodeUnits(rules.bhi_code, 1),)
    return ()


# --- billing programs (docs/billing-programs.md) ----------------------------------------

# G0568-G0570 are billed only in a month in which an APCM base code (G0556-G0558) is
# billed, and have no time requirement (CMS-1832-F). Choice: careteam records no APCM
# enrolment, so these codes are never derived from minutes; the billing row says so
# (``apcm_add_ons_possible`` is false) instead of guessing.
APCM_ADD_ON_CODES = ("G0568", "G0569", "G0570")
APCM_BASE_CODES = ("G0556", "G0557", "G0558")


@dataclass(frozen=True)
class ProgramRules:
    """One version of a program's own code: ``code`` None means "bill as CoCM"."""

    version: str
    effective_from: date
    source: str
    code: str | None
    first_month_from: int
    later_month_from: int


BHI_DIRECTED_BOOK: RuleBook[ProgramRules] = RuleBook(
    "billing.bhi_cp_csw",
    (
        ProgramRules(
            version="2024.1",
            effective_from=date(2024, 1, 1),
            source="CMS PFS CY2024 final rule (CMS-1784-F): G0323, general BHI directed by a "
            "clinical psychologist or clinical social worker, 20 minutes a month",
            code="G0323",
            first_month_from=20,
            later_month_from=20,
        ),
    ),
)

FQHC_BOOK: RuleBook[ProgramRules] = RuleBook(
    "billing.fqhc_rhc",
    (
        ProgramRules(
            version="2018.1",
            effective_from=date(2018, 1, 1),
            source="CMS PFS CY2018 final rule: G0512, FQHC/RHC psychiatric CoCM, at least 70 "
            "minutes in the first month and 60 in later months",
            code="G0512",
            first_month_from=70,
            later_month_from=60,
        ),
        ProgramRules(
            version="2026.1",
            effective_from=date(2026, 1, 1),
            source="CMS PFS CY2026 final rule (CMS-1832-F): G0512 discontinued; FQHCs and RHCs "
            "bill 99492, 99493, 99494 and G2214",
            code=None,
            first_month_from=0,
            later_month_from=0,
        ),
    ),
)


def program_rules_for(program: BillingProgram, month: date) -> tuple[str, str]:
    """The (rule id, version) that decides ``program`` in the month of ``month``.

    Raises ``NoRuleInForceError`` when the program has no rule for that date of service
    (e.g. FQHC/RHC before 2018, G0323 before 2024): the program is unknown for that date.
    """
    first = calendar_day(month).replace(day=1)
    if program is BillingProgram.FQHC_RHC:
        return FQHC_BOOK.rule_id, FQHC_BOOK.in_force(first).version
    if program is BillingProgram.GENERAL_BHI_CP_CSW:
        return BHI_DIRECTED_BOOK.rule_id, BHI_DIRECTED_BOOK.in_force(first).version
    return RULE_ID, rules_for(first).version


def _shortfalls(billed: MonthBilling, rules: BillingRules) -> tuple[Shortfall, ...]:
    """CoCM or BHI: the minutes each next code still needs."""
    counted = billed.counted_minutes
    if billed.mode is BillingMode.GENERAL_BHI:
        need = [(rules.bhi_code, rules.bhi_from)]
    elif billed.first_month:
        need = [(rules.first_month_code, rules.first_month_from)]
        need.append((rules.add_on_code, rules.first_month_add_on_from))
    else:
        need = [(rules.later_month_code, rules.later_month_from)]
        need.append((rules.add_on_code, rules.later_month_add_on_from))
    if rules.partial_month_code is not None and billed.mode is BillingMode.COCM:
        need.insert(0, (rules.partial_month_code, rules.partial_month_from))
    return tuple(Shortfall(code, start - counted) for code, start in need if counted < start)


def bill_program_month(facts: PatientMonth, program: BillingProgram) -> MonthBilling:
    """Bill a patient-month under the organisation's program in force for that month.

    The minutes that count (consent, inpatient) are decided by ``bill_month`` for every
    program; the program decides the codes and the rule (id, version) reported.
    """
    month = calendar_day(facts.month)
    if program is BillingProgram.COLLABORATIVE_CARE:
        mode = BillingMode.COCM
    elif program is BillingProgram.FQHC_RHC:
        fqhc = FQHC_BOOK.in_force(month.replace(day=1))
        if fqhc.code is not None:
            return _bill_fqhc(facts, fqhc)
        billed = bill_month(replace(facts, mode=BillingMode.COCM))
        return replace(
            billed,
            rule_id=FQHC_BOOK.rule_id,
            rule_version=fqhc.version,
            program=program,
            shortfalls=_shortfalls(billed, rules_for(month)),
        )
    else:
        mode = BillingMode.GENERAL_BHI
    billed = bill_month(replace(facts, mode=mode))
    shortfalls = _shortfalls(billed, rules_for(month))
    if program is BillingProgram.GENERAL_BHI_CP_CSW:
        directed = BHI_DIRECTED_BOOK.in_force(month.replace(day=1))
        codes = tuple(CodeUnits(directed.code or "", c.units) for c in billed.codes)
        return replace(
            billed,
            codes=codes,
            rule_id=BHI_DIRECTED_BOOK.rule_id,
            rule_version=directed.version,
            program=program,
            shortfalls=tuple(replace(s, code=directed.code or "") for s in shortfalls),
        )
    return replace(billed, program=program, shortfalls=shortfalls)


def _bill_fqhc(facts: PatientMonth, fqhc: ProgramRules) -> MonthBilling:
    billed = bill_month(replace(facts, mode=BillingMode.COCM))
    start = fqhc.first_month_from if billed.first_month else fqhc.later_month_from
    counted = billed.counted_minutes
    codes = (CodeUnits(fqhc.code or "", 1),) if counted >= start else ()
    consented = RequiredElement.CONSENT not in billed.missing_documentation
    return replace(
        billed,
        rule_id=FQHC_BOOK.rule_id,
        rule_version=fqhc.version,
        codes=codes,
        billable=consented and bool(codes),
        program=BillingProgram.FQHC_RHC,
        shortfalls=() if counted >= start else (Shortfall(fqhc.code or "", start - counted),),
    )
