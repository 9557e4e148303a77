"""The hardening extension answers as the six extensions it replaced (kept here as the
reference) on the subscription path over a WebSocket (answered, a masked resolver error,
syntax, validation and the token limit), and refuses a subscription sent over HTTP and
introspection in production alike."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types.graphql import OperationType

from services.api.schema import (
    _LIMIT_RULES,
    _PRODUCTION_RULES,
    MAX_TOKENS,
    CareteamSchema,
    Hardening,
    MaskUnexpectedErrors,
)


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

    @strawberry.subscription
    async def broken(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("secret")


def _old_extensions(rules: list[Any]) -> list[Any]:
    class SubscriptionsOverWebSocketOnly(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            ec = self.execution_context
            request = getattr(ec.context, "request", None)
            if ec.operation_type is OperationType.SUBSCRIPTION and not isinstance(
                request, WebSocket
            ):
                ec.result = ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(
                            "subscriptions are served over WebSocket (graphql-transport-ws) only",
                            extensions={"code": "SUBSCRIPTION_OVER_HTTP"},
                        )
                    ],
                )
            yield

    return [
        MaskUnexpectedErrors,
        SubscriptionsOverWebSocketOnly,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]


def _pair(rules: list[Any]) -> tuple[strawberry.Schema, strawberry.Schema]:
    new = CareteamSchema(query=_Q, subscription=_S, extensions=[lambda: Hardening(tuple(rules))])
    old = CareteamSchema(query=_Q, subscription=_S, extensions=_old_extensions(rules))
    return new, old


def _shape(results: Any) -> Any:
    return [
        (r.data, [(e.message, sorted(e.extensions or {})) for e in r.errors or []]) for r in results
    ]


class _WS:  # a context whose request is a WebSocket
    def __init__(self) -> None:
        self.request = WebSocket.__new__(WebSocket)


SUBS = [
    "subscription { tick }",
    "subscription { broken }",
    "subscription { tick ",
    "subscription { nope }",
    "subscription { " + "tick " * (MAX_TOKENS + 1) + "}",
]


@pytest.mark.parametrize("doc", SUBS)
async def test_a_subscription_over_a_websocket_is_answered_as_before(doc: str) -> None:
    new, old = _pair(list(_LIMIT_RULES))

    async def run(schema: strawberry.Schema) -> Any:
        try:
            gen = await schema.subscribe(doc, context_value=_WS())
            return _shape([r async for r in gen])
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc)[:60])

    assert await run(new) == await run(old)


@pytest.mark.parametrize("doc", ["subscription { tick }", "{ __schema { types { name } } }"])
async def test_a_subscription_over_http_and_introspection_are_answered_as_before(
    doc: str,
) -> None:
    for rules in (list(_LIMIT_RULES), list(_PRODUCTION_RULES)):
        new, old = _pair(rules)
        got, want = await new.execute(doc), await old.execute(doc)
        assert _shape([got]) == _shape([want])
