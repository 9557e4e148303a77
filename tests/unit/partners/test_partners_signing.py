"""Webhook signatures (Standard Webhooks) and delivery options: signed bodies verify, anything
else is refused."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.partners.delivery import PartnerOptions
from services.partners.registry import DEFAULT_SECRET_OVERLAP
from services.partners.signing import (
    SignatureError,
    new_secret,
    secret_key,
    signed_headers,
    verify,
)
from services.settings import SettingsError

BODY = b'{"data":{"patient":"abc"}}'
MSG = "msg_0f3c"
T = 1_800_000_000


def signed(secret: str, body: bytes = BODY, timestamp: int = T) -> dict[str, str]:
    return signed_headers([secret], MSG, body, timestamp)


def test_a_signed_body_verifies_within_the_replay_window() -> None:
    """The receiver's check accepts what the sender signed, up to five minutes off."""
    secret = new_secret()
    assert verify(secret, signed(secret), BODY, now=T + 299) == T
    assert verify(secret, signed(secret), BODY, now=T - 299) == T


@pytest.mark.parametrize(
    ("change", "body", "now", "reason"),
    [
        ("UNSIGNED", BODY, T, "MISSING_SIGNATURE"),
        ("NO_ID", BODY, T, "MISSING_SIGNATURE"),
        ("TIMESTAMP_NOT_A_NUMBER", BODY, T, "MALFORMED_SIGNATURE"),
        ("UNKNOWN_SCHEME", BODY, T, "MALFORMED_SIGNATURE"),
        ("NONE", BODY + b" ", T, "BAD_SIGNATURE"),
        ("OTHER_ID", BODY, T, "BAD_SIGNATURE"),
        ("NONE", BODY, T + 301, "OUTSIDE_REPLAY_WINDOW"),
        ("NONE", BODY, T - 301, "OUTSIDE_REPLAY_WINDOW"),
        ("OTHER_SECRET", BODY, T, "BAD_SIGNATURE"),
    ],
)
def test_unsigned_changed_stale_or_foreign_requests_are_refused(
    change: str, body: bytes, now: int, reason: str
) -> None:
    """Each way a request can be wrong has its own stable reason."""
    secret = new_secret()
    headers = signed(new_secret() if change == "OTHER_SECRET" else secret)
    if change == "UNSIGNED":
        del headers["webhook-signature"]
    elif change == "NO_ID":
        del headers["webhook-id"]
    elif change == "TIMESTAMP_NOT_A_NUMBER":
        headers["webhook-timestamp"] = "soon"
    elif change == "UNKNOWN_SCHEME":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v9,")
    elif change == "OTHER_ID":
        headers["webhook-id"] = "msg_other"
    with pytest.raises(SignatureError) as caught:
        verify(secret, headers, body, now=now)
    assert caught.value.reason == reason


def test_the_standard_webhooks_library_verifies_what_careteam_signs() -> None:
    """A partner's stock verifier accepts careteam's headers, and careteam's accepts its."""
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers([secret], MSG, BODY, now)
    assert Webhook(secret).verify(BODY, headers) == {"data": {"patient": "abc"}}
    theirs = Webhook(secret).sign(MSG, datetime.fromtimestamp(now, UTC), BODY)
    assert theirs == headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_header_signed_with_two_secrets_verifies_under_either_and_no_other() -> None:
    """During a rotation's overlap the header carries one signature per secret, space-separated."""
    old, new, stranger = new_secret(), new_secret(), new_secret()
    now = int(time.time())
    headers = signed_headers([new, old], MSG, BODY, now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(new, headers, BODY, now=now) == now
    assert verify(old, headers, BODY, now=now) == now
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_secrets_are_base64_of_32_random_bytes_after_the_prefix_and_never_repeat() -> None:
    """256 bits of randomness each, in the Standard Webhooks secret format."""
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert secret_key(secret) == base64.b64decode(secret.removeprefix("whsec_"))


def test_a_secret_issued_before_standard_webhooks_still_signs_without_failing() -> None:
    """Old URL-safe secrets that standard base64 cannot read sign all the same (and verify
    with careteam's check); readable ones verify with the stock library too."""
    unreadable = "whsec_" + "abc-" * 2 + "a" * 35  # URL-safe; 41 standard characters
    headers = signed_headers([unreadable], MSG, BODY, T)
    assert verify(unreadable, headers, BODY, now=T) == T
    readable = "whsec_" + base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
    now = int(time.time())
    Webhook(readable).verify(BODY, signed_headers([readable], MSG, BODY, now))


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


def test_the_registry_and_the_options_agree_on_the_default_rotation_overlap() -> None:
    """One documented default (24 hours) whichever way a rotation is made."""
    assert DEFAULT_SECRET_OVERLAP.total_seconds() == PartnerOptions().webhook_secret_overlap_seconds
    assert PartnerOptions().webhook_secret_overlap_seconds == 86_400
    options = PartnerOptions.from_env({"CARETEAM_PARTNERS_WEBHOOK_SECRET_OVERLAP_SECONDS": "60"})
    assert options.webhook_secret_overlap_seconds == 60
    with pytest.raises(SettingsError, match="OVERLAP"):
        PartnerOptions(webhook_secret_overlap_seconds=-1)
