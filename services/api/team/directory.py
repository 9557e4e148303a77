"""An organisation and its people: the clinic's name and time zone, and its staff with
their names, credentials and roles.

Portals show names next to the ids in every view (``staff``, ``me``); administrators keep
the directory (``setOrganisation``, ``putStaffMember``), and every change is kept with who
made it. Once an organisation lists its staff, a care-team assignment must name listed,
active staff holding the role (``assignCareTeam`` refuses anyone else with
``NOT_IN_ROLE``); an organisation that lists nobody yet keeps working as before, so a
clinic can adopt the directory without a flag day. Staff records are not patient data.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import strawberry
from strawberry.types import Info

from domain.rules import NoRuleInForceError
from domain.rules.billing import BillingProgram, program_rules_for
from services.api.access import Rider
from services.api.commanding import run
from services.api.context import CareteamContext
from services.api.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    all_problems,
    result_union,
)
from services.api.registry.types import RegistryPageInfo
from services.auth import Principal, Role
from services.commands.handler import Refusal, Written
from services.commands.organisation import OpenOrganisationCalendar, SetOrganisationTimeZone
from services.database import Conn

# StaffRole and BillingProgram are registered as GraphQL enums in services.api.registry.types.

MAX_NAME = 200
MAX_CREDENTIALS = 100
MAX_PAGE = 200
# The roles a person on staff can hold (a partner is an outside organisation's system).
STAFF_ROLES = frozenset(Role) - {Role.PARTNER, Role.CAREGIVER}  # a caregiver is not staff
# Which directory role each care-team slot needs.
TEAM_SLOT_ROLE = {
    "careManagerId": Role.CARE_MANAGER,
    "pcpId": Role.PCP,
    "psychiatricConsultantId": Role.PSYCHIATRIST,
}


@strawberry.type(description="A billing program an organisation runs from a date of service.")
class BillingProgramPeriod:
    program: BillingProgram = strawberry.field(description="The program.")
    effective_from: date = strawberry.field(
        description="First day of the first month billed under it (until the next period)."
    )


@strawberry.type(description="A clinic or health system: its name and its calendar.")
class Organisation:
    id: UUID = strawberry.field(description="Organisation id (the tokens' organisation).")
    name: str = strawberry.field(description="Display name.")
    time_zone: str = strawberry.field(
        description="IANA time zone of the clinic, e.g. America/Los_Angeles."
    )

    @strawberry.field(
        description="Billing programs by start date, oldest first; none means collaborative "
        "care for every month."
    )
    async def billing_programs(
        self, info: Info[CareteamContext, None]
    ) -> list[BillingProgramPeriod]:
        async with info.context.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT program, effective_from FROM organisation_billing_programs
                   WHERE organisation_id = $1 ORDER BY effective_from""",
                self.id,
            )
        return [
            BillingProgramPeriod(
                program=BillingProgram(r["program"]), effective_from=r["effective_from"]
            )
            for r in rows
        ]


@strawberry.type(description="A member of staff as the directory lists them.")
class StaffMember:
    user_id: UUID = strawberry.field(description="The person's user id (the tokens' subject).")
    display_name: str = strawberry.field(description="Name to show, e.g. 'Dr. Ana Ruiz'.")
    credentials: str | None = strawberry.field(description="Credentials, e.g. 'MD', 'LCSW'.")
    roles: list[Role] = strawberry.field(description="The roles the person holds.")
    active: bool = strawberry.field(description="False once the person has left.")


@strawberry.type(description="Who is calling, from the verified token, and their entries.")
class Me:
    user_id: UUID = strawberry.field(description="Your user id.")
    role: Role = strawberry.field(description="The role of this session's token.")
    organisation_id: UUID = strawberry.field(description="Your organisation.")
    staff: StaffMember | None = strawberry.field(
        description="Your directory entry; null when your organisation has not listed you."
    )
    organisation: Organisation | None = strawberry.field(
        description="Your organisation's entry; null until an admin sets it."
    )


@strawberry.type(description="One member of staff and its cursor.")
class StaffEdge:
    cursor: str = strawberry.field(description="Opaque position of this row.")
    node: StaffMember = strawberry.field(description="The member of staff.")


