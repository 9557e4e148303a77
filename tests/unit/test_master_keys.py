"""The wrapped-key format and the master keys a key ring knows (pure, no database)."""

from __future__ import annotations

import base64
import os
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.crypto import KeyRing, UnknownMasterKeyError, load_previous_master_keys
from services.settings import SettingsError

OLD, NEW, OTHER = os.urandom(32), os.urandom(32), os.urandom(32)


def _legacy_wrap(master: bytes, aad: bytes, key: bytes) -> bytes:
    """How keys were wrapped before master keys had ids: nonce and ciphertext only."""
    nonce = os.urandom(12)
    return nonce + AESGCM(master).encrypt(nonce, key, aad)


def test_a_key_wrapped_before_ids_existed_unwraps_with_whichever_known_key_wrapped_it() -> None:
    patient = uuid4()
    data_key = os.urandom(32)
    legacy = _legacy_wrap(OLD, patient.bytes, data_key)
    assert len(legacy) == 60
    assert KeyRing(OLD).unwrap(patient, legacy) == data_key
    assert KeyRing(NEW, (OLD,)).unwrap(patient, legacy) == data_key
    with pytest.raises(UnknownMasterKeyError):
        KeyRing(NEW).unwrap(patient, legacy)


def test_a_wrapped_key_names_its_master_key_and_only_that_key_unwraps_it() -> None:
    patient = uuid4()
    ring = KeyRing(OLD)
    wrapped = ring.rewrap(patient.bytes, _legacy_wrap(OLD, patient.bytes, b"k" * 32))
    assert wrapped[1:9] == ring.current_key_id and ring.wrapped_by_current(wrapped)
    assert KeyRing(NEW, (OLD,)).unwrap(patient, wrapped) == b"k" * 32
    assert not KeyRing(NEW, (OLD,)).wrapped_by_current(wrapped)
    with pytest.raises(UnknownMasterKeyError) as refused:
        KeyRing(NEW, (OTHER,)).unwrap(patient, wrapped)
    assert ring.current_key_id.hex() in str(refused.value)
    rewrapped = KeyRing(NEW, (OLD,)).rewrap(patient.bytes, wrapped)
    assert KeyRing(NEW).unwrap(patient, rewrapped) == b"k" * 32


def test_a_wrapped_key_is_bound_to_its_patient() -> None:
    ring = KeyRing(OLD)
    wrapped = ring.rewrap(b"a" * 16, _legacy_wrap(OLD, b"a" * 16, b"k" * 32))
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM's InvalidTag: another patient's id
        ring.unwrap(uuid4(), wrapped)


def test_derived_keys_come_from_the_oldest_master_key_given_or_from_the_database() -> None:
    first = KeyRing(OLD)
    during = KeyRing(NEW, (OLD,))
    assert during.blind_index_key() == first.blind_index_key()
    assert during.record_key == first.record_key
    stored = {"mrn_index": first.blind_index_key(), "erasure_record": first.record_key}
    after = KeyRing(NEW, derived=stored)
    assert (after.blind_index_key(), after.record_key) == (
        first.blind_index_key(),
        first.record_key,
    )
    assert KeyRing(NEW).record_key != first.record_key


def test_previous_master_keys_are_base64_32_bytes_comma_separated() -> None:
    a, b = (base64.b64encode(k).decode() for k in (OLD, NEW))
    assert load_previous_master_keys(None) == []
    assert load_previous_master_keys(f"{a}, {b}") == [OLD, NEW]
    with pytest.raises(SettingsError, match="CARETEAM_MASTER_KEY_PREVIOUS is not base64"):
        load_previous_master_keys("not base64!")
    with pytest.raises(SettingsError, match="must be 32 bytes"):
        load_previous_master_keys(base64.b64encode(b"short").decode())
