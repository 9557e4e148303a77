"""Purpose of use: why a caller reads or writes patient data, as an HL7 v3 PurposeOfUse
code (code system 2.16.840.1.113883.5.8), recorded with every event and access row.

A client names it in the ``X-Purpose-Of-Use`` HTTP header, or in the WebSocket
``connection_init`` payload under the same key; without one, its role's default applies.
An unknown code, or one the caller's role may not use, is refused before anything runs.
``ETREAT`` is never taken from a client: careteam records it for reads made under
break-the-glass and for the grant itself. docs/privacy.md has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from services.auth import Role

HEADER = "X-Purpose-Of-Use"


class PurposeOfUse(StrEnum):
    TREAT = "TREAT"  # treatment
    ETREAT = "ETREAT"  # emergency treatment (break-the-glass; set by the server only)
    COC = "COC"  # coordination of care
    HPAYMT = "HPAYMT"  # healthcare payment
    HOPERAT = "HOPERAT"  # healthcare operations
    HLEGAL = "HLEGAL"  # legal
    HRESCH = "HRESCH"  # healthcare research
    PUBHLTH = "PUBHLTH"  # public health


_CLINICAL = frozenset(
    {PurposeOfUse.TREAT, PurposeOfUse.COC, PurposeOfUse.HPAYMT, PurposeOfUse.HOPERAT}
)

# What each role may name, its default first. No role may name ETREAT, HRESCH or PUBHLTH:
# careteam serves no research or public-health reporting use yet.
PERMITTED: Mapping[Role, tuple[PurposeOfUse, ...]] = {
    Role.PCP: (PurposeOfUse.TREAT, *sorted(_CLINICAL - {PurposeOfUse.TREAT})),
    Role.CARE_MANAGER: (PurposeOfUse.TREAT, *sorted(_CLINICAL - {PurposeOfUse.TREAT})),
    Role.PSYCHIATRIST: (PurposeOfUse.TREAT, *sorted(_CLINICAL - {PurposeOfUse.TREAT})),
    Role.COMPLIANCE: (PurposeOfUse.HOPERAT, PurposeOfUse.HLEGAL),
    Role.ADMIN: (PurposeOfUse.HOPERAT,),
    Role.PARTNER: (PurposeOfUse.COC, PurposeOfUse.HPAYMT, PurposeOfUse.HOPERAT),
    # The wider team (issue 18) treats and coordinates; a caregiver coordinates only.
    Role.BEHAVIORAL_HEALTH_CONSULTANT: (PurposeOfUse.TREAT, PurposeOfUse.COC),
    Role.SOCIAL_WORKER: (PurposeOfUse.TREAT, PurposeOfUse.COC),
    Role.THERAPIST: (PurposeOfUse.TREAT, PurposeOfUse.COC),
    Role.PEER_SPECIALIST: (PurposeOfUse.TREAT, PurposeOfUse.COC),
    Role.COMMUNITY_HEALTH_WORKER: (PurposeOfUse.TREAT, PurposeOfUse.COC),
    Role.CAREGIVER: (PurposeOfUse.COC,),
}

# Values stored before purpose codes were HL7 (events and access rows are immutable and
# hash-chained, so they are mapped when shown rather than rewritten).
LEGACY: Mapping[str, PurposeOfUse] = {
    "TREATMENT": PurposeOfUse.TREAT,
    "EMERGENCY": PurposeOfUse.ETREAT,
    "PAYMENT": PurposeOfUse.HPAYMT,
    "OPERATIONS": PurposeOfUse.HOPERAT,
    "AUDIT": PurposeOfUse.HOPERAT,
}


class PurposeOfUseError(Exception):
    """The purpose named is unknown, or not one the caller's role may use. The message
    names the header and the codes allowed, never the value sent."""

    def __init__(self, code: str, role: Role) -> None:
        allowed = ", ".join(p.value for p in PERMITTED[role])
        what = "is not a known purpose of use" if code == UNKNOWN else "is not permitted"
        super().__init__(f"{HEADER} {what} for role {role.value}; use one of: {allowed}")
        self.code = code
        self.role = role
        self.message = str(self)
        self.allowed = [p.value for p in PERMITTED[role]]


UNKNOWN = "UNKNOWN_PURPOSE_OF_USE"
NOT_PERMITTED = "PURPOSE_OF_USE_NOT_PERMITTED"


def default_purpose(role: Role) -> PurposeOfUse:
    return PERMITTED[role][0]


def resolve_purpose(raw: object, role: Role) -> PurposeOfUse:
    """The purpose a request runs under: the named one if the role may use it, the role's
    default when none is named; raises PurposeOfUseError otherwise."""
    if raw is None:
        return default_purpose(role)
    if not isinstance(raw, str):
        raise PurposeOfUseError(UNKNOWN, role)
    try:
        purpose = PurposeOfUse(raw.strip().upper())
    except ValueError:
        raise PurposeOfUseError(UNKNOWN, role) from None
    if purpose not in PERMITTED[role]:
        raise PurposeOfUseError(NOT_PERMITTED, role)
    return purpose


def shown(stored: str | None) -> str | None:
    """A stored purpose as an HL7 code (older rows say TREATMENT, EMERGENCY, ...)."""
    if stored is None:
        return None
    legacy = LEGACY.get(stored)
    return legacy.value if legacy is not None else stored
