"""Read-your-writes waiters of the projection runner: a waiter on a partition is released
once every read model's checkpoint in that partition reached its position, and one on no
partition once every partition did; what each read model reached is kept as checkpoints
move (``_publish``), not recomputed per waiter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from services.eventstore import START, LogPosition
from services.projector import partitions as parts
from services.projector.runner import ProjectionRunner

COUNT = 4


class _Store:
    def on_append(self, _callback: Any) -> None:
        pass


class _Projection:
    def __init__(self, name: str) -> None:
        self.name = name

    async def apply(self, conn: Any, events: Sequence[Any]) -> None:
        pass

    async def reset(self, conn: Any) -> None:
        pass


def _runner() -> ProjectionRunner:
    projections = [_Projection("a"), _Projection("b")]
    return ProjectionRunner(_Store(), projections, partitions=COUNT)  # type: ignore[arg-type]


def _at(position: int) -> LogPosition:
    return LogPosition(1, position)


async def _pending(task: asyncio.Task[None]) -> bool:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return not task.done()


async def test_a_waiter_is_released_when_every_read_model_of_its_partition_reached_it() -> None:
    runner = _runner()
    assert runner.position("a", 1) == START
    one = asyncio.create_task(runner.wait_for(_at(5), 10.0))  # no patient: every partition
    patient = next(p for p in iter(uuid4, None) if runner.partition_of(p) == 1)
    task = asyncio.create_task(runner.wait_for(_at(5), 10.0, patient))
    assert await _pending(task) and await _pending(one)

    await runner._publish({parts.checkpoint_name("a", 1): _at(7)})
    assert await _pending(task)  # b has not reached it in partition 1
    await runner._publish({parts.checkpoint_name("b", 0): _at(9)})
    assert await _pending(task)  # another partition
    await runner._publish({parts.checkpoint_name("b", 1): _at(5)})
    await task
    assert runner._reached(1) == _at(5)
    assert runner.position("a", 1) == _at(7)

    # The same checkpoints again change nothing; every partition is needed for ``one``.
    await runner._publish({parts.checkpoint_name("b", 1): _at(5)})
    everywhere = {parts.checkpoint_name(n, k): _at(6) for n in "ab" for k in range(COUNT)}
    del everywhere[parts.checkpoint_name("a", 3)]
    await runner._publish(everywhere)
    assert await _pending(one)
    assert runner._reached(None) == START
    await runner._publish({parts.checkpoint_name("a", 3): _at(5)})
    await one
    assert runner._reached(None) == _at(5)
    assert runner.position("a") == _at(5)
