"""copy_doc: evolve functions change a copy, never the document they were given."""

from __future__ import annotations

from datetime import date

import pytest

from projections.document import copy_doc


def test_a_copy_shares_no_dict_or_list_with_the_original() -> None:
    doc = {"a": {"b": [1, {"c": "x"}]}, "n": None, "t": True, "f": 1.5}
    copied = copy_doc(doc)
    assert copied == doc
    copied["a"]["b"][1]["c"] = "y"
    copied["a"]["b"].append(2)
    assert doc == {"a": {"b": [1, {"c": "x"}]}, "n": None, "t": True, "f": 1.5}


def test_a_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError, match="only JSON values, not date"):
        copy_doc({"day": date(2026, 1, 1)})
