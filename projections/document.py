"""The shape every document read model shares: one JSON document per key.

A projection's rules are a pure ``evolve(doc, event) -> doc`` function; the writer
(``projections.keyed.KeyedDocumentProjection``) loads the documents a batch touches,
evolves them in log order and writes the changed ones back, with any indexed columns
derived from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.source import RecordedEvent

Doc = dict[str, Any]
Evolve = Callable[[Doc | None, RecordedEvent], Doc | None]


def copy_doc(doc: Doc) -> Doc:
    """A deep copy of a JSON document, for an ``evolve`` that must not change its input.

    Documents hold only JSON values (what jsonb stores), so this copies dicts and lists
    and shares the immutable scalars; it is several times faster than ``copy.deepcopy``,
    which the writer paid once per event. Anything else in a document is a bug in an
    evolve function and is refused."""
    return _copy_dict(doc)


def _copy_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in value.items()}


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None or kind is bool or kind is float:
        return value
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return [_copy(v) for v in value]
    raise TypeError(f"a read-model document holds only JSON values, not {kind.__name__}")
