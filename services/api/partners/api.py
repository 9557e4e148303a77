"""Partner feeds and the accounting of disclosures over GraphQL.

Three groups for schema.py to merge into the root types:

- ``PartnerQuery``: ``partners``, ``partner``, ``partnerDeadLetters`` (administrators of
  the owning organisation), ``partnerEventTypes`` (the public contract, any caller) and
  ``disclosures(patientId:)`` (compliance staff of the patient's organisation);
- ``PartnerMutation``: register, update, deactivate and reactivate a partner, replay its
  feed from a position or a time, redeliver its dead letters (administrators);
- ``PartnerSubscription``: ``partnerEvents``, the feed of a partner that takes it by
  GraphQL subscription (partner tokens of that organisation).

Authorisation follows ``services.api.authz`` (role x relation); the rows live in
``PARTNER_POLICY`` here until they join ``POLICY``. Refusals are audited by ``deny``;
every registry change is in the partner's history and in ``access_log``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from typing import Annotated, Any, cast
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from services.api.authz import Denied, Grant, Relation, record_access
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.errors import (
    ForbiddenError,
    NotFoundError,
    ValidationError,
    camel_path,
    result_union,
)
from services.api.purpose import PurposeOfUse
from services.api.registry.types import PageInfo
from services.auth import Principal, Role
from services.partners import disclosures as accounting
from services.partners import registry
from services.partners.contract import CATALOGUE, Publisher
from services.partners.delivery import PartnerOptions
from services.partners.registry import (
    Actor,
    DeadLetterStatus,
    DeliveryKind,
    PartnerNotFoundError,
    PartnerRegistryError,
    PartnerSpec,
    PartnerUpdate,
)
from services.partners.subscription import FeedClosedError, follow

# Operation -> who may do it (same shape as authz.POLICY). The registry belongs to the
# administrators of the organisation whose patients a feed discloses; the accounting of
# disclosures is produced by compliance staff (the privacy office) for the patient's
# organisation: care teams do not need it to treat, so minimum necessary keeps it from
# them. Partners read only their own feed.
PARTNER_POLICY: dict[str, tuple[Grant, ...]] = {
    "partners": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "registerPartner": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "updatePartner": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "deactivatePartner": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "reactivatePartner": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "replayPartnerFeed": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "redeliverPartnerDeadLetters": (Grant(frozenset({Role.ADMIN}), Relation.OWN_ORG),),
    "disclosures": (Grant(frozenset({Role.COMPLIANCE}), Relation.ORG),),
    "partnerEvents": (Grant(frozenset({Role.PARTNER}), Relation.OWN_ORG),),
}

MAX_PAGE = 200


def _allowed(principal: Principal, operation: str) -> bool:
    return any(principal.role in g.roles for g in PARTNER_POLICY[operation])


async def _admin(ctx: CareteamContext, operation: str) -> Principal | ForbiddenError:
    """The caller if they may run a registry operation; otherwise the audited refusal."""
    principal = ctx.require_principal()
    if _allowed(principal, operation):
        return principal
    refused: ForbiddenError = await deny(ctx, Denied(operation, "ROLE_NOT_PERMITTED"), None)
    return refused


async def _audit_change(ctx: CareteamContext, operation: str) -> None:
    """An allowed registry change joins the audit trail (and its hash chain)."""
    async with ctx.runtime.pool.acquire() as conn:
        await record_access(
            conn,
            principal=ctx.principal,
            operation=operation,
            patient_id=None,
            outcome="allowed",
            reason=None,
            purpose_of_use=PurposeOfUse.HOPERAT.value,
            request_id=ctx.request_id,
        )


def _actor(ctx: CareteamContext, principal: Principal) -> Actor:
    return Actor(
        actor_id=principal.user_id,
        role=principal.role.value,
        organisation_id=principal.organisation_id,
        request_id=ctx.request_id,
    )


def _invalid(exc: PartnerRegistryError) -> ValidationError:
    """The registry's refusal, naming the input field as the API spells it (camelCase)."""
    return ValidationError(code=exc.code, message=exc.message, field=camel_path(exc.field))


def _registration(done: registry.Registered) -> PartnerRegistration:
    return PartnerRegistration(partner=Partner.of(done.partner), webhook_secret=done.webhook_secret)


