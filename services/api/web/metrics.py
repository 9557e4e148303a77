"""``/metrics`` through ``prometheus-client``: one registry per app, no patient data.

- ``careteam_projection_events_behind{projection}`` (over every partition),
  ``careteam_projection_partition_events_behind{partition}`` (the read model furthest
  behind in each partition), ``careteam_projector_partitions_owned`` (this process's
  projector worker, when it runs one) and ``careteam_audit_chain_intact`` /
  ``careteam_audit_chain_findings``: gauges read when ``/metrics`` is scraped;
- ``careteam_graphql_request_duration_seconds{operation_type,operation}``: a histogram
  of GraphQL operations over HTTP (query, mutation; subscriptions are not timed) by the
  operation's root field (``multiple`` for several, ``invalid`` for none the schema has);
- ``careteam_mutation_outcomes_total{code}``: each root mutation field's outcome: ``OK``,
  the typed error's ``code`` when the client selected it, ``SERVICE_UNAVAILABLE`` or
  another GraphQL error code, or ``UNKNOWN`` when the result says neither;
- ``runtime_gauges``, read at each scrape: the connection pool, WebSocket subscribers, the
  relay's lag (with Kafka configured), the slowest partner feed's lag and the partner
  messages set aside by status (retrying, held, dead, redelivery requested).

Labels are constants (operation types, error codes matching ``[A-Z][A-Z0-9_]*``), never
ids, names or documents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, OperationType
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class _Snapshot(Collector):
    """Gauges whose values the /metrics handler reads (async) just before rendering."""

    def __init__(self) -> None:
        self.lag: dict[str, int] = {}
        self.partition_lag: dict[int, int] = {}
        self.owned: int | None = None
        self.chain_intact: bool | None = None
        self.chain_findings = 0
        self.gauges: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        behind = GaugeMetricFamily(
            "careteam_projection_events_behind",
            "Events in the log a read model has not applied yet.",
            labels=["projection"],
        )
        for name, value in sorted(self.lag.items()):
            behind.add_metric([name], value)
        yield behind
        by_partition = GaugeMetricFamily(
            "careteam_projection_partition_events_behind",
            "Events of one partition of the log (patients by id) that the read model "
            "furthest behind in it has not applied yet.",
            labels=["partition"],
        )
        for partition, value in sorted(self.partition_lag.items()):
            by_partition.add_metric([str(partition)], value)
        yield by_partition
        if self.owned is not None:
            yield GaugeMetricFamily(
                "careteam_projector_partitions_owned",
                "Partitions this process's projector worker owns now.",
                value=self.owned,
            )
        if self.chain_intact is not None:
            yield GaugeMetricFamily(
                "careteam_audit_chain_intact",
                "1 while no verification of the audit chain has found anything; "
                "0 once one has (sealing stops).",
                value=1 if self.chain_intact else 0,
            )
            yield GaugeMetricFamily(
                "careteam_audit_chain_findings",
                "Findings of the last failed verification.",
                value=self.chain_findings,
            )
        yield from self.gauges


class Metrics:
    """The app's registry: request latency, mutation outcomes and the scraped gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.request_seconds = Histogram(
            "careteam_graphql_request_duration_seconds",
            "GraphQL operations over HTTP, by operation type and root field.",
            ["operation_type", "operation"],
            registry=self.registry,
        )
        self.mutation_outcomes = Counter(
            "careteam_mutation_outcomes",
            "Root mutation fields by outcome: OK or an error code.",
            ["code"],
            registry=self.registry,
        )

    def render(
        self,
        lag: dict[str, int],
        chain_intact: bool | None,
        chain_findings: int,
        gauges: list[Metric] | None = None,
        *,
        partition_lag: dict[int, int] | None = None,
        owned: int | None = None,
    ) -> bytes:
        self._snapshot.lag = lag
        self._snapshot.partition_lag = partition_lag or {}
        self._snapshot.owned = owned
        self._snapshot.chain_intact = chain_intact
        self._snapshot.chain_findings = chain_findings
        self._snapshot.gauges = gauges or []
        return generate_latest(self.registry)

    def extension(self) -> type[SchemaExtension]:
        metrics = self

        class _Measure(SchemaExtension):
            def on_operation(self) -> Iterator[None]:
                started = time.perf_counter()
                yield
                context = self.execution_context
                kind = getattr(context.operation_type, "value", None) or "unknown"
                if kind == "subscription":
                    return
                metrics.request_seconds.labels(kind, _operation(context)).observe(
                    time.perf_counter() - started
                )
                if kind == "mutation" and context.result is not None:
                    for code in _outcomes(context.result.data, context.result.errors or []):
                        metrics.mutation_outcomes.labels(code).inc()

        return _Measure


