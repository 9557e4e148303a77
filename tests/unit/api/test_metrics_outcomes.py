"""Mutation outcomes for /metrics: constant labels only."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from prometheus_client.parser import text_string_to_metric_families

from services.api.web.metrics import Metrics, _outcomes


def test_outcomes_are_ok_the_error_code_or_unknown() -> None:
    data = {
        "a": {"__typename": "PatientPayload", "patient": {"id": "x"}},
        "b": {"__typename": "ValidationError", "code": "ANSWER_OUT_OF_RANGE"},
        "c": {"code": "NOT_ON_CARE_TEAM", "message": "refused"},
        "d": {"__typename": "NotFoundError"},
        "e": {"code": "LOOKS_LIKE_A_CODE"},  # a payload's own field: not an error
        "f": None,
    }
    errors = [GraphQLError("down", path=["f"], extensions={"code": "SERVICE_UNAVAILABLE"})]
    assert list(_outcomes(data, errors)) == [
        "OK",
        "ANSWER_OUT_OF_RANGE",
        "NOT_ON_CARE_TEAM",
        "UNKNOWN",
        "OK",
        "SERVICE_UNAVAILABLE",
    ]


def test_render_parses_with_the_prometheus_parser() -> None:
    metrics = Metrics()
    metrics.request_seconds.labels("query", "patient").observe(0.01)
    metrics.mutation_outcomes.labels("OK").inc()
    text = metrics.render(
        {"patient_view": 3}, True, 0, partition_lag={0: 1, 1: 2}, owned=2
    ).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["careteam_projection_events_behind"].samples[0].value == 3
    by_partition = families["careteam_projection_partition_events_behind"].samples
    assert {s.labels["partition"]: s.value for s in by_partition} == {"0": 1, "1": 2}
    assert families["careteam_projector_partitions_owned"].samples[0].value == 2
    assert families["careteam_audit_chain_intact"].samples[0].value == 1
    assert families["careteam_mutation_outcomes"].type == "counter"


def _timed_operations(metrics: Metrics) -> dict[str, float]:
    families = {
        f.name: f for f in text_string_to_metric_families(metrics.render({}, None, 0).decode())
    }
    return {
        s.labels["operation"]: s.value
        for s in families["careteam_graphql_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }


async def test_latency_is_labelled_by_the_root_field_never_the_clients_operation_name() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def caseload(self) -> int:
            return 1

        @strawberry.field
        def worklist(self) -> int:
            return 2

    metrics = Metrics()
    schema = strawberry.Schema(query=Query, extensions=[metrics.extension()])
    await schema.execute("query MyOwnName { caseload }")
    await schema.execute("{ renamed: worklist __typename }")
    await schema.execute("{ caseload worklist }")
    await schema.execute("query A { caseload } query B { worklist }", operation_name="B")
    await schema.execute("{ noSuchField }")
    assert _timed_operations(metrics) == {
        "caseload": 1,
        "worklist": 2,
        "multiple": 1,
        "invalid": 1,
    }