def _not_found(partner_id: UUID) -> NotFoundError:
    return NotFoundError(code="PARTNER_NOT_FOUND", message=f"no partner {partner_id}")


# --- types ----------------------------------------------------------------------------


@strawberry.enum(description="How a partner receives its feed.")
class PartnerDelivery(enum.Enum):
    KAFKA = "kafka"
    WEBHOOK = "webhook"
    GRAPHQL = "graphql"


@strawberry.enum(
    description="Where a set-aside message stands. A webhook message whose attempt failed "
    "is RETRYING, and its patient's later messages are HELD behind it (other patients' "
    "flow on); after the last attempt it is DEAD and its patient's queue waits for a "
    "redelivery request."
)
class PartnerDeadLetterStatus(enum.Enum):
    RETRYING = "retrying"
    HELD = "held"
    DEAD = "dead"
    REDELIVERY_REQUESTED = "redelivery_requested"
    DELIVERED = "delivered"
    REDELIVERED = "redelivered"
    WITHHELD = "withheld"


PartnerChangeKind = strawberry.enum(
    registry.ChangeKind,
    name="PartnerChangeKind",
    description="What a change to a partner's registration, or an action on its feed, was.",
)


@strawberry.type(description="One change to a partner's registration, or an action on its feed.")
class PartnerChange:
    at: datetime = strawberry.field(description="When it was made.")
    change: str = strawberry.field(
        description="registered, updated, deactivated, reactivated, secret_rotated, replayed "
        "or redelivery_requested.",
        deprecation_reason="Use changeKind (an enum).",
    )
    version: int = strawberry.field(description="The registration's version after it.")
    actor_id: UUID | None = strawberry.field(description="Who made it.")
    role: str | None = strawberry.field(description="In which role.")
    request_id: str | None = strawberry.field(description="The API request it belongs to.")
    details: JSON = strawberry.field(description="The configuration or action (never secrets).")

    @strawberry.field(description="What the change was.")
    def change_kind(self) -> registry.ChangeKind:
        return registry.ChangeKind(self.change)


@strawberry.type(description="Where a partner's feed stands in the log.")
class PartnerFeedStatus:
    position: str = strawberry.field(
        description="The checkpoint: the feed has delivered (or passed) everything up to it."
    )
    epoch: int = strawberry.field(description="How many times the feed was replayed.")
    dead_letters: int = strawberry.field(description="Messages dead-lettered and not resent.")
    waiting: int = strawberry.field(
        description="Messages set aside and not yet delivered: retrying, held behind an "
        "earlier one of the same patient, dead or asked for again."
    )