@strawberry.type(description="A page of the staff directory, by name.")
class StaffConnection:
    edges: list[StaffEdge] = strawberry.field(description="The people on this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="People matching the filter, all pages.")


StaffResult = Annotated[
    StaffConnection | ValidationError | ForbiddenError,
    result_union("StaffResult", "A page of the staff directory, or why not."),
]
OrganisationResult = Annotated[
    Organisation | ValidationError | ForbiddenError | ConflictError,
    result_union("OrganisationResult", "The organisation as saved, or why nothing changed."),
]
StaffMemberResult = Annotated[
    StaffMember | ValidationError | ForbiddenError,
    result_union("StaffMemberResult", "The directory entry as saved, or why nothing changed."),
]


@strawberry.input(description="Your organisation's name and calendar.")
class SetOrganisationInput:
    name: str = strawberry.field(description="Display name, 1 to 200 characters.")
    time_zone: str = strawberry.field(description="An IANA time zone name.")


@strawberry.input(description="Run a billing program from the first day of a month.")
class SetBillingProgramInput:
    program: BillingProgram = strawberry.field(description="The program.")
    effective_from: date = strawberry.field(
        description="First day of the first month it applies to (a date of service)."
    )


BillingProgramsResult = Annotated[
    Organisation | ValidationError | ForbiddenError,
    result_union(
        "BillingProgramsResult", "The organisation with its programs, or why nothing changed."
    ),
]


@strawberry.input(description="A member of staff: added, or updated when already listed.")
class PutStaffMemberInput:
    user_id: UUID = strawberry.field(description="The person's user id (the tokens' subject).")
    display_name: str = strawberry.field(description="Name to show, 1 to 200 characters.")
    roles: list[Role] = strawberry.field(
        description="Roles held; at least one, not PARTNER or CAREGIVER."
    )
    credentials: str | None = strawberry.field(
        default=None, description="Credentials, at most 100 characters."
    )
    active: bool = strawberry.field(default=True, description="False once the person has left.")


def _text_problem(value: str, field: str, limit: int) -> ValidationError | None:
    if not value.strip() or len(value) > limit:
        return ValidationError(
            code="INVALID_TEXT", message=f"{field} must be 1 to {limit} characters", field=field
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return ValidationError(
            code="INVALID_TEXT", message=f"{field} has control characters", field=field
        )
    return None


def time_zone_problem(name: str) -> ValidationError | None:
    """A typed error unless ``name`` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ValidationError(
            code="UNKNOWN_TIME_ZONE",
            message="timeZone must be an IANA time zone name such as America/Los_Angeles",
            field="timeZone",
        )
    if name not in available_timezones():
        return ValidationError(
            code="UNKNOWN_TIME_ZONE",
            message="timeZone must be an IANA time zone name such as America/Los_Angeles",
            field="timeZone",
        )
    return None


def billing_program_problem(program: BillingProgram, since: date) -> ValidationError | None:
    """A typed error unless ``program`` has a rule in force from ``since`` (a month's 1st)."""
    if since.day != 1:
        return ValidationError(
            code="NOT_FIRST_OF_MONTH",
            message="effectiveFrom must be the first day of a month (billing is monthly)",
            field="effectiveFrom",
        )
    try:
        program_rules_for(program, since)
    except NoRuleInForceError as exc:
        return ValidationError(
            code="PROGRAM_NOT_IN_FORCE",
            message=f"program has no billing rule for this date of service: {exc}",
            field="effectiveFrom",
        )
    return None


async def minute_performer(
    info: Info[CareteamContext, None], performed_by: UUID | None
) -> tuple[UUID, str] | ValidationError:
    """Who did the work of a minute entry and in what role (issue 18).

    Default: the caller, in the role of their token. Another person must be listed,
    active staff of the caller's organisation (a caregiver or anyone else is not staff:
    ``NOT_STAFF`` naming ``performedBy``); their role is care_manager when they hold it,
    else their first listed role, so a PCP's own time is recorded as PCP time and does
    not count toward care manager minutes.
    """
    principal = info.context.require_principal()
    if performed_by is None or performed_by == principal.user_id:
        return principal.user_id, principal.role.value
    async with info.context.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT roles, active FROM staff WHERE organisation_id = $1 AND user_id = $2",
            principal.organisation_id,
            performed_by,
        )
    if row is None or not row["active"] or not row["roles"]:
        return ValidationError(
            code="NOT_STAFF",
            message="performedBy must be listed, active staff of your organisation",
            field="performedBy",
        )
    roles = list(row["roles"])
    return performed_by, (Role.CARE_MANAGER.value if Role.CARE_MANAGER.value in roles else roles[0])


def _member(row: Any) -> StaffMember:
    return StaffMember(
        user_id=row["user_id"],
        display_name=row["display_name"],
        credentials=row["credentials"],
        roles=[Role(r) for r in row["roles"]],
        active=row["active"],
    )


def _forbidden(operation: str) -> ForbiddenError:
    return ForbiddenError(code="ROLE_NOT_PERMITTED", message=f"{operation} is not permitted")


async def _record_change(
    conn: Conn, principal: Principal, kind: str, subject: UUID, detail: dict[str, Any]
) -> None:
    await conn.execute(
        """INSERT INTO directory_changes (actor_id, organisation_id, subject_id, kind, detail)
           VALUES ($1, $2, $3, $4, $5)""",
        principal.user_id,
        principal.organisation_id,
        subject,
        kind,
        detail,
    )


async def team_role_problem(
    conn: Conn, organisation_id: UUID, slots: dict[str, UUID | None]
) -> ValidationError | None:
    """``NOT_IN_ROLE`` naming the first slot whose person the organisation's directory does
    not list as active in that role; None when all hold it or nobody is listed yet."""
    named = {slot: user for slot, user in slots.items() if user is not None}
    if not named:
        return None
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM staff WHERE organisation_id = $1)", organisation_id
    ):
        return None  # the organisation has not listed its staff yet
    rows = await conn.fetch(
        "SELECT user_id, roles, active FROM staff WHERE organisation_id = $1 "
        "AND user_id = ANY($2::uuid[])",
        organisation_id,
        list(named.values()),
    )
    return _not_in_role(named, {r["user_id"]: r for r in rows})


