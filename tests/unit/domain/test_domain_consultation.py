"""The ConsultationNote aggregate: draft, sign (immutable), addenda, acknowledgement,
responses to recommendations, implementation, replay and snapshots.
"""

import json
from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from domain.common import NoteStatus, RecommendationResponse
from domain.consultation import ConsultationNote
from domain.errors import (
    BlankValueError,
    DuplicateIdError,
    NoteAlreadyAcknowledgedError,
    NoteAlreadySignedError,
    NoteNotAcknowledgedError,
    NoteNotDraftedError,
    NoteNotSignedError,
    NoteWithdrawnError,
    OutOfOrderError,
    ReasonRequiredError,
    RecommendationAlreadyAnsweredError,
    RecommendationAlreadyImplementedError,
    RecommendationNotAcceptedError,
    RecommendationNotFoundError,
)
from tests.unit.domain.domain_support import (
    CARE_MANAGER,
    NOW,
    PCP,
    PSYCHIATRIST,
    T0,
    assert_replays,
    day,
    names,
)

PATIENT = uuid4()


def new_note() -> ConsultationNote:
    """A consultation requested by the care manager."""
    return ConsultationNote.request(
        patient_id=PATIENT,
        requested_by=CARE_MANAGER,
        question="No response after 10 weeks of sertraline 50 mg; next step?",
        occurred_at=T0,
        now=NOW,
    )


def drafted_note() -> tuple[ConsultationNote, UUID, UUID]:
    """A drafted note with two recommendations."""
    note = new_note()
    note.draft(author_id=PSYCHIATRIST, content="Reviewed case.", occurred_at=day(1), now=NOW)
    first = note.add_recommendation(
        text="Increase sertraline to 100 mg", occurred_at=day(1), now=NOW
    )
    second = note.add_recommendation(text="Add behavioural activation", occurred_at=day(1), now=NOW)
    return note, first, second


def signed_note() -> tuple[ConsultationNote, UUID, UUID]:
    """The drafted note, signed."""
    note, first, second = drafted_note()
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    return note, first, second


def acknowledged_note() -> tuple[ConsultationNote, UUID, UUID]:
    """The signed note, acknowledged by the PCP."""
    note, first, second = signed_note()
    note.acknowledge(pcp_id=PCP, occurred_at=day(3), now=NOW)
    return note, first, second


def test_full_consultation_loop_emits_stable_event_names() -> None:
    """Request, draft, recommendations, sign, acknowledge, respond, implement."""
    note, first, second = acknowledged_note()
    note.accept_recommendation(
        recommendation_id=first, responded_by=PCP, occurred_at=day(4), now=NOW
    )
    note.decline_recommendation(
        recommendation_id=second,
        responded_by=PCP,
        reason="Not available",
        occurred_at=day(4),
        now=NOW,
    )
    note.implement_recommendation(recommendation_id=first, occurred_at=day(5), now=NOW)
    assert names(note.collect_events()) == [
        "consultation_note.requested",
        "consultation_note.drafted",
        "consultation_note.recommendation_added",
        "consultation_note.recommendation_added",
        "consultation_note.signed",
        "consultation_note.acknowledged",
        "consultation_note.recommendation_accepted",
        "consultation_note.recommendation_declined",
        "consultation_note.recommendation_implemented",
    ]
    assert note.recommendations[first].implemented_at == day(5)
    assert note.recommendations[second].response is RecommendationResponse.DECLINED
    assert note.patient_id == PATIENT


def test_redraft_is_allowed_while_unsigned() -> None:
    """A second draft replaces the content and counts up."""
    note, _, _ = drafted_note()
    note.draft(author_id=PSYCHIATRIST, content="Revised.", occurred_at=day(1), now=NOW)
    assert (note.content, note.draft_number) == ("Revised.", 2)


def test_signing_twice_raises() -> None:
    """A note is signed once."""
    note, _, _ = signed_note()
    with pytest.raises(NoteAlreadySignedError) as info:
        note.sign(signed_by=PSYCHIATRIST, occurred_at=day(3), now=NOW)
    assert info.value.code == "NOTE_ALREADY_SIGNED"


