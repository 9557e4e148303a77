"""The lean execution path answers exactly as graphql-core does, errors included.

A small schema whose types carry the caseload's type names (so the lean path and the
row memo apply) is executed with strawberry's own execution context and with
``LeanExecutionContext``; data and errors (messages, paths) must be the same, also when
a non-null field is null, a list item is null, and when the same row objects are
answered twice (the second answer from the memo)."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from strawberry.extensions import ParserCache
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from services.api.lean_execution import MAX_SELECTIONS_PER_OBJECT, LeanExecutionContext


@strawberry.type(name="RegistryScore")
class Score:
    total: int
    severity: str | None

    @strawberry.field
    def doubled(self) -> int:
        return self.total * 2


@strawberry.type(name="CaseloadRow")
class Row:
    patient: str
    scores: list[Score]
    maybe: list[int | None]
    required: list[int]

    @strawberry.field
    async def name(self) -> str | None:  # resolved per request, never memoised
        await asyncio.sleep(0)
        return f"name of {self.patient}"


@strawberry.type(name="CaseloadConnection")
class Connection:
    rows: list[Row]


ROWS = [
    Row(
        patient="a",
        scores=[Score(total=5, severity="mild"), Score(total=12, severity=None)],
        maybe=[1, None],
        required=[1, 2],
    ),
    Row(patient="b", scores=[], maybe=[], required=[3]),
    # A null item in a list of non-null integers: graphql-core's error.
    Row(patient="c", scores=[Score(total=1, severity=None)], maybe=[None], required=[4, None]),  # type: ignore[list-item]
]


# The same connection object every time, as services.api.registry.queries answers an
# unchanged page: its completed fields are memoised on it too.
SAME = Connection(rows=ROWS)


@strawberry.type
class Query:
    @strawberry.field
    def caseload(self) -> Connection:
        return Connection(rows=ROWS)

    @strawberry.field
    def same(self) -> Connection:
        return SAME

    @strawberry.field
    def fresh_row(self) -> Row:  # a row made per request, as registryRow's is
        FRESH.append(Row(patient="f", scores=[], maybe=[], required=[]))
        return FRESH[-1]

    @strawberry.field
    def echo(self, n: int | None = None) -> int | None:
        return n


FRESH: list[Row] = []


QUERIES = [
    "{ caseload { rows { patient scores { total severity } maybe } } }",
    "{ caseload { rows { patient required } } }",
    """query($s: Boolean!) { caseload { rows { ...r x: patient @skip(if: $s) name } } }
       fragment r on CaseloadRow { scores { total doubled } }""",
    "{ same { rows { patient scores { total severity } maybe } } }",
    "{ same { rows { patient required } } }",
    """query($s: Boolean!) { same { rows { ...r x: patient @skip(if: $s) name } } }
       fragment r on CaseloadRow { scores { total doubled } }""",
    "{ a: same { rows { patient } } b: same { rows { maybe patient } } }",
]


# One schema per execution context, with the parser cache the API uses: a document asked
# again is the same parsed nodes, so the memo applies to it.
SCHEMAS = {
    context: strawberry.Schema(
        query=Query,
        execution_context_class=context,
        extensions=[lambda: ParserCache(maxsize=64)],
    )
    for context in (StrawberryGraphQLCoreExecutionContext, LeanExecutionContext)
}


def _execute(context: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    return asyncio.run(
        SCHEMAS[context].execute(query, variable_values={"s": False, **(variables or {})})
    )


def _run(context: Any, query: str) -> dict[str, Any]:
    result = _execute(context, query)
    return {
        "data": result.data,
        "errors": [(e.message, e.path) for e in result.errors or []],
    }


def test_lean_answers_equal_graphql_cores() -> None:
    for query in QUERIES:
        expected = _run(StrawberryGraphQLCoreExecutionContext, query)
        assert _run(LeanExecutionContext, query) == expected
        assert _run(LeanExecutionContext, query) == expected  # again, from the memo


def test_an_unchanged_connection_is_answered_from_the_memo() -> None:
    """The same connection object and document: the same completed edges, not completed
    again; with a field resolved per request below them, completed every time."""
    query = "{ same { rows { patient scores { total } } } }"
    first, second = (_execute(LeanExecutionContext, query).data for _ in range(2))
    assert first["same"]["rows"] is second["same"]["rows"]
    per_request = "{ same { rows { patient name } } }"
    first, second = (_execute(LeanExecutionContext, per_request).data for _ in range(2))
    assert first == second and first["same"]["rows"] is not second["same"]["rows"]


def test_an_object_keeps_a_bounded_number_of_selections() -> None:
    """A variable the selection does not use still makes another key; an object keeps at
    most MAX_SELECTIONS_PER_OBJECT of them."""
    query = "query($v: Int) { same { rows { patient } } echo(n: $v) }"
    for value in range(MAX_SELECTIONS_PER_OBJECT + 3):
        assert _execute(LeanExecutionContext, query, {"v": value}).errors is None
    _generation, stored = SAME._careteam_completed  # type: ignore[attr-defined]
    assert 1 <= len(stored) <= MAX_SELECTIONS_PER_OBJECT


def test_a_row_made_per_request_by_a_resolver_is_not_memoised() -> None:
    assert _execute(LeanExecutionContext, "{ freshRow { patient scores { total } } }").data
    assert not hasattr(FRESH[-1], "_careteam_completed")


def test_a_null_in_a_non_null_list_is_the_same_error() -> None:
    lean = _run(LeanExecutionContext, QUERIES[1])
    assert lean["errors"] == [
        (
            "Cannot return null for non-nullable field CaseloadRow.required.",
            ["caseload", "rows", 2, "required", 1],
        )
    ]
