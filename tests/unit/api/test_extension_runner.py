"""careteam's extension runner enters the same hooks in the same order as strawberry's,
and the hardening extension answers as the six strawberry and careteam extensions it
replaced did (services/api/extension_runner.py, services/api/schema.py ``Hardening``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from services.api.schema import (
    _LIMIT_RULES,
    MAX_TOKENS,
    CareteamSchema,
    Hardening,
    MaskUnexpectedErrors,
    build_schema,
)


@strawberry.type
class _Query:
    @strawberry.field
    def ok(self) -> int:
        return 1

    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("a detail not for clients")


def _recorder(name: str, events: list[str]) -> type[SchemaExtension]:
    class _Record(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            events.append(f"{name} operation in")
            yield
            result = self.execution_context.result
            errors = len(result.errors or []) if result is not None else None
            events.append(f"{name} operation out errors={errors}")

        def on_parse(self) -> Iterator[None]:
            events.append(f"{name} parse in")
            yield
            events.append(f"{name} parse out")

        def on_validate(self) -> Iterator[None]:
            events.append(f"{name} validate in")
            yield
            events.append(f"{name} validate out")

        def on_execute(self) -> Iterator[None]:
            events.append(f"{name} execute in")
            yield
            events.append(f"{name} execute out")

    return _Record


def _async_recorder(events: list[str]) -> type[SchemaExtension]:
    class _AsyncRecord(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            events.append("async execute in")
            yield
            events.append("async execute out")

    return _AsyncRecord


DOCUMENTS = [
    "{ ok }",  # answered
    "{ ok ",  # a syntax error: parsing fails
    "{ nope }",  # a validation error
    "{ broken }",  # a resolver's error
]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("with_async", [False, True])
async def test_hooks_run_in_the_order_strawberrys_runner_runs_them(
    document: str, with_async: bool
) -> None:
    def run_with(schema_class: type[strawberry.Schema]) -> tuple[list[str], Any]:
        events: list[str] = []
        extensions: list[Any] = [_recorder("a", events), _recorder("b", events)]
        if with_async:
            extensions.insert(1, _async_recorder(events))
        return events, schema_class(query=_Query, extensions=extensions)

    ours_events, ours = run_with(CareteamSchema)
    theirs_events, theirs = run_with(strawberry.Schema)
    ours_result = await ours.execute(document)
    theirs_result = await theirs.execute(document)
    assert ours_events == theirs_events
    assert "a operation in" in ours_events and ours_events[-1].startswith("a operation out")
    assert ours_result.data == theirs_result.data
    assert [e.message for e in ours_result.errors or []] == [
        e.message for e in theirs_result.errors or []
    ]


def _strawberrys_hardening() -> list[Any]:
    """The extensions ``Hardening`` replaced, as build_schema listed them before."""
    return [
        MaskUnexpectedErrors,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(list(_LIMIT_RULES)),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]


HARDENING_CASES = [
    "{ ok }",
    "{ broken }",  # masked, with an error id
    "{ " + "ok " * (MAX_TOKENS + 1) + "}",  # over the token limit
    "{ " + " ".join(f"a{i}: ok" for i in range(40)) + " }",  # over the alias limit
    "{ ok { } }",  # an empty selection
    "{ ok ",
]


@pytest.mark.parametrize("case", range(len(HARDENING_CASES)))
async def test_the_hardening_extension_answers_as_the_extensions_it_replaced(case: int) -> None:
    document = HARDENING_CASES[case]
    ours = CareteamSchema(query=_Query, extensions=[lambda: Hardening(tuple(_LIMIT_RULES))])
    before = strawberry.Schema(query=_Query, extensions=_strawberrys_hardening())
    got = await ours.execute(document)
    want = await before.execute(document)
    assert got.data == want.data
    got_errors = [(e.message, sorted(e.extensions or {})) for e in got.errors or []]
    want_errors = [(e.message, sorted(e.extensions or {})) for e in want.errors or []]
    assert got_errors == want_errors
    assert (got.errors is None) == (case == 0)


def test_the_api_schema_runs_one_hardening_extension() -> None:
    schema = build_schema()
    assert isinstance(schema, CareteamSchema)
    kinds = [type(e() if not isinstance(e, SchemaExtension) else e) for e in schema.extensions]
    assert kinds == [Hardening]


@strawberry.type
class _Q:
    @strawberry.field
    def ok(self) -> int:
        return 1


@strawberry.type
class _S:
    @strawberry.subscription
    async def tick(self) -> AsyncGenerator[int, None]:
        yield 1
        yield 2


class _Swallow(SchemaExtension):
    """A hook that catches an exception and does not re-raise it."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except Exception:
            pass


class _Boom(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        raise RuntimeError("validation hook failed")
        yield


@pytest.mark.parametrize("cls", [strawberry.Schema, CareteamSchema])
async def test_a_hook_that_swallows_an_exception_does_not_stop_it_as_in_strawberry(
    cls: type[strawberry.Schema],
) -> None:
    schema = cls(query=_Q, extensions=[_Swallow, _Boom])
    result = await schema.execute("{ ok }")
    # strawberry: the exception still reaches execute's `except Exception`
    assert [e.message for e in result.errors or []] == ["validation hook failed"]


@pytest.mark.parametrize("cls", [strawberry.Schema, CareteamSchema])
def test_execute_sync_runs_the_hooks_as_strawberry_does(cls: type[strawberry.Schema]) -> None:
    schema = cls(query=_Q, extensions=[_Swallow])
    assert schema.execute_sync("{ ok }").data == {"ok": 1}


@pytest.mark.parametrize("cls", [strawberry.Schema, CareteamSchema])
async def test_a_subscription_runs_the_hooks_as_strawberry_does(
    cls: type[strawberry.Schema],
) -> None:
    events: list[str] = []

    class Rec(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            events.append("op in")
            yield
            events.append("op out")

        def on_execute(self) -> Iterator[None]:
            events.append("ex in")
            yield
            events.append("ex out")

    schema = cls(query=_Q, subscription=_S, extensions=[Rec])
    gen = await schema.subscribe("subscription { tick }")
    got = [r.data async for r in gen]
    assert got == [{"tick": 1}, {"tick": 2}]
    assert events == ["op in", "ex in", "ex out", "op out"]