@strawberry.type(description="A partner organisation's feed registration (no secrets).")
class Partner:
    id: UUID = strawberry.field(description="The registration's id.")
    organisation_id: UUID = strawberry.field(
        description="The recipient organisation, as patients' data-sharing consents name it."
    )
    name: str = strawberry.field(description="The recipient's name (for the accounting).")
    purpose: str = strawberry.field(description="Why data is disclosed to it (accounting).")
    allowed_event_types: list[str] = strawberry.field(
        description="Public event types it receives, e.g. referral.requested.v1."
    )
    delivery: PartnerDelivery = strawberry.field(description="How it receives them.")
    kafka_topic: str | None = strawberry.field(description="Its Kafka topic (Kafka delivery).")
    webhook_url: str | None = strawberry.field(description="Its endpoint (webhook delivery).")
    active: bool = strawberry.field(description="False once deactivated: its feed stops.")
    version: int = strawberry.field(description="Grows with every change.")
    created_at: datetime = strawberry.field(description="When it was registered.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @strawberry.field(description="Where its feed stands.")
    async def feed(self, info: Info[CareteamContext, None]) -> PartnerFeedStatus:
        async with info.context.runtime.pool.acquire() as conn:
            position, epoch = await registry.feed_position(conn, self.id)
            counts = await conn.fetchrow(
                """SELECT count(*) FILTER (WHERE status IN ('dead', 'redelivery_requested'))
                              AS dead,
                          count(*) FILTER (WHERE status IN ('retrying', 'held', 'dead',
                                                            'redelivery_requested')) AS waiting
                   FROM partner_dead_letters WHERE partner_id = $1""",
                self.id,
            )
        assert counts is not None
        return PartnerFeedStatus(
            position=position.encode(),
            epoch=epoch,
            dead_letters=int(counts["dead"]),
            waiting=int(counts["waiting"]),
        )

    @strawberry.field(description="Every change to the registration, oldest first.")
    async def history(self, info: Info[CareteamContext, None]) -> list[PartnerChange]:
        async with info.context.runtime.pool.acquire() as conn:
            changes = await registry.history(conn, self.id)
        return [
            PartnerChange(
                at=c.at,
                change=c.change.value,
                version=c.version,
                actor_id=c.actor_id,
                role=c.role,
                request_id=c.request_id,
                details=cast(JSON, c.details),
            )
            for c in changes
        ]

    @classmethod
    def of(cls, p: registry.Partner) -> Partner:
        return cls(
            id=p.partner_id,
            organisation_id=p.organisation_id,
            name=p.name,
            purpose=p.purpose,
            allowed_event_types=sorted(p.allowed_event_types),
            delivery=PartnerDelivery(p.delivery.value),
            kafka_topic=p.kafka_topic,
            webhook_url=p.webhook_url,
            active=p.active,
            version=p.version,
            created_at=p.created_at,
            updated_at=p.updated_at,
        )


@strawberry.type(
    description="A registration after a change, with a new webhook secret if one was made."
)
class PartnerRegistration:
    partner: Partner = strawberry.field(description="The registration as it is now.")
    webhook_secret: str | None = strawberry.field(
        description="The new webhook signing secret. Shown this once: store it now. Null when "
        "no new secret was made."
    )


@strawberry.type(description="The partners of your organisation.")
class PartnerList:
    partners: list[Partner] = strawberry.field(description="By name.")


@strawberry.type(description="A public event type: what partners can receive, and its schema.")
class PartnerEventType:
    key: str = strawberry.field(description="Name and version, e.g. referral.requested.v1.")
    name: str = strawberry.field(description="The type's name.")
    version: int = strawberry.field(description="Its version (a breaking change is a new one).")
    cloudevent_type: str = strawberry.field(description="The CloudEvents `type` attribute.")
    description: str = strawberry.field(description="What it discloses.")
    json_schema: JSON = strawberry.field(description="The JSON Schema of its data.")
    schema_url: str = strawberry.field(
        description="Where that schema is served without authentication: the `dataschema` "
        "of its messages."
    )


@strawberry.type(
    description="A message set aside: its attempt failed, or it waits behind one of the same "
    "patient that did."
)
class PartnerDeadLetter:
    id: int = strawberry.field(description="Pass to redeliverPartnerDeadLetters.")
    event_id: UUID = strawberry.field(description="The internal event.")
    public_type: str = strawberry.field(description="The public event type.")
    status: PartnerDeadLetterStatus = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(
        description="Delivery attempts so far (stored; the X-Careteam-Delivery-Attempt header "
        "of the latest one carried this number)."
    )
    last_error: str = strawberry.field(description="The last failure (HTTP status or error).")
    dead_at: datetime = strawberry.field(
        description="When it was set aside, or, once DEAD, when it was dead-lettered."
    )
    updated_at: datetime = strawberry.field(description="When it last changed.")


@strawberry.type(description="One page of a partner's dead letters, oldest first.")
class PartnerDeadLetterPage:
    dead_letters: list[PartnerDeadLetter] = strawberry.field(description="This page.")
    end_cursor: int | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type(description="A replay: the feed re-sends what follows its new position.")
class PartnerReplay:
    partner_id: UUID = strawberry.field(description="The partner.")
    after_position: str = strawberry.field(
        description="The feed's new checkpoint: events after it are sent again (consent "
        "permitting, then and now)."
    )


@strawberry.type(description="Dead letters marked for another delivery.")
class PartnerRedelivery:
    partner_id: UUID = strawberry.field(description="The partner.")
    requested: int = strawberry.field(description="How many were marked.")


@strawberry.type(description="One disclosure of a patient's data to a partner (45 CFR 164.528).")
class Disclosure:
    id: int = strawberry.field(description="Stable id.")
    disclosed_at: datetime = strawberry.field(description="When it was sent.")
    recipient_organisation_id: UUID = strawberry.field(description="The recipient.")
    recipient_name: str = strawberry.field(description="The recipient's name at the time.")
    description: str = strawberry.field(description="What was disclosed.")
    purpose: str = strawberry.field(description="Why.")
    channel: PartnerDelivery = strawberry.field(description="How it was delivered.")
    public_event_type: str = strawberry.field(description="The public event type sent.")
    part2: bool = strawberry.field(
        description="A 42 CFR Part 2 record (sent with its redisclosure notice)."
    )
    outcome: str = strawberry.field(
        description="delivered, or failed: a webhook attempt sent the data but the receiver "
        "did not confirm it (it may have kept it)."
    )
    attempt: int | None = strawberry.field(
        description="The webhook attempt number of a failed attempt."
    )
    consent_ids: list[UUID] = strawberry.field(
        description="The patient's consents the disclosure relied on."
    )
    recipient_address: str | None = strawberry.field(
        description="Where it was sent: the partner's webhook URL or Kafka topic as registered "
        "now (the partner history has earlier ones); null for a GraphQL subscription."
    )
    event_occurred_at: datetime | None = strawberry.field(
        description="When the disclosed event happened (its clinical effective time)."
    )


# The accounting pages with the one PageInfo of every connection (issue 13).
DisclosurePageInfo = PageInfo


@strawberry.type(description="One disclosure and its cursor.")
class DisclosureEdge:
    cursor: str = strawberry.field(description="Opaque position of this entry (an `after`).")
    node: Disclosure = strawberry.field(description="The disclosure.")


@strawberry.type(
    description="One page of a patient's accounting of disclosures, oldest first (a connection)."
)
class DisclosurePage:
    edges: list[DisclosureEdge] = strawberry.field(
        description="This page's disclosures with their cursors."
    )
    disclosures: list[Disclosure] = strawberry.field(
        description="This page.",
        deprecation_reason="Use edges { node } (a Relay-style connection).",
    )
    page_info: PageInfo = strawberry.field(description="How to get the next page.")
    max_page_size: int = strawberry.field(
        default=MAX_PAGE, description="The largest `first` accepted."
    )


@strawberry.type(description="One event of a partner's feed (a CloudEvent).")
class PartnerEvent:
    id: str = strawberry.field(description="CloudEvents id: stable, drop duplicates by it.")
    type: str = strawberry.field(description="CloudEvents type, e.g. org.careteam.partner...")
    subject: str = strawberry.field(description="The patient's pseudonym for this partner.")
    time: str = strawberry.field(description="When careteam recorded it (RFC 3339).")
    sequence: str = strawberry.field(description="Log position; resume with `after`.")
    dataschema: str = strawberry.field(
        description="The URL of the JSON Schema of `data` (served without authentication)."
    )
    source: str = strawberry.field(
        description="CloudEvents source: this deployment and the organisation disclosing."
    )
    confidentiality: str | None = strawberry.field(
        description="42-CFR-Part-2 on Part 2 data (the notice is in `data`)."
    )
    data: JSON = strawberry.field(description="The minimum-necessary data.")


@strawberry.input(description="A partner organisation to send a consented feed to.")
class RegisterPartnerInput:
    organisation_id: UUID = strawberry.field(
        description="The recipient organisation (what patients' consents name)."
    )
    name: str = strawberry.field(description="Its name, as the accounting shows it.")
    purpose: str = strawberry.field(description="Why it receives data (for the accounting).")
    allowed_event_types: list[str] = strawberry.field(
        description="Public event types it may receive (see partnerEventTypes)."
    )
    delivery: PartnerDelivery = strawberry.field(description="How it receives them.")
    kafka_topic: str | None = strawberry.field(
        default=None, description="Kafka delivery: its topic on careteam's cluster."
    )
    webhook_url: str | None = strawberry.field(
        default=None, description="Webhook delivery: its https endpoint."
    )


@strawberry.input(description="Changes to a registration; omitted fields stay as they are.")
class UpdatePartnerInput:
    partner_id: UUID = strawberry.field(description="The registration.")
    name: str | None = strawberry.field(default=None, description="New name.")
    purpose: str | None = strawberry.field(default=None, description="New purpose.")
    allowed_event_types: list[str] | None = strawberry.field(
        default=None, description="New set of public event types (replaces the old one)."
    )
    delivery: PartnerDelivery | None = strawberry.field(default=None, description="New channel.")
    kafka_topic: str | None = strawberry.field(default=None, description="New Kafka topic.")
    webhook_url: str | None = strawberry.field(default=None, description="New endpoint.")
    rotate_webhook_secret: bool = strawberry.field(
        default=False,
        description="Make a new webhook secret. The old one keeps signing beside it (two "
        "signatures in webhook-signature) for CARETEAM_PARTNERS_WEBHOOK_SECRET_OVERLAP_SECONDS "
        "(default 24 hours), then stops; a rotation during that overlap is refused "
        "(ROTATION_IN_PROGRESS).",
    )


@strawberry.input(description="Send a partner's feed again from a point; give exactly one.")
class ReplayPartnerFeedInput:
    partner_id: UUID = strawberry.field(description="The partner.")
    after_position: str | None = strawberry.field(
        default=None,
        description="Re-send events after this log position (a `sequence` the partner "
        "received; `0.0` for the whole log).",
    )
    from_time: datetime | None = strawberry.field(
        default=None, description="Re-send events recorded at or after this instant."
    )


@strawberry.input(description="Deliver dead letters again.")
class RedeliverPartnerDeadLettersInput:
    partner_id: UUID = strawberry.field(description="The partner.")
    ids: list[int] | None = strawberry.field(
        default=None, description="Which dead letters; all of the partner's when omitted."
    )


PartnerRegistrationResult = Annotated[
    PartnerRegistration | ValidationError | NotFoundError | ForbiddenError,
    result_union("PartnerRegistrationResult", "The registration, or why nothing changed."),
]
PartnerResult = Annotated[
    Partner | NotFoundError | ForbiddenError,
    result_union("PartnerResult", "A partner registration, or why it cannot be shown or changed."),
]
PartnersResult = Annotated[
    PartnerList | ForbiddenError,
    result_union("PartnersResult", "Your organisation's partners, or why they cannot be shown."),
]
PartnerDeadLettersResult = Annotated[
    PartnerDeadLetterPage | NotFoundError | ForbiddenError,
    result_union("PartnerDeadLettersResult", "Dead letters, or why they cannot be shown."),
]
PartnerReplayResult = Annotated[
    PartnerReplay | ValidationError | NotFoundError | ForbiddenError,
    result_union("PartnerReplayResult", "The replay, or why the feed did not move."),
]
PartnerRedeliveryResult = Annotated[
    PartnerRedelivery | NotFoundError | ForbiddenError,
    result_union("PartnerRedeliveryResult", "How many were marked, or why none were."),
]
DisclosuresResult = Annotated[
    DisclosurePage | ValidationError | NotFoundError | ForbiddenError,
    result_union("DisclosuresResult", "A page of the accounting, or why it cannot be shown."),
]


# --- queries --------------------------------------------------------------------------


@strawberry.type(description="Partner feeds and the accounting of disclosures.")
class PartnerQuery:
    @strawberry.field(description="Your organisation's partner registrations (administrators).")
    async def partners(
        self, info: Info[CareteamContext, None], include_inactive: bool = False
    ) -> PartnersResult:
        principal = await _admin(info.context, "partners")
        if isinstance(principal, ForbiddenError):
            return principal
        async with info.context.runtime.pool.acquire() as conn:
            found = await registry.list_partners(
                conn, owner=principal.organisation_id, include_inactive=include_inactive
            )
        return PartnerList(partners=[Partner.of(p) for p in found])

    @strawberry.field(description="One partner registration of your organisation.")
    async def partner(self, info: Info[CareteamContext, None], id: UUID) -> PartnerResult:
        principal = await _admin(info.context, "partners")
        if isinstance(principal, ForbiddenError):
            return principal
        try:
            async with info.context.runtime.pool.acquire() as conn:
                found = await registry.get_partner(conn, id, owner=principal.organisation_id)
        except PartnerNotFoundError:
            return _not_found(id)
        return Partner.of(found)

    @strawberry.field(description="A partner's dead letters, oldest first.")
    async def partner_dead_letters(
        self,
        info: Info[CareteamContext, None],
        partner_id: UUID,
        status: PartnerDeadLetterStatus | None = None,
        first: int = 50,
        after: int | None = None,
    ) -> PartnerDeadLettersResult:
        principal = await _admin(info.context, "partners")
        if isinstance(principal, ForbiddenError):
            return principal
        async with info.context.runtime.pool.acquire() as conn:
            try:
                await registry.get_partner(conn, partner_id, owner=principal.organisation_id)
            except PartnerNotFoundError:
                return _not_found(partner_id)
            letters = await registry.dead_letters(
                conn,
                partner_id,
                status=DeadLetterStatus(status.value) if status else None,
                after_id=after or 0,
                limit=max(1, min(first, MAX_PAGE)),
            )
        return PartnerDeadLetterPage(
            dead_letters=[
                PartnerDeadLetter(
                    id=d.id,
                    event_id=d.event_id,
                    public_type=d.public_type,
                    status=PartnerDeadLetterStatus(d.status.value),
                    attempts=d.attempts,
                    last_error=d.last_error,
                    dead_at=d.dead_at,
                    updated_at=d.updated_at,
                )
                for d in letters
            ],
            end_cursor=letters[-1].id if letters else None,
        )

    @strawberry.field(description="The public event types partners can receive, with schemas.")
    def partner_event_types(self, info: Info[CareteamContext, None]) -> list[PartnerEventType]:
        publisher = Publisher(info.context.runtime.settings.public_url)
        return [
            PartnerEventType(
                key=t.key,
                name=t.name,
                version=t.version,
                cloudevent_type=t.cloudevent_type,
                description=t.description,
                json_schema=cast(JSON, publisher.published_schema(t.key)),
                schema_url=publisher.schema_url(t.key),
            )
            for t in CATALOGUE
        ]

    @strawberry.field(
        description="The accounting of disclosures of one patient: every delivery to a "
        "partner (date, recipient, what, why), oldest first (compliance staff)."
    )
    async def disclosures(
        self,
        info: Info[CareteamContext, None],
        patient_id: UUID,
        first: int = 50,
        after: str | None = None,
    ) -> DisclosuresResult:
        ctx = info.context
        principal = ctx.require_principal()
        if not _allowed(principal, "disclosures"):
            return await deny(ctx, Denied("disclosures", "ROLE_NOT_PERMITTED"), patient_id)
        if not 1 <= first <= MAX_PAGE:
            return ValidationError(
                code="PAGE_SIZE", message=f"first must be 1..{MAX_PAGE}", field="first"
            )
        async with ctx.runtime.pool.acquire() as conn:
            in_org = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM rm_patient_access
                                  WHERE patient_id = $1 AND organisation_id = $2)""",
                patient_id,
                principal.organisation_id,
            )
            if not in_org:
                denied = Denied("disclosures", "PATIENT_NOT_IN_ORGANISATION", not_found=True)
                return await deny(ctx, denied, patient_id)
            try:
                page = await accounting.for_patient(conn, patient_id, first=first, after=after)
            except ValueError:
                return ValidationError(
                    code="INVALID_CURSOR",
                    message="after is not a cursor of this list",
                    field="after",
                )
        await record_reads(ctx, "disclosures", [patient_id], selected_fields(info))
        disclosures = [
            Disclosure(
                id=d.id,
                disclosed_at=d.disclosed_at,
                recipient_organisation_id=d.recipient_organisation_id,
                recipient_name=d.recipient_name,
                description=d.description,
                purpose=d.purpose,
                channel=PartnerDelivery(d.channel.value),
                public_event_type=d.public_type,
                part2=d.part2,
                outcome=d.outcome,
                attempt=d.attempt,
                consent_ids=list(d.consent_ids),
                recipient_address=d.recipient_address,
                event_occurred_at=d.event_occurred_at,
            )
            for d in page.disclosures
        ]
        return DisclosurePage(
            edges=[
                DisclosureEdge(cursor=accounting.encode_cursor(d.id), node=d) for d in disclosures
            ],
            disclosures=disclosures,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


# --- mutations ------------------------------------------------------------------------


@strawberry.type(
    description="Partner registry commands (administrators of the owning organisation)."
)
class PartnerMutation:
    @strawberry.mutation(
        description="Register a partner organisation's feed; it starts at the head of the log. "
        "A webhook partner's signing secret is in the answer, once."
    )
    async def register_partner(
        self, info: Info[CareteamContext, None], input: RegisterPartnerInput
    ) -> PartnerRegistrationResult:
        ctx = info.context
        principal = await _admin(ctx, "registerPartner")
        if isinstance(principal, ForbiddenError):
            return principal
        spec = PartnerSpec(
            organisation_id=input.organisation_id,
            name=input.name,
            purpose=input.purpose,
            allowed_event_types=input.allowed_event_types,
            delivery=DeliveryKind(input.delivery.value),
            kafka_topic=input.kafka_topic,
            webhook_url=input.webhook_url,
        )
        try:
            async with ctx.runtime.pool.acquire() as conn:
                done = await registry.register(
                    conn,
                    spec,
                    owner=principal.organisation_id,
                    actor=_actor(ctx, principal),
                    now=ctx.runtime.clock(),
                )
        except PartnerRegistryError as exc:
            return _invalid(exc)
        await _audit_change(ctx, "registerPartner")
        return PartnerRegistration(
            partner=Partner.of(done.partner), webhook_secret=done.webhook_secret
        )

    @strawberry.mutation(description="Change a partner's registration (a new version).")
    async def update_partner(
        self, info: Info[CareteamContext, None], input: UpdatePartnerInput
    ) -> PartnerRegistrationResult:
        ctx = info.context
        principal = await _admin(ctx, "updatePartner")
        if isinstance(principal, ForbiddenError):
            return principal
        changes = PartnerUpdate(
            name=input.name,
            purpose=input.purpose,
            allowed_event_types=input.allowed_event_types,
            delivery=DeliveryKind(input.delivery.value) if input.delivery else None,
            kafka_topic=input.kafka_topic,
            webhook_url=input.webhook_url,
            rotate_webhook_secret=input.rotate_webhook_secret,
        )
        overlap = PartnerOptions.from_env().webhook_secret_overlap_seconds
        try:
            async with ctx.runtime.pool.acquire() as conn:
                done = await registry.update(
                    conn,
                    input.partner_id,
                    changes,
                    owner=principal.organisation_id,
                    actor=_actor(ctx, principal),
                    now=ctx.runtime.clock(),
                    secret_overlap=timedelta(seconds=overlap),
                )
        except PartnerRegistryError as exc:
            return _invalid(exc)
        except PartnerNotFoundError:
            return _not_found(input.partner_id)
        await _audit_change(ctx, "updatePartner")
        return PartnerRegistration(
            partner=Partner.of(done.partner), webhook_secret=done.webhook_secret
        )

    @strawberry.mutation(description="Stop a partner's feed (its registration and history stay).")
    async def deactivate_partner(
        self, info: Info[CareteamContext, None], partner_id: UUID
    ) -> PartnerResult:
        return await _set_active(info.context, "deactivatePartner", partner_id, active=False)

    @strawberry.mutation(description="Resume a deactivated partner's feed where it stopped.")
    async def reactivate_partner(
        self, info: Info[CareteamContext, None], partner_id: UUID
    ) -> PartnerResult:
        return await _set_active(info.context, "reactivatePartner", partner_id, active=True)

    @strawberry.mutation(
        description="Send a partner's feed again from a log position or a time. Consent is "
        "judged as always: at each event's place in the log and again now."
    )
    async def replay_partner_feed(
        self, info: Info[CareteamContext, None], input: ReplayPartnerFeedInput
    ) -> PartnerReplayResult:
        ctx = info.context
        principal = await _admin(ctx, "replayPartnerFeed")
        if isinstance(principal, ForbiddenError):
            return principal
        if (input.after_position is None) == (input.from_time is None):
            return ValidationError(
                code="ONE_START_REQUIRED",
                message="give exactly one of afterPosition and fromTime",
                field="afterPosition",
            )
        requested: dict[str, Any] = {}
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await registry.get_partner(conn, input.partner_id, owner=principal.organisation_id)
                if input.after_position is not None:
                    after = registry.parse_position(input.after_position)
                    requested["after_position"] = input.after_position
                else:
                    assert input.from_time is not None
                    if input.from_time.tzinfo is None:
                        return ValidationError(
                            code="NAIVE_DATETIME",
                            message="fromTime needs a time zone",
                            field="fromTime",
                        )
                    after = await registry.position_before(conn, input.from_time)
                    requested["from_time"] = input.from_time.isoformat()
                moved = await registry.replay(
                    conn,
                    input.partner_id,
                    after,
                    owner=principal.organisation_id,
                    actor=_actor(ctx, principal),
                    now=ctx.runtime.clock(),
                    requested=requested,
                )
        except PartnerRegistryError as exc:
            return _invalid(exc)
        except PartnerNotFoundError:
            return _not_found(input.partner_id)
        await _audit_change(ctx, "replayPartnerFeed")
        return PartnerReplay(partner_id=input.partner_id, after_position=moved.encode())

    @strawberry.mutation(description="Deliver a partner's dead letters again (consent permitting).")
    async def redeliver_partner_dead_letters(
        self, info: Info[CareteamContext, None], input: RedeliverPartnerDeadLettersInput
    ) -> PartnerRedeliveryResult:
        ctx = info.context
        principal = await _admin(ctx, "redeliverPartnerDeadLetters")
        if isinstance(principal, ForbiddenError):
            return principal
        try:
            async with ctx.runtime.pool.acquire() as conn:
                count = await registry.request_redelivery(
                    conn,
                    input.partner_id,
                    input.ids,
                    owner=principal.organisation_id,
                    actor=_actor(ctx, principal),
                    now=ctx.runtime.clock(),
                )
        except PartnerNotFoundError:
            return _not_found(input.partner_id)
        await _audit_change(ctx, "redeliverPartnerDeadLetters")
        return PartnerRedelivery(partner_id=input.partner_id, requested=count)


async def _set_active(
    ctx: CareteamContext, operation: str, partner_id: UUID, *, active: bool
) -> PartnerResult:
    principal = await _admin(ctx, operation)
    if isinstance(principal, ForbiddenError):
        return principal
    try:
        async with ctx.runtime.pool.acquire() as conn:
            partner = await registry.set_active(
                conn,
                partner_id,
                active,
                owner=principal.organisation_id,
                actor=_actor(ctx, principal),
                now=ctx.runtime.clock(),
            )
    except PartnerNotFoundError:
        return _not_found(partner_id)
    await _audit_change(ctx, operation)
    return Partner.of(partner)


# --- subscription ---------------------------------------------------------------------


@strawberry.type(description="Live partner feeds over WebSocket (graphql-transport-ws).")
class PartnerSubscription:
    @strawberry.subscription(
        description="Your organisation's feed, for partners registered for GraphQL delivery: "
        "consented, minimum-necessary events in log order. Without `after` it continues "
        "from where your feed stands; `partnerId` is needed when you have several feeds."
    )
    async def partner_events(
        self,
        info: Info[CareteamContext, None],
        partner_id: UUID | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[PartnerEvent, None]:
        ctx = info.context
        principal = ctx.require_principal()
        if not _allowed(principal, "partnerEvents"):
            await deny(ctx, Denied("partnerEvents", "ROLE_NOT_PERMITTED"), None)
            raise GraphQLError("partnerEvents is not permitted", extensions={"code": "FORBIDDEN"})
        start = None
        if after is not None:
            try:
                start = registry.parse_position(after, field="after")
                async with ctx.runtime.pool.acquire() as conn:
                    await registry.check_position(conn, start, field="after")
            except PartnerRegistryError as exc:
                raise GraphQLError(
                    exc.message, extensions={"code": exc.code, "field": "after"}
                ) from None
        async with ctx.runtime.pool.acquire() as conn:
            feeds = await registry.graphql_partners(conn, principal.organisation_id)
        chosen = [f for f in feeds if partner_id is None or f.partner_id == partner_id]
        if len(chosen) != 1:
            code = "PARTNER_NOT_FOUND" if not chosen else "PARTNER_ID_REQUIRED"
            raise GraphQLError("no single GraphQL feed of yours matches", extensions={"code": code})
        try:
            async for message in follow(
                ctx.runtime.store,
                chosen[0],
                after=start,
                clock=ctx.runtime.clock,
                publisher=Publisher(ctx.runtime.settings.public_url),
            ):
                attrs = message.attributes()
                yield PartnerEvent(
                    id=attrs["id"],
                    type=attrs["type"],
                    subject=attrs["subject"],
                    time=attrs["time"],
                    sequence=attrs["sequence"],
                    dataschema=attrs["dataschema"],
                    source=attrs["source"],
                    confidentiality=attrs.get("confidentiality"),
                    data=cast(JSON, message.data),
                )
        except FeedClosedError:
            return
