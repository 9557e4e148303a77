"""One error contract, and closed sets as enums.

Every typed error's `field` is the GraphQL input path in camelCase; every type named
*Error implements the Error interface; and no current (non-deprecated) String field or
argument describes a closed set of values (see LISTS_VALUES for the heuristic), so a new
lower-case String with its allowed values in the description fails CI: serve an enum.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import uuid4

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
)
from graphql import build_schema as parse_sdl

from domain import errors as domain_errors
from domain.common import Problems, check_occurred_at, require_text
from services.api.errors import (
    InvalidTransitionError,
    NotAllowedError,
    NotFoundError,
    ValidationError,
    all_problems,
    at_most_one,
    camel_path,
    exactly_one,
    from_domain_error,
)
from services.api.schema import schema_sdl


@pytest.mark.parametrize(
    ("domain", "api"),
    [
        ("occurred_at", "occurredAt"),
        ("birth_date", "birthDate"),
        ("warning_signs", "warningSigns"),
        ("report_back_summary", "reportBackSummary"),
        ("occurredAt", "occurredAt"),
        ("minutes", "minutes"),
        ("inputs.rule_id", "inputs.ruleId"),
        ("answers[]", "answers[]"),
        (None, None),
    ],
)
def test_camel_path_spells_input_paths_as_graphql_does(domain: str | None, api: str | None) -> None:
    assert camel_path(domain) == api


def test_a_domain_validation_error_names_the_field_in_camel_case() -> None:
    """The domain says occurred_at; the client sent occurredAt and reads occurredAt back."""
    with pytest.raises(domain_errors.DomainError) as raised:
        check_occurred_at(datetime(2999, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert raised.value.field == "occurred_at"  # the domain keeps its own spelling
    error = from_domain_error(raised.value)
    assert isinstance(error, ValidationError)
    assert error.field == "occurredAt"

    with pytest.raises(domain_errors.DomainError) as blank:
        require_text(" ", "report_back_summary")
    assert from_domain_error(blank.value).field == "reportBackSummary"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (domain_errors.InvalidTransitionError("x", field="goal_id"), InvalidTransitionError),
        (domain_errors.NotFoundError("x", field="goal_id"), NotFoundError),
        (domain_errors.NotAllowedError("x", field="goal_id"), NotAllowedError),
        (domain_errors.ValidationError("x", field="goal_id"), ValidationError),
    ],
)
def test_every_category_carries_the_camel_case_field(
    exc: domain_errors.DomainError, kind: type
) -> None:
    error = from_domain_error(exc)
    assert isinstance(error, kind)
    assert error.field == "goalId"
    assert from_domain_error(type(exc)("x")).field is None


def test_an_enum_field_and_its_deprecated_string_twin_are_exclusive() -> None:
    """Exactly one (or at most one, for an optional field), else a typed error naming the
    enum field: the one a client should send."""
    assert exactly_one("activityKind", "contact", "activity", None) is None
    assert exactly_one("activityKind", None, "activity", "contact") is None
    neither = exactly_one("activityKind", None, "activity", None)
    both = exactly_one("activityKind", "contact", "activity", "contact")
    assert neither is not None and (neither.code, neither.field) == (
        "FIELD_REQUIRED",
        "activityKind",
    )
    assert both is not None and (both.code, both.field) == ("CONFLICTING_FIELDS", "activityKind")
    assert at_most_one("modalityKind", None, "modality", None) is None
    clash = at_most_one("modalityKind", "phone", "modality", "phone")
    assert clash is not None and clash.field == "modalityKind"


def test_every_field_problem_is_listed_in_camel_case_with_the_first_on_top() -> None:
    """issue 13: one ValidationError lists every problem; code/message/field stay those of
    the first (compatible with clients that read only them)."""
    problems = Problems()
    problems.check(require_text, " ", "given_name")
    problems.check(require_text, "", "mrn")
    with pytest.raises(domain_errors.ValidationError) as raised:
        problems.raise_any()
    error = from_domain_error(raised.value)
    assert isinstance(error, ValidationError)
    assert (error.code, error.field) == ("BLANK_VALUE", "givenName")
    assert [(p.code, p.field) for p in error.problems()] == [
        ("BLANK_VALUE", "givenName"),
        ("BLANK_VALUE", "mrn"),
    ]


def test_a_lone_error_lists_itself_as_its_only_problem() -> None:
    lone = ValidationError(
        code="INVALID_PAGE_SIZE", message="first must be 1 to 100", field="first"
    )
    assert [(p.code, p.message, p.field) for p in lone.problems()] == [
        ("INVALID_PAGE_SIZE", "first must be 1 to 100", "first")
    ]
    single = from_domain_error(domain_errors.ValidationError("x", field="occurred_at"))
    assert isinstance(single, ValidationError)
    assert [p.field for p in single.problems()] == ["occurredAt"]


def test_api_layer_checks_combine_into_one_error() -> None:
    a = ValidationError(code="A", message="a", field="name")
    b = ValidationError(code="B", message="b", field="timeZone")
    assert all_problems(None, None) is None
    assert all_problems(None, a) is not None
    both = all_problems(a, None, b)
    assert both is not None and (both.code, both.field) == ("A", "name")
    assert [p.field for p in both.problems()] == ["name", "timeZone"]


# --- the schema keeps the contract (regressions fail here) ---------------------------


@cache
def served() -> GraphQLSchema:
    """The schema the server builds (not the committed file, which another test pins)."""
    return parse_sdl(schema_sdl())


def test_every_error_type_implements_the_error_interface() -> None:
    """A type named *Error is a typed error: it implements Error (code, message, field)."""
    schema = served()
    interface = schema.get_type("Error")
    assert isinstance(interface, GraphQLInterfaceType)
    errors = [
        t for name, t in schema.type_map.items() if name.endswith("Error") and name != "Error"
    ]
    assert len(errors) >= 6
    for error in errors:
        assert isinstance(error, GraphQLObjectType), error.name
        assert interface in error.interfaces, f"{error.name} does not implement Error"


# The heuristic: a description lists allowed values when it holds a run of at least two
# bare lower-case words (identifiers such as in_person or phq9) joined by commas and
# closed by "or <word>" or "..." (e.g. "in_person, phone, video or message"), a run of
# four or more such words ("female, male, other, unknown"), or the words "one of". Such a
# String is a closed set and must be an enum; the String may stay only deprecated.
# Prose that trips it can be reworded; an open set (a team's own flag kinds) is listed.
LISTS_VALUES = re.compile(
    r"\b[a-z][a-z0-9_]*(?:, [a-z][a-z0-9_]*)+(?:,? or [a-z][a-z0-9_]*\b|, \.\.\.)"
    r"|\b[a-z][a-z0-9_]*(?:, [a-z][a-z0-9_]*){3,}\b"
    r"|\bone of\b"
)

# Closed sets still served as String without an enum twin: known debt (issue 13), each
# to get an enum beside it. Shrink this list; never grow it.
KNOWN_STRING_SETS = frozenset(
    {
        "Flag.kind",  # open: a team may define its own flag kinds
        "RegistryFlag.kind",  # open, as Flag.kind
    }
)


def _string_members(schema: GraphQLSchema) -> list[tuple[str, str | None, str | None]]:
    """(path, description, deprecation reason) of every String field, argument and input
    field of the schema's own types."""
    found: list[tuple[str, str | None, str | None]] = []

    def is_string(t: Any) -> bool:
        named = get_named_type(t)
        return isinstance(named, GraphQLScalarType) and named.name == "String"

    for name, t in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            for fname, f in t.fields.items():
                if is_string(f.type):
                    found.append((f"{name}.{fname}", f.description, f.deprecation_reason))
                for aname, a in f.args.items():
                    if is_string(a.type):
                        found.append(
                            (f"{name}.{fname}({aname})", a.description, a.deprecation_reason)
                        )
        if isinstance(t, GraphQLInputObjectType):
            for fname, inp in t.fields.items():
                if is_string(inp.type):
                    found.append((f"{name}.{fname}", inp.description, inp.deprecation_reason))
    return found


