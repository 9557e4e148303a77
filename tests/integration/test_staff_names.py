"""Display names for ids are batched (issue 13): the names a page asks for together are
read with one query, with the same answers as one query per name."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.api.types import staff_name

ORG = UUID("00000000-0000-4000-8000-00000000a001")
OTHER_ORG = UUID("00000000-0000-4000-8000-00000000a002")


class CountingPool:
    """The real pool, counting the connections the loader takes (one per query here)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.acquired = 0

    @asynccontextmanager
    async def acquire(self) -> Any:
        self.acquired += 1
        async with self.pool.acquire() as conn:
            yield conn


async def test_a_page_of_names_is_one_query_with_the_same_answers(db_dsn: str) -> None:
    ana, ben, cy, elsewhere = uuid4(), uuid4(), uuid4(), uuid4()
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO staff (user_id, organisation_id, display_name, roles) "
                "VALUES ($1, $2, $3, ARRAY['care_manager'])",
                [
                    (ana, ORG, "Ana Ruiz"),
                    (ben, ORG, "Ben Okafor"),
                    (cy, ORG, "Cy Álvarez"),
                    (elsewhere, OTHER_ORG, "Not Ours"),
                ],
            )
        counting = CountingPool(pool)
        principal = SimpleNamespace(organisation_id=ORG)
        ctx = SimpleNamespace(
            runtime=SimpleNamespace(pool=counting), require_principal=lambda: principal
        )
        info: Any = SimpleNamespace(context=ctx)
        asked = [ana, ben, ana, None, cy, uuid4(), elsewhere, ben]
        names = await asyncio.gather(*(staff_name(info, u) for u in asked))
        assert names == [
            "Ana Ruiz",
            "Ben Okafor",
            "Ana Ruiz",
            None,
            "Cy Álvarez",
            None,  # not in the directory
            None,  # another organisation's staff is not named
            "Ben Okafor",
        ]
        assert counting.acquired == 1

        # Not cached across batches: a renamed colleague shows the new name next time.
        async with pool.acquire() as conn:
            await conn.execute("UPDATE staff SET display_name = 'Ana R.' WHERE user_id = $1", ana)
        assert await staff_name(info, ana) == "Ana R."
        assert counting.acquired == 2
    finally:
        await pool.close()
