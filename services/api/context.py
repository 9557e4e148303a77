"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from services.api.fanout import FanoutHub, SharedAudience
from services.api.feed import EventFeed
from services.api.purpose import PurposeOfUse, default_purpose
from services.auth import Principal
from services.bootstrap import Runtime
from services.eventstore import EventMetadata


@dataclass
class CareteamContext:
    runtime: Runtime
    request: Any
    response: Any = None
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: str(uuid4()))
    active_subscriptions: int = 0
    feed: EventFeed | None = None
    purpose: str | None = None
    # The process's groups of subscribers sharing one execution (services/api/fanout.py).
    fanout: FanoutHub | None = None
    # Set on a group's shared execution: the subscribers it answers, each of whose reads
    # is audited before the result is handed to them.
    audience: SharedAudience | None = None

    def runtime_feed(self) -> EventFeed:
        if self.feed is None:
            raise RuntimeError("the event feed is not running")
        return self.feed

    @property
    def purpose_of_use(self) -> str:
        """The HL7 purpose-of-use code this request or WebSocket connection runs under: the
        one resolved from ``X-Purpose-Of-Use`` (HTTP header or ``connection_init``), else
        the caller's role default (services/api/purpose.py)."""
        if self.purpose is not None:
            return self.purpose
        if self.principal is None:
            return PurposeOfUse.TREAT.value
        return default_purpose(self.principal.role).value

    def require_principal(self) -> Principal:
        if self.principal is None:  # the auth layer lets no such request through
            raise PermissionError("unauthenticated")
        return self.principal

    def metadata(self, *, purpose_of_use: str | None = None) -> EventMetadata:
        """Who is acting and why, for the events this request writes."""
        principal = self.require_principal()
        return EventMetadata(
            actor_id=str(principal.user_id),
            role=principal.role.value,
            organisation_id=str(principal.organisation_id),
            purpose_of_use=purpose_of_use or self.purpose_of_use,
            request_id=self.request_id,
            channel="graphql",
        )
