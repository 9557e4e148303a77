"""The audit chain's row hashes are a stored format: links sealed by an older sealer are
verified by a newer one, so the canonical text of a row must never change."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID

from asyncpg.pgproto.pgproto import UUID as PgUUID

from services.audit.chain import BY_NAME, content_hash, hashes, row_hash

ACCESS = BY_NAME["access"]
PATIENT = "00000000-0000-4000-8000-0000000000a1"
ACTOR = "00000000-0000-4000-8000-0000000000b2"


def _access_row(uuid_type: type) -> dict[str, object]:
    return {
        "id": 7,
        "tx_id": "1234",
        "at": datetime(2026, 12, 5, 9, 30, 0, 123456, tzinfo=UTC),
        "actor_id": uuid_type(ACTOR),
        "role": "CARE_MANAGER",
        "organisation_id": None,
        "patient_id": uuid_type(PATIENT),
        "operation": "caseload",
        "outcome": "allowed",
        "reason": None,
        "purpose_of_use": "TREAT",
        "request_id": "r-1",
        "fields": ["caseload.totalCount", "caseload.edges.node.flags.kind"],
    }


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


HEAD = (
    f'"actor_id":"{ACTOR}","at":"2026-12-05T09:30:00.123456+00:00",'
    '"fields":["caseload.totalCount","caseload.edges.node.flags.kind"],'
)
TAIL = (
    '"operation":"caseload","organisation_id":null,"outcome":"allowed",'
    f'"patient_id":"{PATIENT}","purpose_of_use":"TREAT","reason":null,'
    '"request_id":"r-1","role":"CARE_MANAGER"'
)


def test_a_row_hashes_to_the_canonical_text_it_always_had() -> None:
    for uuid_type in (UUID, PgUUID):  # asyncpg hands the sealer its own UUID subclass
        row = _access_row(uuid_type)
        whole = '["access",{' + HEAD + '"id":7,' + TAIL + ',"tx_id":"1234"}]'
        content = '["access",{' + HEAD + TAIL + "}]"
        assert hashes(ACCESS, row) == (_sha(whole), _sha(content))
        assert hashes(ACCESS, row) == (row_hash("access", row), content_hash(ACCESS, row))


def test_values_of_other_types_keep_their_canonical_form() -> None:
    row = {"id": 1, "tx_id": "9", "flag": True, "ratio": 0.5, "nested": {"k": (1, "a")}}
    assert hashes(ACCESS, row)[0] == _sha(
        '["access",{"flag":true,"id":1,"nested":{"k":[1,"a"]},"ratio":0.5,"tx_id":"9"}]'
    )


def test_a_row_written_before_patient_lists_hashes_as_it_did_with_the_new_column_null() -> None:
    row = _access_row(PgUUID)
    assert hashes(ACCESS, {**row, "patient_ids": None}) == hashes(ACCESS, row)


def test_a_list_row_hash_covers_its_patients_in_order() -> None:
    other = "00000000-0000-4000-8000-0000000000a2"
    row = {**_access_row(PgUUID), "patient_id": None}
    listed = {**row, "patient_ids": [PgUUID(PATIENT), PgUUID(other)]}
    whole = ('["access",{' + HEAD + '"id":7,' + TAIL.replace(f'"{PATIENT}"', "null")).replace(
        '"patient_id":null,', f'"patient_id":null,"patient_ids":["{PATIENT}","{other}"],'
    )
    assert hashes(ACCESS, listed)[0] == _sha(whole + ',"tx_id":"1234"}]')
    swapped = {**row, "patient_ids": [PgUUID(other), PgUUID(PATIENT)]}
    fewer = {**row, "patient_ids": [PgUUID(PATIENT)]}
    assert len({hashes(ACCESS, r) for r in (listed, swapped, fewer, row)}) == 4