def team_role_rider(organisation_id: UUID, slots: dict[str, UUID | None]) -> Rider | None:
    """``team_role_problem`` as a check in the policy's own statement (services/api/
    access.py ``Rider``): decided only when the policy lets the caller run the command
    (a refused caller is refused, typed and audited, and learns nothing from the
    directory), in the same statement as the check (the load's, without an idempotency
    key). None when no slot names anyone."""
    named = {slot: user for slot, user in slots.items() if user is not None}
    if not named:
        return None

    def sql(first: int) -> tuple[str, list[object]]:
        # The first named slot whose person is not listed, active, in the slot's role,
        # once the organisation lists anyone (``_not_in_role``, in SQL).
        org, names, users, roles = (f"${first + i}" for i in range(4))
        return (
            f"""SELECT r.slot
                FROM unnest({names}::text[], {users}::uuid[], {roles}::text[])
                     WITH ORDINALITY AS r(slot, user_id, role, n)
                WHERE EXISTS (SELECT 1 FROM staff WHERE organisation_id = {org})
                  AND NOT EXISTS (SELECT 1 FROM staff s
                                  WHERE s.organisation_id = {org} AND s.user_id = r.user_id
                                    AND s.active AND r.role = ANY(s.roles))
                ORDER BY r.n LIMIT 1""",
            [
                organisation_id,
                list(named),
                list(named.values()),
                [TEAM_SLOT_ROLE[slot].value for slot in named],
            ],
        )

    def refusal(slot: str) -> Refusal:
        problem = _slot_problem(slot)
        return Refusal("VALIDATION", problem.code, problem.message, field=problem.field)

    return Rider(sql=sql, refusal=refusal)


def _not_in_role(named: dict[str, UUID], listed: dict[UUID, Any]) -> ValidationError | None:
    """The first named slot whose person is not listed, active, in that slot's role."""
    for slot, user in named.items():
        row = listed.get(user)
        role = TEAM_SLOT_ROLE[slot]
        if row is None or not row["active"] or role.value not in row["roles"]:
            return _slot_problem(slot)
    return None


