"""A clinic on a real PostgreSQL database: domain commands in, read models queried over a
test schema holding RegistryQuery alone (the root schema merges it; tests/e2e covers
that) with an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import strawberry

from domain.patient import Patient
from projections.registry import all_projections
from services.api.context import CareteamContext
from services.api.registry.queries import RegistryQuery
from services.application import Application
from services.audit.reads import AuditWriter
from services.auth import Principal, Role
from services.bootstrap import Runtime
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore
from services.projector.runner import ProjectionRunner
from services.settings import Settings

A = TypeVar("A")

ORG = UUID("00000000-0000-4000-8000-00000000000a")
CARE_MANAGER = UUID("00000000-0000-4000-8000-0000000000c1")
OTHER_CARE_MANAGER = UUID("00000000-0000-4000-8000-0000000000c9")
PCP = UUID("00000000-0000-4000-8000-0000000000c2")
PSYCHIATRIST = UUID("00000000-0000-4000-8000-0000000000c3")

# Enrollment day of the clinic's patients; commands are recorded "now" = NOW.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
META = EventMetadata(actor_id=str(CARE_MANAGER), role="care_manager", organisation_id=str(ORG))

SCHEMA = strawberry.Schema(query=RegistryQuery)


def day(n: int, hours: int = 0) -> datetime:
    """``n`` days (and ``hours``) after T0."""
    return T0 + timedelta(days=n, hours=hours)


def on(n: int) -> date:
    return day(n).date()


def phq9(total: int, item9: int = 0) -> list[int | None]:
    """Nine answers adding up to ``total`` with item 9 answered ``item9``."""
    answers: list[int | None] = [0] * 9
    answers[8] = item9
    rest = total - item9
    for i in range(8):
        answers[i] = min(3, rest)
        rest -= min(3, rest)
    return answers


@dataclass
class Clinic:
    """The write side (Application) and the read side (runner + schema) of one database."""

    runtime: Runtime
    today: datetime = field(default=T0)

    @property
    def app(self) -> Application:
        return self.runtime.app

    async def patient(
        self,
        *,
        family_name: str = "Person",
        enrolled_at: datetime = T0,
        care_manager: UUID = CARE_MANAGER,
        treatment: bool = True,
    ) -> UUID:
        """Registers, teams up and enrolls a synthetic patient; returns its id."""
        patient = Patient.register(
            given_name="Test",
            family_name=family_name,
            birth_date=date(1980, 5, 17),
            mrn=f"MRN-{uuid4().hex[:6]}",
            organisation_id=ORG,
            occurred_at=enrolled_at - timedelta(days=7),
            now=NOW,
        )
        patient.assign_care_team(
            care_manager_id=care_manager,
            pcp_id=PCP,
            psychiatric_consultant_id=PSYCHIATRIST,
            occurred_at=enrolled_at - timedelta(days=7),
            now=NOW,
        )
        patient.enroll(occurred_at=enrolled_at, now=NOW)
        if treatment:
            patient.start_treatment(occurred_at=enrolled_at, now=NOW)
        await self.app.create(patient, metadata=META, now=NOW)
        return patient.id

    async def on_patient(
        self, patient_id: UUID, command: Callable[[Patient], object], *, now: datetime = NOW
    ) -> None:
        await self.app.execute(Patient, patient_id, command, metadata=META, now=now)

    async def create(self, aggregate: Any) -> None:
        await self.app.create(aggregate, metadata=META, now=NOW)

    async def run(self, cls: type[A], stream_id: UUID, command: Callable[[A], object]) -> None:
        await self.app.execute(cls, stream_id, command, metadata=META, now=NOW)

    async def catch_up(self) -> None:
        await self.runtime.projector.catch_up()

    async def query(
        self,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        role: Role = Role.CARE_MANAGER,
        user: UUID = CARE_MANAGER,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Runs ``document`` as ``user`` with the clock reading ``at`` (default ``today``)."""
        clock_value = at or self.today
        self.runtime.clock = lambda: clock_value
        context = CareteamContext(
            runtime=self.runtime,
            request=None,
            principal=Principal(user_id=user, role=role, organisation_id=ORG),
        )
        result = await SCHEMA.execute(document, variable_values=variables, context_value=context)
        assert result.errors is None, result.errors
        assert result.data is not None
        return result.data

    async def query_errors(self, document: str, variables: dict[str, Any] | None = None) -> Any:
        """Runs ``document`` as the care manager and returns its errors."""
        self.runtime.clock = lambda: self.today
        context = CareteamContext(
            runtime=self.runtime,
            request=None,
            principal=Principal(user_id=CARE_MANAGER, role=Role.CARE_MANAGER, organisation_id=ORG),
        )
        result = await SCHEMA.execute(document, variable_values=variables, context_value=context)
        return result.errors


@contextlib.asynccontextmanager
async def open_clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    """A clinic on the given (fresh, migrated) database; the projector runs only when asked."""
    settings = Settings()
    pool = await create_pool(db_dsn, settings)
    audit_task: asyncio.Task[None] | None = None
    try:
        store = EventStore(pool)
        runtime = Runtime(
            settings=settings,
            dsn=db_dsn,
            pool=pool,
            store=store,
            app=Application(store),
            projector=ProjectionRunner(store, all_projections()),
            audit=AuditWriter(pool),
        )
        audit_task = asyncio.create_task(runtime.audit.run())
        yield Clinic(runtime)
    finally:
        if audit_task is not None:
            audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await audit_task
        await pool.close()


async def read_model_positions(conn: Any) -> dict[str, int]:
    """Each read model's checkpoint position, the lowest over its partitions (read models
    without partition checkpoints yet are absent)."""
    names = [p.name for p in all_projections()]
    rows = await conn.fetch(
        """SELECT split_part(name, '@', 1) AS name, min(position) AS position FROM checkpoints
           WHERE name LIKE '%@%' AND split_part(name, '@', 1) = ANY($1::text[])
           GROUP BY 1""",
        names,
    )
    return {r["name"]: int(r["position"]) for r in rows}
