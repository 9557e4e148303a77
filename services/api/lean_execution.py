"""A leaner GraphQL execution of the caseload's plain fields (issue 14, row 3).

A caseload page of 150 rows is about 5,000 fields, nearly all of them plain attributes
of the row objects (strawberry's "basic" fields: no resolver, no arguments, no field
extension). graphql-core resolves each one through the general machinery: it looks the
field up, builds a ``GraphQLResolveInfo``, reads arguments and goes through
``complete_value``'s dispatch; that bookkeeping, not the attribute read, was about a
third of the CPU of a caseload request.

``LeanExecutionContext`` takes a shorter path for the basic fields of the types listed
in ``LEAN_TYPES`` (the caseload connection and what it contains): the same resolver
strawberry installed for the field (an attribute read that ignores its ``info``), the
same leaf serialisers (``coerce_output_value``), the same sub-field collection
(``collect_subfields``, which applies ``@skip``/``@include`` and fragments), the same
error handling (``handle_field_error``, with the same messages and paths). Any other
field (a resolver, arguments, a directive on the field, another type) goes through
graphql-core unchanged, so a display name's DataLoader or a computed enum runs as
before. tests/e2e/test_caseload_equivalence.py compares the answers field by field.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.executor import invalid_return_type_error
from graphql.pyutils import AwaitableOrValue, Path, Undefined, UndefinedType, is_iterable
from graphql.pyutils import gather_with_cancel as gather
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# The GraphQL object types whose basic fields take the lean path.
LEAN_TYPES: Final = frozenset(
    {"CaseloadConnection", "CaseloadEdge", "CaseloadRow", "RegistryScore", "RegistryFlag"}
)


def _named(type_: GraphQLOutputType) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _lean_field(parent: GraphQLObjectType, name: str, field: GraphQLField) -> bool:
    """A basic field (strawberry's default attribute resolver) of a lean type whose value
    is a leaf or another lean type."""
    if parent.name not in LEAN_TYPES or field.args or field.resolve is None:
        return False
    if not getattr(field.resolve, "_is_default", False):
        return False
    named = _named(field.type)
    return bool(is_leaf_type(named) or getattr(named, "name", None) in LEAN_TYPES)


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context with the lean path for ``LEAN_TYPES``."""

    _lean: dict[tuple[str, str], bool] = {}  # noqa: RUF012 - one table per process

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        if parent_type.name in LEAN_TYPES:
            node = field_details_list[0].node
            name = node.name.value
            field = parent_type.fields.get(name)
            if field is not None and not node.arguments and not node.directives:
                key = (parent_type.name, name)
                lean = self._lean.get(key)
                if lean is None:
                    lean = self._lean[key] = _lean_field(parent_type, name, field)
                if lean:
                    return self._execute_lean(
                        parent_type, name, field, source, field_details_list, path
                    )
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _execute_lean(
        self,
        parent_type: GraphQLObjectType,
        name: str,
        field: GraphQLField,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        assert field.resolve is not None
        try:
            result = field.resolve(source, None)  # the basic resolver ignores its info
            completed = self._complete(
                field.type, parent_type, name, field_details_list, path, result
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, field.type, field_details_list, path)
            return None
        if self.is_awaitable(completed):
            return self._await_field(completed, field.type, field_details_list, path)
        return completed

    async def _await_field(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    def _complete(
        self,
        return_type: GraphQLOutputType,
        parent_type: GraphQLObjectType,
        name: str,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
    ) -> AwaitableOrValue[Any]:
        """``complete_value`` for leaves, lists and lean object types (the same checks,
        messages and serialisers)."""
        if isinstance(result, Exception):
            raise result
        if isinstance(return_type, GraphQLNonNull):
            completed = self._complete(
                return_type.of_type, parent_type, name, field_details_list, path, result
            )
            if completed is None:
                msg = f"Cannot return null for non-nullable field {parent_type}.{name}."
                raise TypeError(msg)
            return completed
        if result is None or result is Undefined:
            return None
        if isinstance(return_type, GraphQLList):
            if not is_iterable(result):
                msg = f"Expected Iterable, but did not find one for field '{parent_type}.{name}'."
                raise GraphQLError(msg)
            return self._complete_list(
                return_type.of_type, parent_type, name, field_details_list, path, result
            )
        if is_leaf_type(return_type):
            return self.complete_leaf_value(return_type, result)
        assert isinstance(return_type, GraphQLObjectType)
        if return_type.is_type_of and not return_type.is_type_of(result, None):  # type: ignore[arg-type]
            raise invalid_return_type_error(return_type, result, field_details_list)
        grouped, new_defer_usages, _ = self.collect_subfields(return_type, field_details_list)
        return self.execute_collected_subfields(
            return_type, result, path, grouped, new_defer_usages, None
        )

    def _complete_list(
        self,
        item_type: GraphQLOutputType,
        parent_type: GraphQLObjectType,
        name: str,
        field_details_list: FieldDetailsList,
        path: Path,
        items: Any,
    ) -> AwaitableOrValue[list[Any]]:
        completed: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                try:
                    value = self._complete(
                        item_type, parent_type, name, field_details_list, item_path, item
                    )
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    value = None
                if self.is_awaitable(value):
                    value = self._await_field(value, item_type, field_details_list, item_path)
                    pending.append(index)
                completed.append(value)
        except Exception:
            if pending:  # as graphql-core does: settle what other items started
                self.settle_in_background([completed[i] for i in pending])
            raise
        if not pending:
            return completed

        async def gathered() -> list[Any]:
            values = await gather(*(completed[i] for i in pending))
            for index, value in zip(pending, values, strict=True):
                completed[index] = value
            return completed

        return gathered()
