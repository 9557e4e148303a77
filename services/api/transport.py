"""graphql-transport-ws as strawberry speaks it, with one shortcut for shared results.

A fan-out group (services/api/fanout.py) hands the same ``SharedResult`` to each of its
members. strawberry would build each member's ``next`` message as a dict and encode it
whole, so the event's data were encoded as JSON once per subscriber. Here the message's
payload is encoded once, by the first member's connection, and each member's frame is
that text with its own operation id spliced in front: the same bytes strawberry's
``Operation.send_next`` and the view's ``encode_json`` would send (orjson writes a dict's
keys in order, compactly, so the frame's text is the concatenation of its parts' texts).
Where orjson refuses a part (a lone surrogate, an integer beyond 64 bits) and the
encoder would fall back to the standard library's escaping, that member's message is
encoded whole as before.

Everything else (errors before execution, incremental delivery, results of a
subscription running alone) goes through strawberry's own code.
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from services import jsontext
from services.api.fanout import SharedResult


class FrameWebSocketAdapter(ASGIWebSocketAdapter):
    """strawberry's ASGI WebSocket adapter, which can also send a frame already encoded."""

    async def send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def next_payload(result: ExecutionResult) -> dict[str, Any]:
    """The ``next`` message's payload, as strawberry's ``Operation.send_next`` builds it."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def encoded_payload(result: SharedResult) -> str | None:
    """The JSON text of the result's ``next`` payload, made on first use and kept on the
    result for every other member (None: it cannot be spliced)."""
    if result.encoded_payload is None:
        text = jsontext.dumps_fast(next_payload(result))
        result.encoded_payload = False if text is None else text
    return result.encoded_payload if isinstance(result.encoded_payload, str) else None


def next_frame(operation_id: str, result: SharedResult) -> str | None:
    """The ``next`` message to ``operation_id`` as JSON text, or None where it has to be
    encoded whole."""
    payload = encoded_payload(result)
    if payload is None:
        return None
    identifier = jsontext.dumps_fast(operation_id)
    if identifier is None:
        return None
    return '{"id":' + identifier + ',"type":"next","payload":' + payload + "}"


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's handler; a ``SharedResult`` is sent as a spliced frame."""

    async def _send_result_stream(self, operation: Operation[Any, Any], result_source: Any) -> None:
        # strawberry's loop (BaseGraphQLTransportWSHandler._send_result_stream), with the
        # shared result first.
        is_first_result = True
        async for result in result_source:
            if isinstance(result, SharedResult):
                await self._send_shared(operation, result)
            elif is_first_result and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            elif not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            else:
                await operation.send_next(result)
            is_first_result = False

    async def _send_shared(self, operation: Operation[Any, Any], result: SharedResult) -> None:
        if operation.completed:  # as Operation.send_operation_message
            return
        websocket = self.websocket
        frame = next_frame(operation.id, result)
        if frame is None or not isinstance(websocket, FrameWebSocketAdapter):
            await operation.send_next(result)
            return
        await websocket.send_text(frame)
