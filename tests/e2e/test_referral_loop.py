"""Closing the referral loop over HTTP: request to report back, and the ways it must not close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.journey import CareTeam, command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

REFERRAL = """... on ReferralPayload {
    logPosition
    referral {
      id patientId service status reason expectedBy requestedBy requestedAt sentAt acceptedAt
      scheduledAt appointmentAt closedAt declineReason cancelReason reportBackSummary version
    }
}"""


def step(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    return command(server, operation, input, token, REFERRAL)


def referral_of(result: dict[str, Any]) -> dict[str, Any]:
    assert result["__typename"] == "ReferralPayload", result
    referral: dict[str, Any] = result["referral"]
    return referral


def requested(server: ServerProcess, team: CareTeam, service: str = "PSYCHOTHERAPY") -> str:
    """A referral the care manager requested; its id."""
    result = step(
        server,
        "requestReferral",
        {
            "patientId": team.patient_id,
            "service": service,
            "reason": "Weekly psychotherapy.",
            "expectedBy": "2999-01-01",
        },
        team.care_manager,
    )
    referral_id: str = referral_of(result)["id"]
    return referral_id


async def test_a_referral_closes_only_with_its_report_back(
    server: ServerProcess, db_dsn: str
) -> None:
    """Requested, sent, accepted, scheduled, completed; completing early or without the
    report back is a typed error that writes nothing, and a completed referral is final."""
    team = enrolled_patient(server)
    first = referral_of(
        step(
            server,
            "requestReferral",
            {
                "patientId": team.patient_id,
                "service": "SPECIALTY_PSYCHIATRY",
                "reason": "Treatment-resistant depression.",
                "expectedBy": "2999-01-01",
            },
            team.care_manager,
        )
    )
    assert first["status"] == "REQUESTED"
    assert first["service"] == "SPECIALTY_PSYCHIATRY"
    assert first["requestedBy"] == str(team.care_manager_id)
    assert first["patientId"] == team.patient_id
    referral_id = first["id"]

    early = step(
        server,
        "completeReferral",
        {"referralId": referral_id, "reportBackSummary": "Seen."},
        team.care_manager,
    )
    assert early == {"__typename": "InvalidTransitionError", "code": "INVALID_REFERRAL_TRANSITION"}
    assert await event_count(db_dsn, referral_id) == 1

    sent = referral_of(step(server, "sendReferral", {"referralId": referral_id}, team.pcp))
    accepted = referral_of(
        step(server, "acceptReferral", {"referralId": referral_id}, team.care_manager)
    )
    # The appointment took place a minute ago (recorded late): completion may follow it.
    appointment = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    scheduled = referral_of(
        step(
            server,
            "scheduleReferral",
            {"referralId": referral_id, "appointmentAt": appointment.isoformat()},
            team.care_manager,
        )
    )
    assert [sent["status"], accepted["status"], scheduled["status"]] == [
        "SENT",
        "ACCEPTED",
        "SCHEDULED",
    ]
    assert sent["sentAt"] and accepted["acceptedAt"] and scheduled["scheduledAt"]
    assert datetime.fromisoformat(scheduled["appointmentAt"]) == appointment
    assert await event_count(db_dsn, referral_id) == 4

    for blank in ("", "   "):
        no_report = step(
            server,
            "completeReferral",
            {"referralId": referral_id, "reportBackSummary": blank},
            team.care_manager,
        )
        assert no_report == {
            "__typename": "ValidationError",
            "code": "REPORT_BACK_REQUIRED",
            "field": "reportBackSummary",
        }
    assert await event_count(db_dsn, referral_id) == 4

    completed = referral_of(
        step(
            server,
            "completeReferral",
            {"referralId": referral_id, "reportBackSummary": "Assessed; medication adjusted."},
            team.care_manager,
        )
    )
    assert completed["status"] == "COMPLETED"
    assert completed["reportBackSummary"] == "Assessed; medication adjusted."
    assert completed["closedAt"]
    assert completed["version"] == 5

    for operation, fields in (
        ("cancelReferral", {"reason": "Changed our mind."}),
        ("completeReferral", {"reportBackSummary": "Again."}),
        ("sendReferral", {}),
    ):
        final = step(server, operation, {"referralId": referral_id, **fields}, team.care_manager)
        assert final == {
            "__typename": "InvalidTransitionError",
            "code": "INVALID_REFERRAL_TRANSITION",
        }
    assert await event_count(db_dsn, referral_id) == 5


async def test_a_declined_or_cancelled_referral_needs_a_reason_and_is_final(
    server: ServerProcess, db_dsn: str
) -> None:
    """Declining and cancelling without a reason are refused; with one, the loop is closed."""
    team = enrolled_patient(server)
    declined_id = requested(server, team)
    referral_of(step(server, "sendReferral", {"referralId": declined_id}, team.care_manager))

    no_reason = step(
        server, "declineReferral", {"referralId": declined_id, "reason": " "}, team.care_manager
    )
    assert no_reason == {
        "__typename": "ValidationError",
        "code": "REASON_REQUIRED",
        "field": "reason",
    }
    assert await event_count(db_dsn, declined_id) == 2

    declined = referral_of(
        step(
            server,
            "declineReferral",
            {"referralId": declined_id, "reason": "No capacity this quarter."},
            team.care_manager,
        )
    )
    assert declined["status"] == "DECLINED"
    assert declined["declineReason"] == "No capacity this quarter."
    late = step(server, "acceptReferral", {"referralId": declined_id}, team.care_manager)
    assert late["__typename"] == "InvalidTransitionError"

    cancelled_id = requested(server, team, "COMMUNITY_SERVICES")
    unsent = step(server, "acceptReferral", {"referralId": cancelled_id}, team.care_manager)
    assert unsent == {"__typename": "InvalidTransitionError", "code": "INVALID_REFERRAL_TRANSITION"}
    blank = step(server, "cancelReferral", {"referralId": cancelled_id, "reason": ""}, team.pcp)
    assert blank == {"__typename": "ValidationError", "code": "REASON_REQUIRED", "field": "reason"}
    cancelled = referral_of(
        step(
            server,
            "cancelReferral",
            {"referralId": cancelled_id, "reason": "Patient moved away."},
            team.pcp,
        )
    )
    assert (cancelled["status"], cancelled["cancelReason"]) == ("CANCELLED", "Patient moved away.")
    assert await event_count(db_dsn, cancelled_id) == 2


def test_bad_referral_input_and_unknown_referrals_get_typed_errors(server: ServerProcess) -> None:
    """An expected-by day before the request, a future time, a made-up id, a consultant's try."""
    team = enrolled_patient(server)
    base = {"patientId": team.patient_id, "service": "OTHER", "reason": "Housing support."}

    past = step(server, "requestReferral", {**base, "expectedBy": "2000-01-01"}, team.care_manager)
    assert past == {
        "__typename": "ValidationError",
        "code": "INVALID_EXPECTED_BY",
        "field": "expectedBy",
    }

    future = step(
        server,
        "requestReferral",
        {**base, "expectedBy": "2999-01-01", "occurredAt": "2999-01-01T00:00:00Z"},
        team.care_manager,
    )
    assert future == {
        "__typename": "ValidationError",
        "code": "OCCURRED_IN_FUTURE",
        "field": "occurredAt",
    }

    missing = step(
        server,
        "sendReferral",
        {"referralId": "00000000-0000-4000-8000-00000000dead"},
        team.care_manager,
    )
    assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND"}

    by_consultant = step(
        server, "requestReferral", {**base, "expectedBy": "2999-01-01"}, team.psychiatrist
    )
    assert by_consultant == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
