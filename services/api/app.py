"""The ASGI application: GraphQL at /graphql, health at /healthz and /readyz, the published
partner contract at /schemas/ and /asyncapi.json."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult

from services import jsontext, tracing
from services.api.authz import record_access
from services.api.context import CareteamContext
from services.api.fanout import FanoutHub
from services.api.feed import EventFeed
from services.api.partners.contract_routes import contract_routes
from services.api.purpose import HEADER as PURPOSE_HEADER
from services.api.purpose import NOT_PERMITTED, PurposeOfUseError, resolve_purpose
from services.api.registry.outcomes_page import outcomes_routes  # outcomes over time (#19)
from services.api.schema import UNAVAILABLE, build_schema
from services.api.transport import FrameWebSocketAdapter, TransportWSHandler
from services.api.web.console import console_route
from services.api.web.graphiql import ASSETS_DIR, ASSETS_PATH, local_graphiql_html
from services.api.web.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.api.web.metrics import Metrics, runtime_gauges
from services.api.web.requestlog import RequestIds
from services.audit.reads import AuditUnavailableError
from services.auth import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    AuthenticationError,
    DevIssuer,
    JwksKeySource,
    Principal,
    StaticKeySource,
    TokenVerifier,
    bearer_token,
)
from services.bootstrap import Clock, Runtime, open_runtime, system_clock
from services.database import CONNECTION_FAILURES, RETRY_AFTER_SECONDS
from services.health import healthz, readiness
from services.projector.runner import summarise_lag
from services.settings import Settings, StartupError

log = logging.getLogger("careteam.api")

MAX_BODY_BYTES = 256 * 1024

# Another surface over the same runtime and token verifier (e.g. services.fhir's /fhir):
# given how to reach the running process's resources (None while starting) and the
# verifier, it returns the route to mount.
MountFactory = Callable[[Callable[[], Runtime | None], TokenVerifier], BaseRoute]


class _WebSocketAdapter(FrameWebSocketAdapter):
    """Closes a socket refused for its purpose of use with 4400 and a reason naming
    X-Purpose-Of-Use, instead of strawberry's bare 4403 "Forbidden"."""

    async def close(self, code: int, reason: str) -> None:
        refused = self.ws.scope.get("state", {}).get("purpose_refused")
        if code == 4403 and refused:
            code, reason = 4400, f"{PURPOSE_HEADER} refused: {refused}"
        await super().close(code, reason)


