"""One execution of a live subscription for every subscriber who would get the same answer.

A ``careEvents`` subscription's answer to an event depends on the document, its
variables and the subscriber's authorisation scope, nothing else: which patients the
caller may read is a SQL predicate over the caller's organisation (and, for the roles
whose scope involves a care team, emergency access or caregiving, the caller's user id:
``patient_scope_sql``), and what is withheld from an event's data depends on the role
and, for clinicians, on the user (Part 2 through their own emergency access:
``care_event_payload``). Subscribers for whom all of these are equal form a group; the
group follows the log once, decides access once, audits every member's read in one
``AuditWriter.record`` call, executes the selection once and hands the same result to
each member's WebSocket. Anything that could make answers differ is in the key, so a
group never holds two scopes: for clinicians the key holds the user id, so only one
user's own subscriptions (several tabs) share.

Who receives an event is fixed when it is audited: the resolver asks the group for its
members (``SharedAudience.recipients``), records their reads, and only those members are
given the result. A subscriber who joins later gets the next event, never one that was
audited without them.

Every member is handed the same ``SharedResult`` object, so what depends on the result
alone is derived once: its graphql-transport-ws ``next`` payload is encoded as JSON by
the first member's connection and only the operation id is spliced in for each
(services/api/transport.py).

Only the plain live form is shared: one root field ``careEvents`` without ``after``
(a replay from a position is per subscriber). Anything else runs as before, one
execution per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from graphql import FieldNode, GraphQLError, GraphQLSyntaxError, OperationDefinitionNode, parse
from graphql.language import OperationType as AstOperationType
from strawberry.types.execution import ExecutionResult

from services.api.authz import patient_scope_sql
from services.auth import CLINICAL_ROLES, Principal


class Subscriber(Protocol):
    """A subscriber's per-connection context (services/api/context.py)."""

    active_subscriptions: int


SHARED_FIELD = "careEvents"
# Results a member may have waiting before it is disconnected as too slow (as the feed's
# own per-subscriber queue).
MEMBER_QUEUE_LIMIT = 1_000
TOO_SLOW = "SUBSCRIBER_TOO_SLOW"


@lru_cache(maxsize=256)
def shareable(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether this document's operation is the plain live ``careEvents`` subscription:
    one operation selected, a subscription, whose selection is the one root field
    ``careEvents`` without ``after``. A document that does not parse, or has more than
    ``max_tokens`` tokens, is not shared (the ordinary path reports its error)."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLSyntaxError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [
            o for o in operations if o.name is not None and o.name.value == operation_name
        ]
    if len(operations) != 1:
        return False
    operation = operations[0]
    if operation.operation is not AstOperationType.SUBSCRIPTION:
        return False
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return False
    root = selections[0]
    return root.name.value == SHARED_FIELD and all(
        a.name.value != "after" for a in root.arguments or ()
    )


def scope_key(principal: Principal, purpose_of_use: str) -> tuple[object, ...]:
    """Everything about a caller that a ``careEvents`` answer can depend on: the access
    predicate and its parameters (organisation; the user when the role's scope goes
    through a team, caregiving or emergency access), the role (what is withheld from
    event data), the user for clinicians (Part 2 data through their emergency access)
    and the purpose of use (kept apart on purpose: it is the caller's declared reason)."""
    predicate, params = patient_scope_sql("patient", principal, "p.id", 2)
    user = principal.user_id if principal.role in CLINICAL_ROLES else None
    return (
        principal.role.value,
        principal.organisation_id,
        predicate,
        tuple(params),
        user,
        purpose_of_use,
    )


def group_key(
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    principal: Principal,
    purpose_of_use: str,
    *,
    max_tokens: int,
) -> tuple[object, ...] | None:
    """The key under which subscribers share one execution, or None when this one runs
    alone (not the plain live ``careEvents``, or variables that are not plain JSON)."""
    if not shareable(query, operation_name, max_tokens):
        return None
    try:
        canonical = json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return (query, operation_name, canonical, scope_key(principal, purpose_of_use))


_END = object()


@dataclass
class SharedResult(ExecutionResult):
    """A result one group's execution hands to each of its members: the same object for
    all of them. ``encoded_payload`` keeps the JSON text of its ``next`` message payload
    once the first member's connection made it (services/api/transport.py); ``False``
    when that text cannot be spliced and each member encodes its message whole."""

    encoded_payload: str | bool | None = field(default=None, repr=False, compare=False)