@pytest.mark.parametrize(
    ("text", "lists"),
    [
        ("in_person, phone, video or message.", True),
        ("female, male, other, unknown.", True),
        ("safety_risk, not_improving, overdue_contact, ...", True),
        ("Must be one of the codes.", True),
        ("The feed's new checkpoint (consent permitting, then and now).", False),
        ("Given name; null once forgotten.", False),
    ],
)
def test_the_heuristic(text: str, lists: bool) -> None:
    assert bool(LISTS_VALUES.search(text)) is lists


def test_no_current_string_lists_its_allowed_values() -> None:
    """A String whose description lists allowed values is a closed set: serve an enum (and
    deprecate the String) instead. The known debt is listed above and must not grow."""
    listing = {
        path
        for path, description, deprecated in _string_members(served())
        if description and not deprecated and LISTS_VALUES.search(description)
    }
    assert listing - KNOWN_STRING_SETS == set()
    assert KNOWN_STRING_SETS - listing == set(), "fixed: remove it from KNOWN_STRING_SETS"


def test_enum_twins_of_the_last_closed_string_sets_match_their_values() -> None:
    """CareEvent.streamKind has one member per aggregate's stream type, and each serves the
    value of its deprecated String twin; PartnerChange.changeKind likewise."""
    from domain.registry import AGGREGATES
    from services.api.partners.api import PartnerChange
    from services.api.types import CareEvent, StreamKind
    from services.partners.registry import ChangeKind

    # An organisation's stream (its calendar) belongs to no patient, so no caller's
    # patient scope ever admits it to careEvents (services/api/feed.py).
    assert {k.value for k in StreamKind} == set(AGGREGATES) - {"organisation"}
    for kind in StreamKind:
        event = CareEvent(
            event_id=uuid4(),
            patient_id=uuid4(),
            stream_type=kind.value,
            stream_id=uuid4(),
            stream_version=1,
            event_type="x",
            event_version=1,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
            position="p",
            payload={},
        )
        assert event.stream_kind() is kind
    for change in ChangeKind:
        row = PartnerChange(
            at=datetime(2026, 1, 1, tzinfo=UTC),
            change=change.value,
            version=1,
            actor_id=None,
            role=None,
            request_id=None,
            details={},
        )
        assert row.change_kind() is change
    schema = served()
    for type_name, old, new in (
        ("CareEvent", "streamType", "streamKind"),
        ("PartnerChange", "change", "changeKind"),
    ):
        fields = schema.get_type(type_name).fields  # type: ignore[union-attr]
        assert fields[old].deprecation_reason and not fields[new].deprecation_reason