def _slot_problem(slot: str) -> ValidationError:
    return ValidationError(
        code="NOT_IN_ROLE",
        message=f"{slot} must name active staff of your organisation holding the "
        f"{TEAM_SLOT_ROLE[slot].value} role",
        field=slot,
    )


def _cursor(name: str, user_id: UUID) -> str:
    raw = json.dumps([name, str(user_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _after(cursor: str) -> tuple[str, UUID] | None:
    try:
        name, user = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(name), UUID(user)
    except (ValueError, TypeError, AttributeError):
        return None


@strawberry.type(description="Who you are, and the people of your organisation.")
class DirectoryQuery:
    @strawberry.field(description="You: your token's identity and your directory entries.")
    async def me(self, info: Info[CareteamContext, None]) -> Me:
        principal = info.context.require_principal()
        async with info.context.runtime.pool.acquire() as conn:
            staff = await conn.fetchrow(
                "SELECT * FROM staff WHERE user_id = $1 AND organisation_id = $2",
                principal.user_id,
                principal.organisation_id,
            )
            org = await conn.fetchrow(
                "SELECT * FROM organisations WHERE organisation_id = $1",
                principal.organisation_id,
            )
        return Me(
            user_id=principal.user_id,
            role=principal.role,
            organisation_id=principal.organisation_id,
            staff=_member(staff) if staff else None,
            organisation=(
                Organisation(
                    id=org["organisation_id"], name=org["name"], time_zone=org["time_zone"]
                )
                if org
                else None
            ),
        )

    @strawberry.field(
        description="Your organisation's staff by name: filter by role and by the start of "
        "the name (case-insensitive). Partners may not read it."
    )
    async def staff(
        self,
        info: Info[CareteamContext, None],
        role: Role | None = None,
        name_prefix: str | None = None,
        include_inactive: bool = False,
        first: int = 50,
        after: str | None = None,
    ) -> StaffResult:
        principal = info.context.require_principal()
        if principal.role is Role.PARTNER:
            return _forbidden("staff")
        if not 1 <= first <= MAX_PAGE:
            return ValidationError(
                code="INVALID_PAGE_SIZE", message=f"first must be 1 to {MAX_PAGE}", field="first"
            )
        position = _after(after) if after is not None else None
        if after is not None and position is None:
            return ValidationError(
                code="INVALID_CURSOR", message="after is not a cursor", field="after"
            )
        if name_prefix is not None and (problem := _text_problem(name_prefix, "namePrefix", 100)):
            return problem
        where = ["organisation_id = $1"]
        params: list[Any] = [principal.organisation_id]
        if role is not None:
            params.append(role.value)
            where.append(f"${len(params)} = ANY(roles)")
        if name_prefix is not None:
            params.append(
                name_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            where.append(f"lower(display_name) LIKE ${len(params)}")
        if not include_inactive:
            where.append("active")
        filtered = " AND ".join(where)
        page_where = filtered
        page_params = list(params)
        if position is not None:
            page_params += [position[0], position[1]]
            page_where += (
                f" AND (lower(display_name), user_id) > (${len(page_params) - 1}, "
                f"${len(page_params)})"
            )
        async with info.context.runtime.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM staff WHERE {filtered}", *params)
            rows = await conn.fetch(
                f"""SELECT * FROM staff WHERE {page_where}
                    ORDER BY lower(display_name), user_id LIMIT {first + 1}""",
                *page_params,
            )
        more = len(rows) > first
        rows = rows[:first]
        edges = [
            StaffEdge(cursor=_cursor(r["display_name"].lower(), r["user_id"]), node=_member(r))
            for r in rows
        ]
        return StaffConnection(
            edges=edges,
            page_info=RegistryPageInfo(
                has_next_page=more, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=total,
        )


@strawberry.type(description="Keep the directory (administrators of the organisation).")
class DirectoryMutation:
    @strawberry.mutation(description="Set your organisation's name and IANA time zone.")
    async def set_organisation(
        self, info: Info[CareteamContext, None], input: SetOrganisationInput
    ) -> OrganisationResult:
        principal = info.context.require_principal()
        if principal.role is not Role.ADMIN:
            return _forbidden("setOrganisation")
        # Every field problem at once (issue 13).
        if problem := all_problems(
            _text_problem(input.name, "name", MAX_NAME), time_zone_problem(input.time_zone)
        ):
            return problem
        # The zone goes into the log first (the organisation's stream, created the first
        # time): the read models that store days derive them in it (docs/clinical-time.md,
        # section 9). The same zone again writes no event.
        org_id = principal.organisation_id
        recorded = await run(
            info.context, SetOrganisationTimeZone(organisation=org_id, time_zone=input.time_zone)
        )
        if isinstance(recorded, NotFoundError):
            recorded = await run(
                info.context,
                OpenOrganisationCalendar(organisation=org_id, time_zone=input.time_zone),
            )
        if not isinstance(recorded, Written):
            return recorded
        async with info.context.runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO organisations (organisation_id, name, time_zone)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (organisation_id) DO UPDATE
                   SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone, updated_at = now()""",
                principal.organisation_id,
                input.name,
                input.time_zone,
            )
            await _record_change(
                conn,
                principal,
                "organisation_set",
                principal.organisation_id,
                {"name": input.name, "timeZone": input.time_zone},
            )
        return Organisation(
            id=principal.organisation_id, name=input.name, time_zone=input.time_zone
        )

    @strawberry.mutation(
        description="Add a member of staff to your organisation's directory, or update them."
    )
    async def put_staff_member(
        self, info: Info[CareteamContext, None], input: PutStaffMemberInput
    ) -> StaffMemberResult:
        principal = info.context.require_principal()
        if principal.role is not Role.ADMIN:
            return _forbidden("putStaffMember")
        roles = sorted(set(input.roles), key=lambda r: r.value)
        # Every field problem at once (issue 13).
        if problem := all_problems(
            _text_problem(input.display_name, "displayName", MAX_NAME),
            _text_problem(input.credentials, "credentials", MAX_CREDENTIALS)
            if input.credentials is not None
            else None,
            ValidationError(
                code="INVALID_ROLES",
                message="roles must list at least one staff role (not PARTNER or CAREGIVER)",
                field="roles",
            )
            if not roles or any(r not in STAFF_ROLES for r in roles)
            else None,
        ):
            return problem
        async with info.context.runtime.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO staff (user_id, organisation_id, display_name, credentials,
                                      roles, active)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (organisation_id, user_id) DO UPDATE
                   SET display_name = EXCLUDED.display_name,
                       credentials = EXCLUDED.credentials, roles = EXCLUDED.roles,
                       active = EXCLUDED.active, updated_at = now()
                   RETURNING *""",
                input.user_id,
                principal.organisation_id,
                input.display_name,
                input.credentials,
                [r.value for r in roles],
                input.active,
            )
            assert row is not None
            await _record_change(
                conn,
                principal,
                "staff_put",
                input.user_id,
                {
                    "displayName": input.display_name,
                    "credentials": input.credentials,
                    "roles": [r.value for r in roles],
                    "active": input.active,
                },
            )
        return _member(row)

    @strawberry.mutation(
        description="Run a billing program from a month on (administrators); every month from "
        "then is re-derived under it."
    )
    async def set_billing_program(
        self, info: Info[CareteamContext, None], input: SetBillingProgramInput
    ) -> BillingProgramsResult:
        principal = info.context.require_principal()
        if principal.role is not Role.ADMIN:
            return _forbidden("setBillingProgram")
        if problem := billing_program_problem(input.program, input.effective_from):
            return problem
        async with info.context.runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO organisation_billing_programs
                       (organisation_id, effective_from, program)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (organisation_id, effective_from) DO UPDATE
                   SET program = EXCLUDED.program, updated_at = now()""",
                principal.organisation_id,
                input.effective_from,
                input.program.value,
            )
            await _record_change(
                conn,
                principal,
                "billing_program_set",
                principal.organisation_id,
                {"program": input.program.value, "effectiveFrom": input.effective_from.isoformat()},
            )
            org = await conn.fetchrow(
                "SELECT * FROM organisations WHERE organisation_id = $1",
                principal.organisation_id,
            )
        return Organisation(
            id=principal.organisation_id,
            name=org["name"] if org else "",
            time_zone=org["time_zone"] if org else "UTC",
        )
