"""The shape every document read model shares: one JSON document per key.

A projection's rules are a pure ``evolve(doc, event) -> doc`` function; the writer
(``projections.keyed.KeyedDocumentProjection``) loads the documents a batch touches,
evolves them in log order and writes the changed ones back, with any indexed columns
derived from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.eventstore import RecordedEvent

Doc = dict[str, Any]
Evolve = Callable[[Doc | None, RecordedEvent], Doc | None]
