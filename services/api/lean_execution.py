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
before.

For the caseload's rows (``MEMO_TYPES``) the completed lean fields, with the resolvers of
``PURE_FIELDS`` that read only their own row, are also memoised on the row object per
selection: services.api.registry.queries hands the same row object to every request for
the same document, day, zone and minutes, so an unchanged row is completed once. Fields
that read the request (the staff display names) are resolved per request and merged in
selection order. The caseload connection is memoised the same way: the resolver answers
the same connection object for a page of the same row objects, cursors and counts, so an
unchanged page's edges are completed once (a list with a per-request field below it is
completed per request, as before). docs/performance.md gives the measurements;
tests/e2e/test_caseload_equivalence.py compares the answers field by field with a replay
of the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Hashable
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

from services.jsontext import EncodedList

# The GraphQL object types whose basic fields take the lean path.
LEAN_TYPES: Final = frozenset(
    {"CaseloadConnection", "CaseloadEdge", "CaseloadRow", "RegistryScore", "RegistryFlag"}
)


# The types whose completed lean fields are memoised per object and selection: the
# caseload rows, which services.api.registry.queries memoises per document and day, so
# the same row object is answered again to the next caller of the same caseload.
# The caseload connection too: services.api.registry.queries answers the same connection
# object for a page of the same row objects, cursors and counts.
MEMO_TYPES: Final = frozenset({"CaseloadRow", "CaseloadConnection"})
# The memoised types a resolver returns (not reached through a lean field): only those
# the resolver shares between requests.
RESOLVED_MEMO_TYPES: Final = frozenset({"CaseloadConnection"})
# Selections remembered per object at most: the selection key holds every variable of
# the operation, so a client varying an unrelated variable would otherwise add an entry
# (with a whole page's edges and their text) on every request. Past it, that object's
# entries start afresh.
MAX_SELECTIONS_PER_OBJECT: Final = 8
# The memoised types whose completed lists are also kept as JSON text, written once and
# spliced into every answer that shares them (services.jsontext.EncodedList): the
# caseload connection's edges, 150 rows a page.
ENCODED_TYPES: Final = frozenset({"CaseloadConnection"})
# Distinct selections remembered at most (documents times variable values); past it the
# memo starts afresh, so a client varying its documents cannot grow it without bound.
MAX_SELECTIONS: Final = 256
# Resolvers that read only their own object (no context, no I/O): memoisable with it.
PURE_FIELDS: Final = frozenset(
    {
        ("CaseloadRow", "episodeStatus"),
        ("CaseloadRow", "reviewReasonKinds"),
        ("RegistryScore", "instrumentCode"),
    }
)


class _Memo:
    """Completed fields per object and selection, kept on the object itself (so they go
    when the row memo lets the object go) under the current generation."""

    generation = 0
    # The field nodes of each selection remembered in this generation, kept alive so
    # that the node ids in a key cannot be reused by another document meanwhile.
    kept: Final[dict[Hashable, FieldDetailsList]] = {}


_ATTRIBUTE: Final = "_careteam_completed"


def _recall(obj: Any, key: Hashable) -> dict[str, Any] | None:
    stored = getattr(obj, _ATTRIBUTE, None)
    if stored is None or stored[0] != _Memo.generation:
        return None
    values: dict[str, Any] | None = stored[1].get(key)
    return values


