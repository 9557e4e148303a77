"""Query groups beyond the patient view and compliance; schema.py merges ``MORE_QUERIES``
into the root Query type."""

from __future__ import annotations

MORE_QUERIES: tuple[type, ...] = ()
