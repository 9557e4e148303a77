"""Which careEvents subscribers share one execution (services/api/fanout.py), and how a
group hands results only to the members whose reads were recorded for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest

from services.api.fanout import (
    MEMBER_QUEUE_LIMIT,
    TOO_SLOW,
    FanoutHub,
    SharedAudience,
    group_key,
    shareable,
)
from services.auth import Principal, Role

TOKENS = 2_000


def key_of(*args: Any) -> Any:
    return group_key(*args, max_tokens=TOKENS)


PLAIN = "subscription { careEvents { eventType payload } }"
ORG = uuid4()


def principal(role: Role, *, user: Any = None, org: Any = ORG) -> Principal:
    return Principal(user_id=user or uuid4(), role=role, organisation_id=org)


@pytest.mark.parametrize(
    ("query", "operation_name", "expected"),
    [
        (PLAIN, None, True),
        ("subscription($ids: [UUID!]) { careEvents(patientIds: $ids) { eventType } }", None, True),
        (
            "subscription S { e: careEvents { ...F } } fragment F on CareEvent { position }",
            "S",
            True,
        ),
        ('subscription { careEvents(after: "x") { eventType } }', None, False),
        ("subscription($a: String) { careEvents(after: $a) { eventType } }", None, False),
        ("subscription { partnerEvents { eventType } }", None, False),
        ("subscription { careEvents { eventType } partnerEvents { eventType } }", None, False),
        ("subscription { ... on Subscription { careEvents { eventType } } }", None, False),
        ("query { careEvents { eventType } }", None, False),
        (
            "subscription A { careEvents { position } } subscription B { careEvents { position } }",
            None,
            False,
        ),
        (
            "subscription A { careEvents { position } } subscription B { careEvents { position } }",
            "B",
            True,
        ),
        ("subscription { careEvents { position }", None, False),
    ],
)
def test_only_the_plain_live_care_events_subscription_is_shared(
    query: str, operation_name: str | None, expected: bool
) -> None:
    assert shareable(query, operation_name, 2_000) is expected


def test_administrators_of_one_organisation_share_with_the_same_document_and_variables() -> None:
    one, two = principal(Role.ADMIN), principal(Role.ADMIN)
    variables = {"ids": ["a", "b"]}
    assert key_of(PLAIN, variables, None, one, "TREAT") == key_of(
        PLAIN, dict(reversed(variables.items())), None, two, "TREAT"
    )
    assert key_of(PLAIN, None, None, one, "TREAT") == key_of(PLAIN, {}, None, two, "TREAT")


@pytest.mark.parametrize(
    "differs",
    [
        {"variables": {"ids": ["b"]}},
        {"query": "subscription { careEvents { eventType } }"},
        {"principal": principal(Role.COMPLIANCE)},
        {"principal": principal(Role.ADMIN, org=uuid4())},
        {"purpose": "HOPERAT"},
    ],
)
def test_anything_that_could_change_the_answer_separates_groups(differs: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "query": PLAIN,
        "variables": {"ids": ["a"]},
        "principal": principal(Role.ADMIN),
        "purpose": "TREAT",
    }
    other = {**base, **differs}

    def key(a: dict[str, Any]) -> Any:
        return key_of(a["query"], a["variables"], None, a["principal"], a["purpose"])

    assert key(base) is not None and key(other) is not None
    assert key(base) != key(other)


@pytest.mark.parametrize("role", [Role.CARE_MANAGER, Role.PCP, Role.PSYCHIATRIST])
def test_clinicians_share_only_with_their_own_subscriptions(role: Role) -> None:
    """A clinician's scope is their care teams and emergency accesses (and Part 2 through
    their own access): two clinicians never share, one clinician's two tabs do."""
    user = uuid4()
    mine = key_of(PLAIN, None, None, principal(role, user=user), "TREAT")
    assert mine == key_of(PLAIN, None, None, principal(role, user=user), "TREAT")
    assert mine != key_of(PLAIN, None, None, principal(role), "TREAT")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.COMPLIANCE])
def test_roles_whose_scope_is_the_organisation_share_across_users(role: Role) -> None:
    """Their access predicate names only the organisation, and they see the same data."""
    assert key_of(PLAIN, None, None, principal(role), "TREAT") == key_of(
        PLAIN, None, None, principal(role), "TREAT"
    )


def test_a_document_over_the_token_limit_is_not_parsed_for_sharing() -> None:
    """The ordinary path refuses it with its own error."""
    long = "subscription { careEvents { " + "eventType " * TOKENS + "} }"
    assert not shareable(long, None, TOKENS)


def test_variables_that_are_not_json_are_not_shared() -> None:
    assert key_of(PLAIN, {"x": object()}, None, principal(Role.ADMIN), "TREAT") is None