def _operation(context: Any) -> str:
    """The operation's root field when it has one (a name from the schema, so the label
    set is bounded by the schema), ``multiple`` for several, ``invalid`` when the
    document named none the schema has (a client's operation name is never a label)."""
    document = context.graphql_document
    kind = getattr(context.operation_type, "value", None)
    root_type = None
    if isinstance(kind, str):
        root_type = context.schema._schema.get_root_type(OperationType(kind))
    if document is None or root_type is None:
        return "invalid"
    wanted = context.operation_name
    names: set[str] = set()
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if wanted is not None and (definition.name is None or definition.name.value != wanted):
            continue
        for selection in definition.selection_set.selections:
            if isinstance(selection, FieldNode) and selection.name.value != "__typename":
                names.add(selection.name.value)
        break
    if not names or not names <= set(root_type.fields):
        return "invalid"
    return next(iter(names)) if len(names) == 1 else "multiple"


def _outcomes(data: Any, errors: list[Any]) -> Iterator[str]:
    failed: dict[str, str] = {}
    for error in errors:
        path = getattr(error, "path", None)
        code = (getattr(error, "extensions", None) or {}).get("code")
        if path:
            failed[str(path[0])] = code if isinstance(code, str) and _CODE.match(code) else "ERROR"
    for key, value in (data or {}).items() if isinstance(data, dict) else ():
        if key in failed:
            yield failed.pop(key)
        elif isinstance(value, dict):
            # An error when it says so (__typename) or has an error's shape (code and
            # message); only then is its ``code`` a label, so a payload's own field
            # named code never becomes one.
            code = value.get("code")
            typename = value.get("__typename")
            is_error = (isinstance(typename, str) and typename.endswith("Error")) or (
                typename is None and "code" in value and "message" in value
            )
            if not is_error:
                yield "OK"
            elif isinstance(code, str) and _CODE.match(code):
                yield code
            else:
                yield "UNKNOWN"
        elif value is None:
            yield "UNKNOWN"
        else:
            yield "OK"
    yield from failed.values()


# Partner messages a webhook feed set aside and still holds (services/partners/worker.py).
OPEN_PARTNER_STATUSES = ("retrying", "held", "dead", "redelivery_requested")


async def runtime_gauges(
    pool: Any,
    *,
    pool_max: int,
    subscribers: int | None,
    relay: bool,
    executions: int | None = None,
) -> list[Metric]:
    """Gauges read from the process and the database at a scrape (counts only)."""
    size, idle = pool.get_size(), pool.get_idle_size()
    connections = GaugeMetricFamily(
        "careteam_db_pool_connections",
        "Connections of this process's pool, by state.",
        labels=["state"],
    )
    connections.add_metric(["in_use"], size - idle)
    connections.add_metric(["idle"], idle)
    gauges: list[Metric] = [
        connections,
        GaugeMetricFamily(
            "careteam_db_pool_max_connections",
            "The pool's maximum size (CARETEAM_DB_POOL_MAX).",
            value=pool_max,
        ),
    ]
    if subscribers is not None:
        gauges.append(
            GaugeMetricFamily(
                "careteam_websocket_subscribers",
                "GraphQL subscriptions this process is serving.",
                value=subscribers,
            )
        )
    if executions is not None:
        gauges.append(
            GaugeMetricFamily(
                "careteam_subscription_executions",
                "Subscription executions following the log: one per group of subscribers "
                "sharing an answer, one per subscription running on its own.",
                value=executions,
            )
        )
    if relay:  # Kafka configured: the internal relay's checkpoint
        from services.relay.relay import DEFAULT_NAME, relay_lag

        gauges.append(
            GaugeMetricFamily(
                "careteam_relay_events_behind",
                "Events in the log the relay has not published to Kafka yet.",
                value=(await relay_lag(pool, DEFAULT_NAME)).events_behind,
            )
        )
    async with pool.acquire() as conn:
        slowest = await conn.fetchval(
            """SELECT count(*) FROM events e,
                   (SELECT f.tx_id, f.position FROM partner_feeds f
                    JOIN partners p USING (partner_id)
                    WHERE p.active AND p.delivery <> 'graphql'
                    ORDER BY f.tx_id, f.position LIMIT 1) s
               WHERE (e.tx_id, e.position) > (s.tx_id, s.position)"""
        )
        by_status = {
            r["status"]: r["n"]
            for r in await conn.fetch(
                """SELECT status, count(*) AS n FROM partner_dead_letters
                   WHERE status = ANY($1::text[]) GROUP BY status""",
                list(OPEN_PARTNER_STATUSES),
            )
        }
    gauges.append(
        GaugeMetricFamily(
            "careteam_partner_feed_events_behind",
            "Events in the log the slowest active partner feed has not passed yet.",
            value=slowest or 0,
        )
    )
    held = GaugeMetricFamily(
        "careteam_partner_messages_set_aside",
        "Partner webhook messages set aside, by status (dead: every attempt failed).",
        labels=["status"],
    )
    for status in OPEN_PARTNER_STATUSES:
        held.add_metric([status], by_status.get(status, 0))
    gauges.append(held)
    return gauges
