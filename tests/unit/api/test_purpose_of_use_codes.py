"""Purpose-of-use codes: role defaults, what each role may name, and older stored values."""

from __future__ import annotations

import pytest

from services.api.purpose import (
    NOT_PERMITTED,
    PERMITTED,
    UNKNOWN,
    PurposeOfUse,
    PurposeOfUseError,
    resolve_purpose,
    shown,
)
from services.auth import Role


@pytest.mark.parametrize(
    ("role", "default"),
    [
        (Role.PCP, "TREAT"),
        (Role.CARE_MANAGER, "TREAT"),
        (Role.PSYCHIATRIST, "TREAT"),
        (Role.COMPLIANCE, "HOPERAT"),
        (Role.ADMIN, "HOPERAT"),
        (Role.PARTNER, "COC"),
    ],
)
def test_each_role_runs_under_its_default_when_no_purpose_is_named(
    role: Role, default: str
) -> None:
    """No header means the role's documented default."""
    assert resolve_purpose(None, role).value == default


@pytest.mark.parametrize("raw", ["MARKETING", "BOGUS", "", "TREATMENT", "EMERGENCY", 7])
def test_an_unknown_value_is_refused_naming_the_header_without_echoing_it(raw: object) -> None:
    """Anything not an HL7 code is UNKNOWN_PURPOSE_OF_USE, and the message names the header."""
    with pytest.raises(PurposeOfUseError) as refused:
        resolve_purpose(raw, Role.CARE_MANAGER)
    assert refused.value.code == UNKNOWN
    assert "X-Purpose-Of-Use" in refused.value.message
    assert not (isinstance(raw, str) and raw and raw in refused.value.message)


def test_no_role_may_name_etreat_research_or_public_health() -> None:
    """ETREAT is the server's to record; HRESCH and PUBHLTH have no use yet."""
    for role in Role:
        for code in ("ETREAT", "HRESCH", "PUBHLTH"):
            with pytest.raises(PurposeOfUseError) as refused:
                resolve_purpose(code, role)
            assert refused.value.code == NOT_PERMITTED
        assert PurposeOfUse.ETREAT not in PERMITTED[role]


def test_a_named_code_is_matched_case_insensitively() -> None:
    """A permitted code in any case and with surrounding spaces is accepted."""
    assert resolve_purpose(" coc ", Role.PCP) is PurposeOfUse.COC
    assert resolve_purpose("hlegal", Role.COMPLIANCE) is PurposeOfUse.HLEGAL


def test_older_stored_values_are_shown_as_hl7_codes_and_codes_as_they_are() -> None:
    """TREATMENT, EMERGENCY, PAYMENT, OPERATIONS and AUDIT map to codes; others pass."""
    assert [shown(v) for v in ("TREATMENT", "EMERGENCY", "PAYMENT", "OPERATIONS", "AUDIT")] == [
        "TREAT",
        "ETREAT",
        "HPAYMT",
        "HOPERAT",
        "HOPERAT",
    ]
    assert shown("COC") == "COC"
    assert shown(None) is None
