"""Normalisation and digests of the patient search index (services/patient_search.py)."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from services.api.patient.search import decode_cursor, encode_cursor, search_problem
from services.patient_search import (
    MAX_PREFIX,
    SearchIndex,
    name_tokens,
    normalise_text,
    prefixes,
)

ORG = UUID("00000000-0000-4000-8000-000000000001")
OTHER = UUID("00000000-0000-4000-8000-000000000002")
KEY = b"k" * 32
TODAY = date(2026, 12, 4)


def test_accents_case_and_compatibility_forms_are_ignored() -> None:
    assert normalise_text("ÉLODIE") == "elodie"
    assert normalise_text("Zoë") == normalise_text("ZOE") == "zoe"
    assert normalise_text("Ångström") == "angstrom"
    assert normalise_text("STRASSE") == normalise_text("straße")  # casefold: ß -> ss
    assert normalise_text("ﬁn") == "fin"  # the ligature decomposes (NFKD)


def test_a_name_splits_into_tokens_on_anything_but_letters_and_digits() -> None:
    assert name_tokens("Zoë-Anne  O'Testa") == ["zoe", "anne", "o", "testa"]
    assert name_tokens(" - ") == []


def test_prefixes_run_from_two_characters_to_the_whole_token_capped() -> None:
    assert prefixes("testa") == ["te", "tes", "test", "testa"]
    assert prefixes("x") == []
    long = "a" * 30
    assert prefixes(long)[-1] == "a" * MAX_PREFIX
    assert len(prefixes(long)) == MAX_PREFIX - 1


def test_the_same_prefix_in_another_organisation_or_field_has_another_digest() -> None:
    index = SearchIndex(KEY)
    assert index.name_digest(ORG, "te") == index.name_digest(ORG, "te")
    assert index.name_digest(ORG, "te") != index.name_digest(OTHER, "te")
    assert index.digest(ORG, "name", "1980-05-05") != index.birth_date_digest(ORG, date(1980, 5, 5))
    assert SearchIndex(b"j" * 32).name_digest(ORG, "te") != index.name_digest(ORG, "te")


def test_an_accented_name_is_indexed_under_the_unaccented_prefix_typed_in_any_case() -> None:
    index = SearchIndex(KEY)
    digests = index.digests(
        ORG, given_name="Zoë", family_name="Éxample-Testperson", birth_date=date(1980, 5, 5)
    )
    for typed in ("ZO", "zoe", "exa", "EXAMPLE", "testp"):
        (token,) = name_tokens(typed)
        assert index.name_digest(ORG, token) in digests, typed
    assert index.birth_date_digest(ORG, date(1980, 5, 5)) in digests
    assert index.name_digest(ORG, "xa") not in digests  # infixes are not indexed


def test_a_long_query_token_is_looked_up_by_its_capped_prefix() -> None:
    index = SearchIndex(KEY)
    name = "b" * 25
    digests = index.digests(ORG, given_name=name, family_name="Zz", birth_date=TODAY)
    assert index.name_digest(ORG, name) in digests


def test_bad_criteria_are_named() -> None:
    def field(*args: object) -> tuple[str, str | None] | None:
        problem = search_problem(*args, TODAY)  # type: ignore[arg-type]
        return None if problem is None else (problem.code, problem.field)

    assert field(None, None, None) == ("NO_CRITERIA", "mrn, birthDate, name")
    assert field(None, None, "T") == ("NAME_TOO_SHORT", "name")
    assert field(None, None, "Te S") == ("NAME_TOO_SHORT", "name")
    assert field(None, None, "--") == ("INVALID_NAME", "name")
    assert field(None, date(2026, 12, 5), None) == ("BIRTH_DATE_IN_FUTURE", "birthDate")
    assert field(" ", None, None) == ("INVALID_MRN", "mrn")
    assert field("E2E-1", TODAY, "te") is None


def test_a_cursor_of_another_kind_or_shape_is_refused() -> None:
    cursor = encode_cursor(["s", str(ORG)])
    assert decode_cursor(cursor, "s", 1) == [str(ORG)]
    assert decode_cursor(cursor, "i", 2) is None
    assert decode_cursor("not a cursor", "s", 1) is None
    assert decode_cursor(encode_cursor(["s", 1]), "s", 1) is None  # type: ignore[list-item]