@dataclass(eq=False)
class Caller:
    name: str
    active_subscriptions: int = 0


class Source:
    """A stand-in for a group's execution: each ``event`` fixes its recipients (as the
    resolver does before recording their reads) and yields that list as the result."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[str] = asyncio.Queue()
        self.audience: SharedAudience | None = None
        self.started = 0
        self.closed = asyncio.Event()

    async def start(self, audience: SharedAudience) -> AsyncGenerator[Any, None]:
        self.started += 1
        self.audience = audience
        return self._results(audience)

    async def _results(self, audience: SharedAudience) -> AsyncGenerator[Any, None]:
        try:
            while True:
                name = await self.events.get()
                audited = [c.name for c in audience.recipients()]
                yield (name, audited)
        finally:
            self.closed.set()


async def next_of(results: AsyncGenerator[Any, None]) -> Any:
    return await asyncio.wait_for(anext(results), 2)


async def test_a_group_runs_once_and_gives_each_result_to_those_audited_for_it() -> None:
    hub, source = FanoutHub(), Source()
    first, second = Caller("first"), Caller("second")
    one = hub.join(("k",), first, source.start)
    pending = asyncio.ensure_future(next_of(one))
    await asyncio.sleep(0)
    source.events.put_nowait("e1")
    assert await pending == ("e1", ["first"])
    two = hub.join(("k",), second, source.start)
    pending_two = asyncio.ensure_future(next_of(two))
    await asyncio.sleep(0)
    source.events.put_nowait("e2")
    assert await next_of(one) == ("e2", ["first", "second"])
    assert await pending_two == ("e2", ["first", "second"])
    assert source.started == 1 and hub.group_count == 1 and hub.member_count == 2
    assert first.active_subscriptions == second.active_subscriptions == 1
    await one.aclose()
    assert first.active_subscriptions == 0 and hub.member_count == 1
    source.events.put_nowait("e3")
    assert await next_of(two) == ("e3", ["second"])
    await two.aclose()
    await asyncio.wait_for(source.closed.wait(), 2)
    assert hub.group_count == 0


async def test_a_member_who_joins_after_an_event_was_audited_does_not_receive_it() -> None:
    hub = FanoutHub()
    gate = asyncio.Event()
    audience_seen: list[SharedAudience] = []

    async def start(audience: SharedAudience) -> AsyncGenerator[Any, None]:
        audience_seen.append(audience)

        async def results() -> AsyncGenerator[Any, None]:
            audited = [c.name for c in audience.recipients()]
            await gate.wait()  # the read records being written
            yield ("e1", audited)
            audited = [c.name for c in audience.recipients()]
            yield ("e2", audited)

        return results()

    early, late = Caller("early"), Caller("late")
    one = hub.join(("k",), early, start)
    first = asyncio.ensure_future(next_of(one))
    await asyncio.sleep(0.01)
    two = hub.join(("k",), late, start)
    second = asyncio.ensure_future(next_of(two))
    await asyncio.sleep(0.01)
    gate.set()
    assert await first == ("e1", ["early"])
    assert await second == ("e2", ["early", "late"])
    assert await next_of(one) == ("e2", ["early", "late"])
    await one.aclose()
    await two.aclose()


async def test_a_member_too_far_behind_is_told_and_ends_without_holding_the_group() -> None:
    hub, source = FanoutHub(), Source()
    slow, keen = Caller("slow"), Caller("keen")
    lagging = hub.join(("k",), slow, source.start)
    reading = hub.join(("k",), keen, source.start)
    total = MEMBER_QUEUE_LIMIT + 2

    async def read_all() -> list[Any]:
        return [await next_of(reading) for _ in range(total)]

    keen_results = asyncio.ensure_future(read_all())
    lagging_first = asyncio.ensure_future(next_of(lagging))
    await asyncio.sleep(0)
    for n in range(total):
        source.events.put_nowait(f"e{n}")
        await asyncio.sleep(0)
    assert [r[0] for r in await keen_results] == [f"e{n}" for n in range(total)]
    assert (await lagging_first)[0] == "e0"
    waiting = [await next_of(lagging)]
    while isinstance(waiting[-1], tuple):
        waiting.append(await next_of(lagging))
    # Its waiting results were dropped: it is told at once, not after a thousand events.
    assert len(waiting) == 1
    assert waiting[-1].data is None and waiting[-1].errors[0].extensions == {"code": TOO_SLOW}
    with pytest.raises(StopAsyncIteration):
        await next_of(lagging)
    assert slow.active_subscriptions == 0 and hub.member_count == 1
    source.events.put_nowait("after")
    assert await next_of(reading) == ("after", ["keen"])
    await reading.aclose()
