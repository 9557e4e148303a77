"""Running one GraphQL operation in process, as a given caller, against a runtime."""

from __future__ import annotations

from typing import Any

import strawberry

from services.api.context import CareteamContext
from services.auth import Principal
from services.bootstrap import Runtime


async def execute_as(
    schema: strawberry.Schema, runtime: Runtime, principal: Principal, query: str, **variables: Any
) -> dict[str, Any]:
    """The operation's data as ``principal``; fails on unexpected GraphQL errors."""
    context = CareteamContext(runtime=runtime, request=None, principal=principal)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data
