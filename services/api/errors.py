"""Expected failures as GraphQL types: every mutation returns a union of success and these.

Unexpected exceptions are masked (MaskErrors) so no internals or patient data leak.
"""

from __future__ import annotations

import re
from typing import Any

import strawberry

from domain import errors as domain_errors

FIELD_DESCRIPTION = (
    "The input field at fault as its path in the GraphQL input, in camelCase (e.g. "
    "occurredAt), when one is; null when no single field is at fault."
)


@strawberry.interface(
    description="What every typed error has: a stable code, a message for people (never "
    "patient data) and the input field at fault, if any. Every type named *Error "
    "implements it, so a client can select `... on Error { code message field }` once."
)
class Error:
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str = strawberry.field(description="What is wrong; never contains patient data.")
    field: str | None = strawberry.field(default=None, description=FIELD_DESCRIPTION)


@strawberry.type(
    description="One problem of an input: the field at fault, a stable code and a message "
    "(never patient data)."
)
class FieldProblem:
    code: str = strawberry.field(description="Stable machine-readable code, e.g. BLANK_VALUE.")
    message: str = strawberry.field(description="What is wrong; never contains patient data.")
    field: str | None = strawberry.field(default=None, description=FIELD_DESCRIPTION)


@strawberry.type(
    description="The input was malformed or outside its allowed range; nothing was written. "
    "`code`, `message` and `field` are those of the first problem; `problems` lists every "
    "problem found in the input at once."
)
class ValidationError(Error):
    code: str = strawberry.field(
        description="Stable machine-readable code, e.g. ANSWER_OUT_OF_RANGE."
    )
    message: str = strawberry.field(
        description="What is wrong, for people; never contains patient data."
    )
    field: str | None = strawberry.field(default=None, description=FIELD_DESCRIPTION)
    # Every problem when several were found (the first is this error's own); see problems.
    listed: strawberry.Private[tuple[FieldProblem, ...]] = ()

    @strawberry.field(
        description="Every problem of the input, the first being this error's own code, "
        "message and field; at least one. Fix them all before sending again."
    )
    def problems(self) -> list[FieldProblem]:
        if self.listed:
            return list(self.listed)
        return [FieldProblem(code=self.code, message=self.message, field=self.field)]


@strawberry.type(
    description="The record's current state does not allow this change; nothing was written."
)
class InvalidTransitionError(Error):
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str = strawberry.field(description="What is wrong; never contains patient data.")


@strawberry.type(description="The record named by an id does not exist (or is not visible to you).")
class NotFoundError(Error):
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str = strawberry.field(description="What was not found.")


@strawberry.type(
    description="Another writer changed the record at the same time; retry on fresh data."
)
class ConflictError(Error):
    code: str = strawberry.field(
        description="Stable machine-readable code, e.g. CONFLICT or DUPLICATE_MRN."
    )
    message: str = strawberry.field(description="What conflicted.")
    field: str | None = strawberry.field(
        default=None,
        description="The input field whose value conflicts with an existing record "
        "(e.g. mrn), when one does.",
    )


@strawberry.type(description="A process rule forbids this change here; nothing was written.")
class NotAllowedError(Error):
    code: str = strawberry.field(description="Stable machine-readable code.")
    message: str = strawberry.field(description="Why it is not allowed.")


@strawberry.type(
    description="You may not do this (role, organisation or care team); the attempt is audited."
)
class ForbiddenError(Error):
    code: str = strawberry.field(description="Stable machine-readable code, e.g. NOT_ON_CARE_TEAM.")
    message: str = strawberry.field(description="Why it was refused.")


DomainErrorType = ValidationError | InvalidTransitionError | NotFoundError | NotAllowedError


_SNAKE_WORD = re.compile(r"_+([a-z0-9])")


def camel_path(field: str | None) -> str | None:
    """An input path as GraphQL spells it: each snake_case segment in camelCase.

    The domain names fields as Python does (``occurred_at``, ``given_name``); clients see
    the GraphQL input names (``occurredAt``, ``givenName``). Separators of a path
    (``.``, ``[]``) are kept; camelCase or single-word names pass unchanged.
    """
    if field is None:
        return None
    return _SNAKE_WORD.sub(lambda m: m.group(1).upper(), field)


def from_domain_error(exc: domain_errors.DomainError) -> DomainErrorType:
    """Maps a domain rule violation to its GraphQL error type; the field at fault, if any,
    in camelCase (the one place domain field names become API input paths)."""
    field = camel_path(getattr(exc, "field", None))
    if isinstance(exc, domain_errors.InvalidTransitionError):
        return InvalidTransitionError(code=exc.code, message=exc.message, field=field)
    if isinstance(exc, domain_errors.NotFoundError):
        return NotFoundError(code=exc.code, message=exc.message, field=field)
    if isinstance(exc, domain_errors.NotAllowedError):
        return NotAllowedError(code=exc.code, message=exc.message, field=field)
    return ValidationError(
        code=exc.code,
        message=exc.message,
        field=field,
        listed=tuple(
            FieldProblem(code=p.code, message=p.message, field=camel_path(p.field))
            for p in exc.problems
        ),
    )


def all_problems(*errors: ValidationError | None) -> ValidationError | None:
    """One ValidationError listing every problem of ``errors`` (the first one's code, message
    and field on top); None when there is none. For checks made in the API layer."""
    found = [e for e in errors if e is not None]
    if not found:
        return None
    first = found[0]
    return ValidationError(
        code=first.code,
        message=first.message,
        field=first.field,
        listed=tuple(p for e in found for p in e.problems()),
    )


def exactly_one(new_name: str, new: Any, old_name: str, old: Any) -> ValidationError | None:
    """A typed error unless exactly one of an input's enum field and its deprecated String
    twin is given (naming the enum field, the one to use)."""
    if new is not None and old is not None:
        return ValidationError(
            code="CONFLICTING_FIELDS",
            message=f"give {new_name} or the deprecated {old_name}, not both",
            field=new_name,
        )
    if new is None and old is None:
        return ValidationError(
            code="FIELD_REQUIRED", message=f"{new_name} is required", field=new_name
        )
    return None


def at_most_one(new_name: str, new: Any, old_name: str, old: Any) -> ValidationError | None:
    """As :func:`exactly_one` for an optional field: both may be absent."""
    if new is None and old is None:
        return None
    return exactly_one(new_name, new, old_name, old)


# Every expected way a command can fail; each one writes nothing. A mutation's result is
# declared as ``Annotated[Payload | CommandError, result_union("NameResult", "...")]``.
CommandError = (
    ValidationError
    | InvalidTransitionError
    | NotFoundError
    | NotAllowedError
    | ConflictError
    | ForbiddenError
)


def result_union(name: str, description: str) -> Any:
    """The GraphQL union of a result and its errors: its name and description, once."""
    return strawberry.union(name, description=description)