def shared(result: object) -> object:
    """What the members are given for one result of the group's execution: a plain
    execution result as a ``SharedResult`` (encoded once for all of them); anything else
    (an error before execution, which strawberry treats apart) as it is."""
    if type(result) is ExecutionResult:
        return SharedResult(result.data, result.errors, result.extensions)
    return result


@dataclass(eq=False)
class _Member:
    context: Any
    results: deque[object] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def give(self, item: object) -> None:
        self.results.append(item)
        self.ready.set()


@dataclass(eq=False)
class SharedAudience:
    """The members of one group, in the order they joined."""

    members: dict[_Member, None] = field(default_factory=dict)
    pending: list[_Member] | None = None

    def recipients(self) -> list[Any]:
        """The members who will receive the next result (fixed now: audit these)."""
        self.pending = list(self.members)
        return [m.context for m in self.pending]

    def take_pending(self) -> list[_Member]:
        """Who receives the result just executed: those fixed by ``recipients`` (still
        subscribed), else (a result that is not an event, e.g. an error) everyone."""
        chosen = self.pending if self.pending is not None else list(self.members)
        self.pending = None
        return [m for m in chosen if m in self.members]


# Starts a group's one execution, on a context for the group (the first member's, with
# the audience set on it): strawberry's stream of results.
Starter = Callable[[SharedAudience], Awaitable[AsyncGenerator[Any, None]]]


@dataclass(eq=False)
class _Group:
    key: tuple[object, ...]
    audience: SharedAudience = field(default_factory=SharedAudience)
    task: asyncio.Task[None] | None = None
    closed: bool = False


class FanoutHub:
    """The groups of one process, by key; a group lives while it has members."""

    def __init__(self) -> None:
        self._groups: dict[tuple[object, ...], _Group] = {}

    @property
    def group_count(self) -> int:
        return len(self._groups)

    @property
    def member_count(self) -> int:
        """Subscriptions served by a group."""
        return sum(len(g.audience.members) for g in self._groups.values())

    def join(
        self, key: tuple[object, ...], member: Subscriber, start: Starter
    ) -> AsyncGenerator[Any, None]:
        """The results ``member`` receives from the group under ``key`` (made, and its
        execution started with ``start``, if there is none)."""
        return self._member_results(key, member, start)

    async def _member_results(
        self, key: tuple[object, ...], context: Subscriber, start: Starter
    ) -> AsyncGenerator[Any, None]:
        group = self._groups.get(key)
        if group is None or group.closed:
            group = _Group(key)
            self._groups[key] = group
            group.task = asyncio.create_task(self._run(group, start))
        member = _Member(context)
        group.audience.members[member] = None
        context.active_subscriptions += 1
        try:
            while True:
                while not member.results:
                    member.ready.clear()
                    await member.ready.wait()
                item = member.results.popleft()
                if item is _END:
                    return
                yield item
        finally:
            context.active_subscriptions -= 1
            group.audience.members.pop(member, None)
            if not group.audience.members:
                self._close(group)

    def _close(self, group: _Group) -> None:
        if group.closed:
            return
        group.closed = True
        if self._groups.get(group.key) is group:
            del self._groups[group.key]
        if group.task is not None and group.task is not asyncio.current_task():
            group.task.cancel()

    async def _run(self, group: _Group, start: Starter) -> None:
        try:
            results = await start(group.audience)
            async with contextlib.aclosing(results):
                async for result in results:
                    result = shared(result)
                    for member in group.audience.take_pending():
                        if len(member.results) >= MEMBER_QUEUE_LIMIT:
                            self._too_slow(group, member)
                        else:
                            member.give(result)
        finally:
            self._close(group)
            for member in list(group.audience.members):
                member.give(_END)

    @staticmethod
    def _too_slow(group: _Group, member: _Member) -> None:
        """A member that fell too far behind: its waiting results are dropped, it is told
        to resubscribe from its last position, and its subscription ends."""
        group.audience.members.pop(member, None)
        member.results.clear()
        error = GraphQLError(
            "subscriber too slow; resubscribe with after", extensions={"code": TOO_SLOW}
        )
        member.give(ExecutionResult(data=None, errors=[error]))
        member.give(_END)
