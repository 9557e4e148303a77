"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import uuid4

from services.api.feed import EventFeed
from services.auth import Principal
from services.bootstrap import Runtime
from services.eventstore import EventMetadata

PURPOSES = frozenset({"TREATMENT", "PAYMENT", "OPERATIONS", "AUDIT", "EMERGENCY"})


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

    def runtime_feed(self) -> EventFeed:
        if self.feed is None:
            raise RuntimeError("the event feed is not running")
        return self.feed

    @cached_property
    def purpose_of_use(self) -> str:
        """The X-Purpose-Of-Use header (TREATMENT when absent or unknown); read once per
        request or WebSocket connection (a subscription audits every delivery)."""
        headers = getattr(self.request, "headers", None) or {}
        raw = str(headers.get("x-purpose-of-use", "TREATMENT")).upper()
        return raw if raw in PURPOSES else "TREATMENT"

    def require_principal(self) -> Principal:
        if self.principal is None:  # the auth layer lets no such request through
            raise PermissionError("unauthenticated")
        return self.principal

    def metadata(self) -> EventMetadata:
        """Who is acting, for the events this request writes."""
        principal = self.require_principal()
        return EventMetadata(
            actor_id=str(principal.user_id),
            role=principal.role.value,
            organisation_id=str(principal.organisation_id),
            purpose_of_use=self.purpose_of_use,
            request_id=self.request_id,
            channel="graphql",
        )
