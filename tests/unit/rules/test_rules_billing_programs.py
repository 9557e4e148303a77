"""Billing programs by date of service: CoCM, general BHI, G0323, FQHC/RHC (G0512 to 2025)."""

from __future__ import annotations

from datetime import date

import pytest

from domain.rules import NoRuleInForceError
from domain.rules.billing import (
    APCM_ADD_ON_CODES,
    BillingProgram,
    MonthBilling,
    RequiredElement,
    Shortfall,
    bill_program_month,
    program_rules_for,
)
from tests.unit.rules.test_rules_billing import entry, patient_month

DEC_2025 = date(2025, 12, 1)
JAN_2026 = date(2026, 1, 1)
FEB_2024 = date(2024, 2, 1)


def bill(
    program: BillingProgram,
    minutes: int,
    month: date = DEC_2025,
    *,
    first: bool = True,
    consent: bool = True,
) -> MonthBilling:
    facts = patient_month(
        (entry(minutes, month=month),),
        month=month,
        first=first,
        consent_on="at_start" if consent else None,
    )
    return bill_program_month(facts, program)


def codes(result: MonthBilling) -> list[tuple[str, int]]:
    return [(c.code, c.units) for c in result.codes]


@pytest.mark.parametrize(
    ("first", "minutes", "expected"),
    [
        (True, 69, []),
        (True, 70, [("G0512", 1)]),
        (True, 200, [("G0512", 1)]),  # one unit a month, no add-on
        (False, 59, []),
        (False, 60, [("G0512", 1)]),
    ],
)
def test_fqhc_bills_g0512_from_70_then_60_minutes_through_2025(
    first: bool, minutes: int, expected: list[tuple[str, int]]
) -> None:
    result = bill(BillingProgram.FQHC_RHC, minutes, first=first)
    assert codes(result) == expected
    assert (result.rule_id, result.rule_version) == ("billing.fqhc_rhc", "2018.1")
    assert result.billable is bool(expected)


def test_fqhc_g0512_shortfall_names_the_minutes_still_needed() -> None:
    assert bill(BillingProgram.FQHC_RHC, 59, first=False).shortfalls == (Shortfall("G0512", 1),)
    assert bill(BillingProgram.FQHC_RHC, 60, first=False).shortfalls == ()


@pytest.mark.parametrize(
    ("first", "minutes", "expected"),
    [
        (True, 15, []),
        (True, 16, [("G2214", 1)]),
        (True, 35, [("G2214", 1)]),
        (True, 36, [("99492", 1)]),
        (True, 86, [("99492", 1), ("99494", 1)]),
        (False, 30, [("G2214", 1)]),
        (False, 31, [("99493", 1)]),
        (False, 76, [("99493", 1), ("99494", 1)]),
        (False, 106, [("99493", 1), ("99494", 2)]),
    ],
)
def test_fqhc_bills_the_cocm_codes_from_1_january_2026(
    first: bool, minutes: int, expected: list[tuple[str, int]]
) -> None:
    result = bill(BillingProgram.FQHC_RHC, minutes, JAN_2026, first=first)
    assert codes(result) == expected
    assert (result.rule_id, result.rule_version) == ("billing.fqhc_rhc", "2026.1")
    assert result.program is BillingProgram.FQHC_RHC


def test_the_fqhc_switch_follows_the_date_of_service_not_the_day_asked() -> None:
    assert program_rules_for(BillingProgram.FQHC_RHC, date(2025, 12, 31)) == (
        "billing.fqhc_rhc",
        "2018.1",
    )
    assert program_rules_for(BillingProgram.FQHC_RHC, JAN_2026) == ("billing.fqhc_rhc", "2026.1")
    with pytest.raises(NoRuleInForceError):
        program_rules_for(BillingProgram.FQHC_RHC, date(2017, 12, 31))


@pytest.mark.parametrize(("minutes", "expected"), [(19, []), (20, [("99484", 1)])])
def test_general_bhi_bills_99484_from_20_minutes(
    minutes: int, expected: list[tuple[str, int]]
) -> None:
    result = bill(BillingProgram.GENERAL_BHI, minutes)
    assert codes(result) == expected
    assert (result.rule_id, result.rule_version) == ("billing.cocm", "2021.1")
    assert result.shortfalls == (() if expected else (Shortfall("99484", 1),))
    # General BHI needs neither a psychiatric consultant nor a registry.
    assert RequiredElement.PSYCHIATRIC_CONSULTANT_REVIEW not in result.missing_documentation


@pytest.mark.parametrize(("minutes", "expected"), [(19, []), (20, [("G0323", 1)])])
def test_bhi_directed_by_a_psychologist_or_social_worker_bills_g0323(
    minutes: int, expected: list[tuple[str, int]]
) -> None:
    result = bill(BillingProgram.GENERAL_BHI_CP_CSW, minutes, FEB_2024)
    assert codes(result) == expected
    assert (result.rule_id, result.rule_version) == ("billing.bhi_cp_csw", "2024.1")
    assert result.shortfalls == (() if expected else (Shortfall("G0323", 1),))


def test_g0323_does_not_exist_before_2024() -> None:
    with pytest.raises(NoRuleInForceError):
        program_rules_for(BillingProgram.GENERAL_BHI_CP_CSW, date(2023, 12, 1))
    with pytest.raises(NoRuleInForceError):
        bill(BillingProgram.GENERAL_BHI_CP_CSW, 30, date(2023, 12, 1))


def test_collaborative_care_2026_is_version_2026_1_with_unchanged_thresholds() -> None:
    assert codes(bill(BillingProgram.COLLABORATIVE_CARE, 36, JAN_2026)) == [("99492", 1)]
    assert codes(bill(BillingProgram.COLLABORATIVE_CARE, 35, DEC_2025)) == [("G2214", 1)]
    result = bill(BillingProgram.COLLABORATIVE_CARE, 36, JAN_2026)
    assert (result.rule_id, result.rule_version) == ("billing.cocm", "2026.1")


@pytest.mark.parametrize("program", list(BillingProgram))
def test_apcm_add_ons_are_never_derived_from_minutes(program: BillingProgram) -> None:
    """G0568-G0570 need an APCM base code in the month; careteam records no APCM."""
    for minutes in (0, 20, 36, 90, 300):
        result = bill(program, minutes, JAN_2026)
        assert not {c.code for c in result.codes} & set(APCM_ADD_ON_CODES)


@pytest.mark.parametrize("program", list(BillingProgram))
def test_no_consent_no_code_under_any_program(program: BillingProgram) -> None:
    result = bill(program, 90, JAN_2026, consent=False)
    assert result.codes == () and not result.billable
    assert RequiredElement.CONSENT in result.missing_documentation


def test_cocm_shortfalls_list_each_code_not_reached() -> None:
    result = bill(BillingProgram.COLLABORATIVE_CARE, 10, JAN_2026)
    assert result.shortfalls == (
        Shortfall("G2214", 6),
        Shortfall("99492", 26),
        Shortfall("99494", 76),
    )
    assert bill(BillingProgram.COLLABORATIVE_CARE, 86, JAN_2026).shortfalls == ()
