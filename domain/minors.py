"""Consent for minors: who may give a minor's treatment and data-sharing consent.

Who consents for a minor's behavioral health care and the sharing of their data varies
by US state: many states let adolescents consent to some outpatient mental health or
substance use care from an age between 12 and 16, and the HIPAA Privacy Rule defers to
state law on when a parent is the minor's personal representative (45 CFR
164.502(g)(3)). careteam therefore keeps the age configurable per organisation
(``organisation_consent_rules.guardian_consent_under``) and defaults to guardian consent
under 18 (docs/minors.md).

Rule: when the patient is younger than the organisation's age on the day consent is
given, a ``cocm_treatment`` or ``data_sharing`` consent must be given by a guardian, and
the record says who (their name, kept encrypted with the patient's key) and their
relationship. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from typing import Final

from domain.common import ConsentKind
from domain.errors import NotAllowedError, ValidationError

# Default age below which a guardian consents (policy default; configurable).
DEFAULT_GUARDIAN_CONSENT_UNDER: Final = 18
# The lowest and highest age an organisation may configure.
MIN_CONFIGURABLE_AGE: Final = 12
MAX_CONFIGURABLE_AGE: Final = 21
# Consents a guardian gives for a minor.
GUARDIAN_CONSENT_KINDS: Final = frozenset({ConsentKind.COCM_TREATMENT, ConsentKind.DATA_SHARING})
MAX_GIVER_NAME_LENGTH: Final = 200


class ConsentGiver(enum.StrEnum):
    """Who gave a consent."""

    PATIENT = "patient"
    GUARDIAN = "guardian"


class GuardianRelationship(enum.StrEnum):
    """A guardian's relationship to the patient."""

    PARENT = "parent"
    LEGAL_GUARDIAN = "legal_guardian"
    OTHER_LEGAL_REPRESENTATIVE = "other_legal_representative"


class GuardianConsentRequiredError(NotAllowedError):
    """A minor's treatment or data-sharing consent was given by the minor."""

    code = "GUARDIAN_CONSENT_REQUIRED"


class GuardianDetailsRequiredError(ValidationError):
    """A guardian's consent must name the guardian and their relationship."""

    code = "GUARDIAN_DETAILS_REQUIRED"


class MeasurementNotDueError(NotAllowedError):
    """A reminder for a measure that is not due (used by the patient channel's reminders;
    kept here beside the other issue #19 domain errors)."""

    code = "MEASUREMENT_NOT_DUE"


class ConsentAgeRuleError(ValidationError):
    """An organisation's guardian-consent age is outside the allowed range."""

    code = "CONSENT_AGE_OUT_OF_RANGE"


def check_age_rule(guardian_consent_under: int) -> int:
    """The configured age, checked."""
    if (
        isinstance(guardian_consent_under, bool)
        or not isinstance(guardian_consent_under, int)
        or not MIN_CONFIGURABLE_AGE <= guardian_consent_under <= MAX_CONFIGURABLE_AGE
    ):
        raise ConsentAgeRuleError(
            f"guardian consent age must be between {MIN_CONFIGURABLE_AGE} and "
            f"{MAX_CONFIGURABLE_AGE}",
            field="guardian_consent_under",
        )
    return guardian_consent_under


def needs_guardian(kind: ConsentKind, age: int | None, guardian_consent_under: int) -> bool:
    """Whether a consent of ``kind`` for a patient of ``age`` must come from a guardian
    (an unknown age never does: registration requires a birth date)."""
    return kind in GUARDIAN_CONSENT_KINDS and age is not None and age < guardian_consent_under
