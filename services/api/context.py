"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from services.bootstrap import Runtime
from services.eventstore import EventMetadata


@dataclass
class CareteamContext:
    runtime: Runtime
    request: Any
    response: Any = None
    request_id: str = field(default_factory=lambda: str(uuid4()))

    def metadata(self) -> EventMetadata:
        """Who is acting. Until authentication lands (issue 4) the caller is the dev user."""
        return EventMetadata(
            actor_id="dev-user",
            role="admin",
            organisation_id="dev-org",
            request_id=self.request_id,
            channel="graphql",
        )