class CareteamGraphQL(GraphQL[CareteamContext, None]):
    """Strawberry's ASGI app with our typed context and a request size limit."""

    websocket_adapter_class = _WebSocketAdapter
    # A fan-out group's result is encoded once for all its members (services/api/transport.py).
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        runtime_holder: dict[str, Any],
        verifier: TokenVerifier,
        audit_refusal: Callable[[Principal, str, str], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._holder = runtime_holder
        self._verifier = verifier
        self._audit_refusal = audit_refusal

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from careteam's own copies of its assets (no CDN)."""
        return HTMLResponse(local_graphiql_html())

    def encode_json(self, data: object) -> str:
        """Responses and WebSocket messages as JSON text, with orjson (the standard
        library's encoder was a tenth of a large query's CPU; it takes over for what orjson
        refuses, e.g. a lone surrogate echoed in an error). Text, not bytes: the
        graphql-transport-ws protocol sends text frames. A memoised list's text is
        written once (jsontext.EncodedList)."""
        return jsontext.dumps_response(data)

    async def get_context(self, request: Any, response: Any = None) -> CareteamContext:
        scope = getattr(request, "scope", None)
        state = (scope or {}).get("state", {})
        if scope is not None and response is not None and scope.get("type") == "http":
            scope.setdefault("state", {})["sub_response"] = response
        context = CareteamContext(
            runtime=self._holder["runtime"],
            request=request,
            response=response,
            principal=state.get("principal"),
            feed=self._holder.get("feed"),
            fanout=self._holder.get("fanout"),
        )
        if state.get("request_id"):
            context.request_id = state["request_id"]
        context.purpose = state.get("purpose_of_use")
        return context

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """A request that failed as a whole because the database was unavailable (no data,
        or every root field null with SERVICE_UNAVAILABLE among the errors) answers 503
        with Retry-After, so that proxies and clients without GraphQL knowledge retry."""
        data = result.data
        whole = data is None or (isinstance(data, dict) and all(v is None for v in data.values()))
        if whole and any(
            (e.extensions or {}).get("code") == UNAVAILABLE for e in result.errors or []
        ):
            sub = request.scope.get("state", {}).get("sub_response")
            if sub is not None:
                sub.status_code = 503
                sub.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return await super().process_result(request, result)

    async def on_ws_connect(self, context: CareteamContext) -> Any:
        """WebSockets authenticate in ``connection_init``: {"Authorization": "Bearer ..."}."""
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization")
        token = bearer_token(raw if isinstance(raw, str) else None)
        if token is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        try:
            context.principal = await self._verifier.verify(token)
        except AuthenticationError as exc:
            log.info("websocket authentication failed reason=%s", exc.reason)
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"}) from None
        named = next((v for k, v in params.items() if k.lower() == "x-purpose-of-use"), None)
        if named is None:  # a non-browser client may send the header on the upgrade request
            named = getattr(context.request, "headers", {}).get("x-purpose-of-use")
        try:
            context.purpose = resolve_purpose(named, context.principal.role).value
            scope = getattr(context.request, "scope", None)
            if scope is not None:  # for the connection's log line
                scope.setdefault("state", {})["purpose_of_use"] = context.purpose
        except PurposeOfUseError as exc:
            log.info("websocket refused reason=%s", exc.code)
            scope = getattr(context.request, "scope", None)
            if scope is not None:
                scope.setdefault("state", {})["purpose_refused"] = exc.code
            if exc.code == NOT_PERMITTED:
                await self._audit_refusal(context.principal, exc.code, context.request_id)
            raise ConnectionRejectionError(_purpose_error(exc)) from None
        return None


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    run_projector: bool = True,
    mounts: Sequence[MountFactory] = (),
    components: frozenset[str] | None = None,
) -> Starlette:
    """Builds the app; the lifespan opens the database, the pool and the projector.
    ``mounts`` add surfaces that share its runtime and authentication (``careteam serve``
    mounts the FHIR API)."""
    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stop_tracing = tracing.configure(settings.traces_exporter)
            if stop_tracing is not None:
                stack.callback(stop_tracing)
            try:
                runtime = await stack.enter_async_context(
                    open_runtime(
                        settings, clock=clock, run_projector=run_projector, components=components
                    )
                )
            except StartupError as exc:
                app.state.startup_error = exc  # `careteam serve` prints it, exit code 2
                raise
            holder["runtime"] = runtime
            feed = EventFeed(
                runtime.store,
                poll_seconds=settings.projector_poll_seconds,
                access_ready=lambda position: runtime.projector.wait_for(
                    position, settings.read_your_writes_timeout_seconds
                ),
            )
            holder["feed"] = feed
            holder["fanout"] = FanoutHub()
            feed_task = asyncio.create_task(feed.run())
            # Everything made while starting (modules, schema, pools) lives as long as the
            # process: out of the garbage collector's way, so a full collection does not
            # walk it and stall every request and subscription behind it (bench row 6: the
            # 200-subscriber p99 fell from 143-178 ms to 96-138 ms, two runs each).
            gc.collect()
            gc.freeze()
            log.info("careteam ready")
            try:
                yield
            finally:
                feed_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed_task
                holder.clear()

    async def readyz(_request: Request) -> JSONResponse:
        return await readiness(holder.get("runtime"))

    verifier = build_verifier(settings)

    async def audit_refusal(principal: Principal, reason: str, request_id: str) -> None:
        """A purpose of use the caller's role may not name: an audited refusal."""
        runtime = holder["runtime"]
        async with runtime.pool.acquire() as conn:
            await record_access(
                conn,
                principal=principal,
                operation="purposeOfUse",
                patient_id=None,
                outcome="denied",
                reason=reason,
                purpose_of_use=None,
                request_id=request_id,
            )

    app_metrics = Metrics()

    async def metrics(_request: Request) -> Response:
        """Prometheus text format (prometheus-client): projection lag per read model and
        per partition, the
        audit chain, GraphQL latency and mutation outcomes (no patient data)."""
        runtime = holder.get("runtime")
        if runtime is None:
            return PlainTextResponse("", status_code=503)
        projector = runtime.projector
        by_partition = await projector.lag_by_partition()
        health = runtime.chain_health
        feed, fanout = holder.get("feed"), holder.get("fanout")
        subscribers = executions = None
        if feed is not None and fanout is not None:
            executions = feed.subscriber_count
            subscribers = executions - feed.shared_count + fanout.member_count
        gauges = await runtime_gauges(
            runtime.pool,
            pool_max=settings.db_pool_max,
            subscribers=subscribers,
            executions=executions,
            relay=bool(settings.kafka_bootstrap_servers),
        )
        body = app_metrics.render(
            {name: v["events_behind"] for name, v in summarise_lag(by_partition).items()},
            health.intact,
            health.findings,
            gauges,
            partition_lag={
                k: max(parts[k][0] for parts in by_partition.values())
                for k in range(projector.partitions)
                if all(k in parts for parts in by_partition.values())
            },
            owned=len(projector.owned) if projector.working else None,
        )
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    graphql_app = CareteamGraphQL(
        holder,
        verifier,
        audit_refusal,
        schema=build_schema(
            production=settings.is_production, extensions=[app_metrics.extension()]
        ),
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=False,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
    )

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *contract_routes(settings),
            Route(
                "/graphql",
                BodyLimit(
                    JsonBodyCheck(Authenticate(graphql_app, verifier, audit_refusal)),
                    MAX_BODY_BYTES,
                ),
                methods=["GET", "POST"],
            ),
            WebSocketRoute(
                "/graphql",
                CheckWebSocketOrigin(
                    graphql_app, settings.allowed_origins, settings.allowed_origin_regex
                ),
            ),
            *(
                []
                if settings.is_production
                else [Mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="graphiql")]
            ),
            *(mount(lambda: holder.get("runtime"), verifier) for mount in mounts),
            console_route(),
            outcomes_routes(lambda: holder.get("runtime"), verifier),  # issue #19
        ],
        middleware=[
            Middleware(RequestIds),
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_origin_regex=settings.allowed_origin_regex,
                allow_methods=["POST"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "x-purpose-of-use",
                    "x-request-id",
                    "traceparent",
                    "idempotency-key",
                ],
                expose_headers=["x-request-id", "traceparent"],
            ),
        ],
        lifespan=lifespan,
        exception_handlers={
            cls: _unavailable for cls in (*CONNECTION_FAILURES, AuditUnavailableError)
        },
    )
    return app