def _remember(
    obj: Any, key: Hashable, values: dict[str, Any], field_details_list: FieldDetailsList
) -> None:
    """Memoises an object's completed fields for a selection; a new generation starts
    (forgetting every object's entries) when it would exceed MAX_SELECTIONS selections."""
    if key not in _Memo.kept and len(_Memo.kept) >= MAX_SELECTIONS:
        _Memo.kept.clear()
        _Memo.generation += 1
    _Memo.kept.setdefault(key, field_details_list)
    stored: tuple[int, dict[Hashable, dict[str, Any]]] | None = getattr(obj, _ATTRIBUTE, None)
    if stored is None or stored[0] != _Memo.generation:
        stored = (_Memo.generation, {})
        try:
            setattr(obj, _ATTRIBUTE, stored)
        except AttributeError:  # an object without attributes of its own: not memoised
            return
    if key not in stored[1] and len(stored[1]) >= MAX_SELECTIONS_PER_OBJECT:
        stored[1].clear()
    stored[1][key] = values


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
    # Fields resolved the general way that are not PURE_FIELDS, counted: a memoised
    # completion must not contain one (a display name, for one, is read per request).
    _impure = 0

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        if parent_type.name in LEAN_TYPES and self._is_lean(parent_type, field_details_list):
            name = field_details_list[0].node.name.value
            field = parent_type.fields[name]
            return self._execute_lean(parent_type, name, field, source, field_details_list, path)
        if (parent_type.name, field_details_list[0].node.name.value) not in PURE_FIELDS:
            self._impure += 1
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """The caseload connection a resolver returns is completed through the memo as
        well (the resolver hands the same object to every request for an unchanged
        page); anything else as graphql-core does (a row a resolver makes per request,
        such as ``registryRow``'s, is not memoised: it is never asked for again)."""
        if return_type.name in RESOLVED_MEMO_TYPES:
            grouped, new_defer_usages, _ = self.collect_subfields(return_type, field_details_list)
            if not new_defer_usages:
                return self._complete_memoised(
                    return_type, result, path, grouped, field_details_list
                )
            return self.execute_collected_subfields(
                return_type, result, path, grouped, new_defer_usages, position_context
            )
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
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
        if return_type.name in MEMO_TYPES and not new_defer_usages:
            return self._complete_memoised(return_type, result, path, grouped, field_details_list)
        return self.execute_collected_subfields(
            return_type, result, path, grouped, new_defer_usages, None
        )

    def _selection_key(self, field_details_list: FieldDetailsList) -> Hashable | None:
        """What the completed fields of an object depend on besides the object: the field
        nodes (of one parsed document, kept alive by the memo) and the variables."""
        if any(d.fragment_variable_values is not None for d in field_details_list):
            return None
        variables = tuple(sorted(self.variable_values.coerced.items()))
        try:
            hash(variables)
        except TypeError:
            return None
        return (id(self.schema), tuple(id(d.node) for d in field_details_list), variables)

    def _complete_memoised(
        self,
        return_type: GraphQLObjectType,
        result: Any,
        path: Path,
        grouped: Any,
        field_details_list: FieldDetailsList,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """The object's fields, its lean ones from the memo when this object was completed
        for this selection before; the others (a display name, a computed enum) as usual."""
        key = self._selection_key(field_details_list)
        lean_values = _recall(result, key) if key is not None else None
        awaiting = False  # a remembered value is never awaitable
        if lean_values is None:
            errors, impure = len(self.collected_errors.errors), self._impure
            lean_values = {}
            for name, details in grouped.items():
                if self._is_pure(return_type, details):
                    value = self.execute_field(
                        return_type, result, details, Path(path, name, return_type.name), None
                    )
                    if value is not Undefined:
                        lean_values[name] = value
            clean = len(self.collected_errors.errors) == errors and self._impure == impure
            # A lean list of objects with a field resolved per request below it (the
            # connection's edges, when a row's display name is selected) is awaitable.
            awaiting = any(map(self.is_awaitable, lean_values.values()))
            if key is not None and clean and not awaiting:
                if return_type.name in ENCODED_TYPES:
                    lean_values = {
                        name: EncodedList(value) if type(value) is list else value
                        for name, value in lean_values.items()
                    }
                _remember(result, key, lean_values, field_details_list)
        if len(lean_values) == len(grouped) and not awaiting:
            return lean_values
        results: dict[str, Any] = {}
        pending: list[str] = []
        for name, details in grouped.items():
            if name in lean_values:
                value = lean_values[name]
            else:
                value = self.execute_field(
                    return_type, result, details, Path(path, name, return_type.name), None
                )
                if value is Undefined:
                    continue
            results[name] = value
            if self.is_awaitable(value):
                pending.append(name)
        if not pending:
            return results

        async def gathered() -> dict[str, Any]:
            values = await gather(*(results[name] for name in pending))
            results.update(zip(pending, values, strict=True))
            return results

        return gathered()

    def _is_pure(self, parent_type: GraphQLObjectType, details: FieldDetailsList) -> bool:
        """A lean field, or one of ``PURE_FIELDS`` (a resolver reading only its object)."""
        if self._is_lean(parent_type, details):
            return True
        node = details[0].node
        return (
            (parent_type.name, node.name.value) in PURE_FIELDS
            and not node.arguments
            and not node.directives
        )

    def _is_lean(self, parent_type: GraphQLObjectType, details: FieldDetailsList) -> bool:
        node = details[0].node
        field = parent_type.fields.get(node.name.value)
        if field is None or node.arguments or node.directives:
            return False
        key = (parent_type.name, node.name.value)
        lean = self._lean.get(key)
        if lean is None:
            lean = self._lean[key] = _lean_field(parent_type, node.name.value, field)
        return lean

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
