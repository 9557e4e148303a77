"""Mutations beyond the patient's first path: the rest of the four aggregates' commands.

Each group is a strawberry type; ``MORE_MUTATIONS`` lists them and schema.py merges them
into the root Mutation type.
"""

from __future__ import annotations

MORE_MUTATIONS: tuple[type, ...] = ()