async def _unavailable(_request: Request, exc: Exception) -> Response:
    """A request whose handling outside GraphQL's own error handling (authentication's
    audit record, /metrics, the FHIR routes) failed because the database was unavailable
    answers 503 with Retry-After and a typed body, never the exception's message."""
    log.warning("database unavailable error_type=%s", type(exc).__name__)
    return JSONResponse(
        {
            "errors": [
                {
                    "message": "The service is briefly unavailable (database); retry.",
                    "extensions": {
                        "code": UNAVAILABLE,
                        "retryable": True,
                        "retryAfterSeconds": RETRY_AFTER_SECONDS,
                    },
                }
            ]
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def build_verifier(settings: Settings) -> TokenVerifier:
    """The configured OIDC issuer, or (in development only) careteam's own dev issuer."""
    if settings.oidc_jwks_url is not None:
        assert settings.oidc_issuer is not None and settings.oidc_audience is not None
        return TokenVerifier(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            keys=JwksKeySource(settings.oidc_jwks_url),
            algorithms=settings.oidc_algorithms,
        )
    if settings.is_production:  # Settings.from_env refuses this; a guard for direct callers
        raise RuntimeError("production needs an OIDC issuer")
    dev = DevIssuer(settings.data_dir)
    return TokenVerifier(
        issuer=DEV_ISSUER, audience=DEV_AUDIENCE, keys=StaticKeySource(dev.public_key_set())
    )


def _purpose_error(exc: PurposeOfUseError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "extensions": {"code": exc.code, "field": PURPOSE_HEADER, "allowed": exc.allowed},
    }


class Authenticate:
    """Requires a valid bearer token on every GraphQL POST (GET only serves GraphiQL), and
    a purpose of use the caller's role may name (X-Purpose-Of-Use; else its default)."""

    def __init__(
        self,
        app: Any,
        verifier: TokenVerifier,
        audit_refusal: Callable[[Principal, str, str], Awaitable[None]],
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._audit_refusal = audit_refusal

    async def _check_purpose(
        self, scope: Any, headers: dict[str, str], principal: Principal
    ) -> JSONResponse | None:
        """Resolves the purpose into ``scope["state"]``, or the 400 refusing it (nothing
        runs; a purpose the role may not use is also an audited refusal)."""
        state = scope.setdefault("state", {})
        try:
            purpose = resolve_purpose(headers.get("x-purpose-of-use"), principal.role)
        except PurposeOfUseError as exc:
            log.info("purpose of use refused reason=%s", exc.code)
            if exc.code == NOT_PERMITTED:
                await self._audit_refusal(principal, exc.code, state.get("request_id", ""))
            return JSONResponse({"errors": [_purpose_error(exc)]}, status_code=400)
        state["purpose_of_use"] = purpose.value
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            token = bearer_token(headers.get("authorization"))
            reason = "MISSING_TOKEN"
            principal = None
            if token is not None:
                try:
                    principal = await self._verifier.verify(token)
                except AuthenticationError as exc:
                    reason = exc.reason
            if principal is not None:
                refused = await self._check_purpose(scope, headers, principal)
                if refused is not None:
                    await refused(scope, receive, send)
                    return
            if principal is None:
                log.info("authentication failed reason=%s", reason)
                response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": "authentication required: send a valid bearer token",
                                "extensions": {"code": "UNAUTHENTICATED", "reason": reason},
                            }
                        ]
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self._app(scope, receive, send)


class CheckWebSocketOrigin:
    """Browsers send Origin on WebSockets and CORS does not apply to them: refuse a browser
    socket from an origin not in CARETEAM_ALLOWED_ORIGINS (non-browser clients send none).
    In development the loopback origins are allowed too (``allowed_regex``)."""

    def __init__(self, app: Any, allowed: tuple[str, ...], allowed_regex: str | None) -> None:
        self._app = app
        self._allowed = set(allowed)
        self._allowed_regex = re.compile(allowed_regex) if allowed_regex else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            same_host = origin.split("://", 1)[-1] == host
            allowed = origin in self._allowed or bool(
                self._allowed_regex and self._allowed_regex.fullmatch(origin)
            )
            if origin and not same_host and not allowed:
                log.info("websocket refused: origin not allowed")
                await send({"type": "websocket.close", "code": 4403})
                return
        await self._app(scope, receive, send)


class JsonBodyCheck:
    """A JSON POST body must be UTF-8 and a JSON object; anything else is a 400 with a
    typed error (strawberry would fail on it with a 500)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not headers.get(b"content-type", b"").lower().startswith(b"application/json"):
            await self._app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            parsed = json.loads(body.decode("utf-8"))
            valid = isinstance(parsed, dict)
        except (UnicodeDecodeError, ValueError):
            valid = False
        if not valid:
            response = JSONResponse(
                {
                    "errors": [
                        {
                            "message": "the request body must be a JSON object",
                            "extensions": {"code": "BAD_REQUEST_BODY"},
                        }
                    ]
                },
                status_code=400,
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self._app(scope, replay, send)


class BodyLimit:
    """Refuses request bodies over a size limit with 413 before the app reads them."""

    def __init__(self, app: Any, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self._limit:
            await _too_large(send)
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._limit:
                    raise _BodyTooLarge
            return message

        try:
            await self._app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any) -> None:
    response = JSONResponse(
        {
            "errors": [
                {"message": "request body too large", "extensions": {"code": "PAYLOAD_TOO_LARGE"}}
            ]
        },
        status_code=413,
    )
    await response({"type": "http"}, None, send)  # type: ignore[arg-type]
