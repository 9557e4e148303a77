"""How long each step of a referral and of a consultation may take before it is overdue.

Source: docs/clinical-rules.md, "Consultation loop" ("every step is timed; overdue steps show on
the role's queue") and "Referrals" ("a referral not closed within its expected time is
overdue"). The referral's own deadline is its ``expected_by`` day (domain.referral,
``Referral.is_overdue``); the step limits below are policy choices of ours, picked from
the rhythm of collaborative care: the psychiatric consultant reviews the caseload weekly,
so a requested consultation is drafted within 7 days; a draft is signed within 2 days;
the PCP acknowledges within 7 days and answers each recommendation within 14; an
accepted recommendation is in practice within 30 days. A referral is sent within 2
days, answered by the receiving organisation within 14, scheduled within 14 of its
acceptance, and the report back is expected within 7 days of the appointment.

Rule versions (``RULE_BOOK``), chosen by the day the loop started (the request), so a
later policy change never moves the deadlines of a loop already running:
    2024.1  from 2024-01-01  the limits above

This module belongs beside domain/rules/ (same RuleBook, same shape); it lives in
projections/ only because domain/ was not ours to edit when it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from domain.rules import RuleBook

__all__ = ["RULE_BOOK", "RULE_ID", "TrackerRules", "rules_for"]

RULE_ID = "trackers.step_limits"


@dataclass(frozen=True)
class TrackerRules:
    """One version of the step limits, in days after the previous step."""

    version: str
    effective_from: date
    referral_send_days: int
    referral_answer_days: int
    referral_schedule_days: int
    referral_report_back_days: int
    consultation_draft_days: int
    consultation_sign_days: int
    consultation_acknowledge_days: int
    consultation_respond_days: int
    consultation_implement_days: int


RULES_2024 = TrackerRules(
    version="2024.1",
    effective_from=date(2024, 1, 1),
    referral_send_days=2,
    referral_answer_days=14,
    referral_schedule_days=14,
    referral_report_back_days=7,
    consultation_draft_days=7,
    consultation_sign_days=2,
    consultation_acknowledge_days=7,
    consultation_respond_days=14,
    consultation_implement_days=30,
)

RULE_BOOK: RuleBook[TrackerRules] = RuleBook(RULE_ID, (RULES_2024,))


def rules_for(started_on: date) -> TrackerRules:
    """The step limits for a loop started on ``started_on`` (the first version before it)."""
    return RULE_BOOK.in_force(max(started_on, RULE_BOOK.versions[0].effective_from))
