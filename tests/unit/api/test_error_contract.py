"""One error contract: every typed error's `field` is the GraphQL input path in camelCase."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import errors as domain_errors
from domain.common import check_occurred_at, require_text
from services.api.errors import (
    InvalidTransitionError,
    NotAllowedError,
    NotFoundError,
    ValidationError,
    at_most_one,
    camel_path,
    exactly_one,
    from_domain_error,
)


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