EDITS: dict[str, Callable[[ConsultationNote, UUID], object]] = {
    "redraft": lambda n, r: n.draft(
        author_id=PSYCHIATRIST, content="x", occurred_at=day(5), now=NOW
    ),
    "add recommendation": lambda n, r: n.add_recommendation(text="x", occurred_at=day(5), now=NOW),
    "remove recommendation": lambda n, r: n.remove_recommendation(
        recommendation_id=r, occurred_at=day(5), now=NOW
    ),
    "withdraw": lambda n, r: n.withdraw(reason="x", occurred_at=day(5), now=NOW),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("builder", [signed_note, acknowledged_note])
def test_edit_after_signing_raises(
    edit: str, builder: Callable[[], tuple[ConsultationNote, UUID, UUID]]
) -> None:
    """A signed note is immutable: every edit raises NOTE_ALREADY_SIGNED."""
    note, first, _ = builder()
    note.collect_events()
    with pytest.raises(NoteAlreadySignedError):
        EDITS[edit](note, first)
    assert note.collect_events() == []


def test_addendum_before_signing_raises() -> None:
    """Addenda exist only on signed notes."""
    note, _, _ = drafted_note()
    with pytest.raises(NoteNotSignedError):
        note.add_addendum(author_id=PSYCHIATRIST, text="x", occurred_at=day(2), now=NOW)


def test_addendum_after_signing_is_kept_beside_the_note() -> None:
    """Corrections are addenda; the signed content stays as it was."""
    note, _, _ = signed_note()
    note.add_addendum(author_id=PSYCHIATRIST, text="Check ECG.", occurred_at=day(3), now=NOW)
    assert note.content == "Reviewed case."
    assert [a.text for a in note.addenda] == ["Check ECG."]


def test_signing_without_a_draft_raises() -> None:
    """There is nothing to sign before the draft."""
    with pytest.raises(NoteNotDraftedError):
        new_note().sign(signed_by=PSYCHIATRIST, occurred_at=day(1), now=NOW)


def test_recommendation_before_a_draft_raises() -> None:
    """Recommendations are part of a drafted note."""
    with pytest.raises(NoteNotDraftedError):
        new_note().add_recommendation(text="x", occurred_at=day(1), now=NOW)


def test_recommendation_ids_are_unique_and_can_be_chosen() -> None:
    """A chosen id is kept; reusing it raises."""
    note, _, _ = drafted_note()
    chosen = uuid4()
    assert (
        note.add_recommendation(text="x", occurred_at=day(1), now=NOW, recommendation_id=chosen)
        == chosen
    )
    with pytest.raises(DuplicateIdError):
        note.add_recommendation(text="y", occurred_at=day(1), now=NOW, recommendation_id=chosen)


def test_removed_recommendation_is_not_signed() -> None:
    """The signature lists the recommendations left on the note."""
    note, first, second = drafted_note()
    note.remove_recommendation(recommendation_id=first, occurred_at=day(1), now=NOW)
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    signed = note.collect_events()[-1]
    assert signed.recommendation_ids == [second]  # type: ignore[attr-defined]


def test_acknowledging_before_signing_raises() -> None:
    """The PCP acknowledges a signed note only."""
    note, _, _ = drafted_note()
    with pytest.raises(NoteNotSignedError):
        note.acknowledge(pcp_id=PCP, occurred_at=day(2), now=NOW)


def test_acknowledging_twice_raises() -> None:
    """One acknowledgement per note."""
    note, _, _ = acknowledged_note()
    with pytest.raises(NoteAlreadyAcknowledgedError):
        note.acknowledge(pcp_id=PCP, occurred_at=day(4), now=NOW)


def test_responding_before_acknowledgement_raises() -> None:
    """The PCP acknowledges the note before answering its recommendations."""
    note, first, _ = signed_note()
    with pytest.raises(NoteNotAcknowledgedError):
        note.accept_recommendation(
            recommendation_id=first, responded_by=PCP, occurred_at=day(3), now=NOW
        )


def test_declining_needs_a_reason() -> None:
    """A declined recommendation says why."""
    note, first, _ = acknowledged_note()
    with pytest.raises(ReasonRequiredError):
        note.decline_recommendation(
            recommendation_id=first, responded_by=PCP, reason=" ", occurred_at=day(4), now=NOW
        )


def test_modifying_needs_the_change_text() -> None:
    """A modified recommendation records the change."""
    note, first, _ = acknowledged_note()
    with pytest.raises(BlankValueError):
        note.modify_recommendation(
            recommendation_id=first, responded_by=PCP, change="", occurred_at=day(4), now=NOW
        )
    note.modify_recommendation(
        recommendation_id=first, responded_by=PCP, change="75 mg", occurred_at=day(4), now=NOW
    )
    assert note.recommendations[first].response_text == "75 mg"


def test_answering_a_recommendation_twice_raises() -> None:
    """Each recommendation gets one answer."""
    note, first, _ = acknowledged_note()
    note.accept_recommendation(
        recommendation_id=first, responded_by=PCP, occurred_at=day(4), now=NOW
    )
    with pytest.raises(RecommendationAlreadyAnsweredError):
        note.decline_recommendation(
            recommendation_id=first, responded_by=PCP, reason="x", occurred_at=day(4), now=NOW
        )


def test_unknown_recommendation_raises_not_found() -> None:
    """Only the note's own recommendations can be answered."""
    note, _, _ = acknowledged_note()
    with pytest.raises(RecommendationNotFoundError):
        note.accept_recommendation(
            recommendation_id=uuid4(), responded_by=PCP, occurred_at=day(4), now=NOW
        )


@pytest.mark.parametrize("response", [None, RecommendationResponse.DECLINED])
def test_only_accepted_or_modified_recommendations_are_implemented(
    response: RecommendationResponse | None,
) -> None:
    """Unanswered and declined recommendations cannot be implemented."""
    note, first, _ = acknowledged_note()
    if response is not None:
        note.respond_to_recommendation(
            recommendation_id=first,
            response=response,
            responded_by=PCP,
            text="reason",
            occurred_at=day(4),
            now=NOW,
        )
    with pytest.raises(RecommendationNotAcceptedError):
        note.implement_recommendation(recommendation_id=first, occurred_at=day(5), now=NOW)


@pytest.mark.parametrize("response", ["accepted", "modified"])
def test_accepted_or_modified_recommendation_is_implemented_once(response: str) -> None:
    """Implementation is recorded once."""
    note, first, _ = acknowledged_note()
    note.respond_to_recommendation(
        recommendation_id=first,
        response=response,
        responded_by=PCP,
        text="change",
        occurred_at=day(4),
        now=NOW,
    )
    note.implement_recommendation(recommendation_id=first, occurred_at=day(5), now=NOW)
    with pytest.raises(RecommendationAlreadyImplementedError):
        note.implement_recommendation(recommendation_id=first, occurred_at=day(6), now=NOW)


def test_pending_recommendations_list_unanswered_ones_of_signed_notes() -> None:
    """Drafts have none pending; signed notes list the unanswered ones."""
    note, first, second = drafted_note()
    assert note.pending_recommendations == []
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    note.acknowledge(pcp_id=PCP, occurred_at=day(3), now=NOW)
    note.accept_recommendation(
        recommendation_id=first, responded_by=PCP, occurred_at=day(4), now=NOW
    )
    assert [r.recommendation_id for r in note.pending_recommendations] == [second]


def test_withdrawn_note_accepts_no_changes() -> None:
    """After withdrawal, drafting raises NOTE_WITHDRAWN."""
    note = new_note()
    note.withdraw(reason="Patient discharged", occurred_at=day(1), now=NOW)
    assert note.status is NoteStatus.WITHDRAWN
    with pytest.raises(NoteWithdrawnError):
        note.draft(author_id=PSYCHIATRIST, content="x", occurred_at=day(2), now=NOW)


def test_step_before_the_signature_is_rejected() -> None:
    """An acknowledgement cannot predate the signature."""
    note, _, _ = signed_note()
    with pytest.raises(OutOfOrderError):
        note.acknowledge(pcp_id=PCP, occurred_at=day(1), now=NOW)


def test_blank_question_is_rejected() -> None:
    """The care manager's question is required."""
    with pytest.raises(BlankValueError):
        ConsultationNote.request(
            patient_id=PATIENT, requested_by=CARE_MANAGER, question="", occurred_at=T0, now=NOW
        )


def test_note_replays_and_snapshots_after_the_full_loop() -> None:
    """Replay and snapshot round trips rebuild an equal note."""
    note, first, second = acknowledged_note()
    note.add_addendum(author_id=PSYCHIATRIST, text="Addendum.", occurred_at=day(3), now=NOW)
    note.modify_recommendation(
        recommendation_id=first, responded_by=PCP, change="75 mg", occurred_at=day(4), now=NOW
    )
    note.implement_recommendation(recommendation_id=first, occurred_at=day(5), now=NOW)
    assert_replays(note, note.collect_events())
    state = json.loads(json.dumps(note.snapshot_state()))
    restored = ConsultationNote.from_snapshot_state(state)
    assert restored == note
    assert second in restored.recommendations
