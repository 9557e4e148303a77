"""Webhook signatures and delivery options: signed bodies verify, anything else is refused."""

from __future__ import annotations

import pytest

from services.partners.delivery import PartnerOptions
from services.partners.signing import SignatureError, new_secret, sign, verify
from services.settings import SettingsError

BODY = b'{"data":{"patient":"abc"}}'
T = 1_800_000_000


def test_a_signed_body_verifies_within_the_replay_window() -> None:
    """The receiver's check accepts what the sender signed."""
    secret = new_secret()
    assert verify(secret, sign(secret, BODY, T), BODY, now=T + 299) == T


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, T, "MISSING_SIGNATURE"),
        ("v1=abc", BODY, T, "MALFORMED_SIGNATURE"),
        ("t=soon,v1=abc", BODY, T, "MALFORMED_SIGNATURE"),
        ("SIGNED", BODY + b" ", T, "BAD_SIGNATURE"),
        ("SIGNED", BODY, T + 301, "OUTSIDE_REPLAY_WINDOW"),
        ("SIGNED", BODY, T - 301, "OUTSIDE_REPLAY_WINDOW"),
        ("OTHER_SECRET", BODY, T, "BAD_SIGNATURE"),
    ],
)
def test_unsigned_changed_stale_or_foreign_requests_are_refused(
    header: str | None, body: bytes, now: int, reason: str
) -> None:
    """Each way a request can be wrong has its own stable reason."""
    secret = new_secret()
    if header == "SIGNED":
        header = sign(secret, BODY, T)
    elif header == "OTHER_SECRET":
        header = sign(new_secret(), BODY, T)
    with pytest.raises(SignatureError) as caught:
        verify(secret, header, body, now=now)
    assert caught.value.reason == reason


def test_any_matching_v1_signature_is_accepted_while_secrets_rotate() -> None:
    """A header may carry signatures under the old and the new secret."""
    old, new = new_secret(), new_secret()
    header = sign(old, BODY, T) + "," + sign(new, BODY, T).split(",")[1]
    assert verify(new, header, BODY, now=T) == T
    assert verify(old, header, BODY, now=T) == T


def test_secrets_are_long_and_never_repeat() -> None:
    """256 bits of randomness each."""
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) > 40 for s in secrets)


def test_webhook_retries_back_off_exponentially_up_to_the_cap() -> None:
    """Delays double from the initial one and never exceed the maximum."""
    options = PartnerOptions(webhook_initial_delay_seconds=30, webhook_max_delay_seconds=3600)
    delays = [options.webhook_delay(n) for n in range(1, 11)]
    assert 22.5 <= delays[0] <= 30
    assert 45 <= delays[1] <= 60
    assert all(d <= 3600 for d in delays)
    assert sum(delays) > 2 * 3600  # the default schedule spans hours


def test_options_come_from_prefixed_environment_variables() -> None:
    """CARETEAM_PARTNERS_<FIELD> sets a field; a malformed value names the variable."""
    options = PartnerOptions.from_env(
        {"CARETEAM_PARTNERS_WEBHOOK_ATTEMPTS": "3", "CARETEAM_PARTNERS_POLL_SECONDS": "0.05"}
    )
    assert options.webhook_attempts == 3 and options.poll_seconds == 0.05
    with pytest.raises(SettingsError, match="CARETEAM_PARTNERS_PAGE_SIZE"):
        PartnerOptions.from_env({"CARETEAM_PARTNERS_PAGE_SIZE": "many"})
