"""The published schema: committed, current, documented, and hardened."""

from __future__ import annotations

import subprocess
from pathlib import Path

from graphql import build_schema as parse_sdl
from graphql import find_breaking_changes

from services.api.schema import MAX_ALIASES, MAX_DEPTH, build_schema, schema_sdl

ROOT = Path(__file__).resolve().parents[3]
DECLARED = ROOT / "services" / "api" / "declared_breaking_changes.txt"


def test_the_committed_schema_file_is_the_output_of_export_schema() -> None:
    """Regenerate with `uv run careteam export-schema > schema.graphql` when this fails."""
    assert (ROOT / "schema.graphql").read_text() == schema_sdl()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def _previous_published_schema() -> str | None:
    """The newest committed schema.graphql that differs from the current one (None if none)."""
    current = schema_sdl()
    try:
        commits = _git("log", "--format=%H", "-n", "50", "--", "schema.graphql").split()
        for commit in commits:
            text = _git("show", f"{commit}:schema.graphql")
            if text != current:
                return text
    except (OSError, subprocess.CalledProcessError):
        return None
    return None


def test_breaking_changes_against_the_previous_schema_are_declared() -> None:
    """A removed field or a changed type must be listed in declared_breaking_changes.txt."""
    previous = _previous_published_schema()
    if previous is None:
        return  # the first published schema has nothing to break
    changes = find_breaking_changes(parse_sdl(previous), parse_sdl(schema_sdl()))
    declared = {
        line.strip()
        for line in DECLARED.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    undeclared = [c.description for c in changes if c.description not in declared]
    assert undeclared == []


def test_every_type_and_field_has_a_description() -> None:
    """Front-end teams read the schema itself; nothing may be left undocumented."""
    schema = build_schema()._schema
    missing = []
    for name, gql_type in schema.type_map.items():
        if name.startswith("__") or name in {
            "String",
            "Int",
            "Boolean",
            "Float",
            "ID",
            "UUID",
            "Date",
            "DateTime",
        }:
            continue
        if not getattr(gql_type, "description", None):
            missing.append(name)
        for field_name, field in getattr(gql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
    assert missing == []


async def test_queries_deeper_than_the_limit_are_refused() -> None:
    """A document nested past MAX_DEPTH fails validation before anything runs."""
    levels = MAX_DEPTH // 3 + 1
    too_deep = "{ __schema { " + "types { fields { type { " * levels + "name" + " } } }" * levels
    too_deep += " } }"
    result = await build_schema().execute(too_deep)
    assert result.errors is not None
    assert "depth" in result.errors[0].message.lower()
    shallow = await build_schema().execute("{ __schema { types { name } } }")
    assert shallow.errors is None


async def test_an_empty_selection_set_is_refused_not_a_crash() -> None:
    """graphql-core parses `{ }`; the depth rule must refuse it, not raise (a masked 500)."""
    result = await build_schema().execute("{ caseload(first: 1) { } }")
    assert result.errors is not None
    assert "at least one field" in result.errors[0].message


async def test_too_many_aliases_are_refused() -> None:
    """MAX_ALIASES + 1 aliases of __typename fail validation."""
    many = " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1))
    result = await build_schema().execute(f"query {{ {many} }}")
    assert result.errors is not None and "alias" in result.errors[0].message.lower()


async def test_introspection_is_refused_in_production() -> None:
    """Development serves introspection (GraphiQL needs it); production does not."""
    query = "{ __schema { queryType { name } } }"
    assert (await build_schema().execute(query)).errors is None
    assert (await build_schema(production=True).execute(query)).errors is not None
