"""A fan-out group's result encoded once and spliced per subscriber (services/api/transport.py)
makes exactly the frame strawberry would send to that subscriber."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.types.execution import ExecutionResult, PreExecutionError

from services import jsontext
from services.api.fanout import SharedResult, shared
from services.api.transport import next_frame


class _Recorder:
    """What ``Operation.send_next`` needs of a handler: it records the message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def send_message(self, message: Any) -> None:
        self.messages.append(message)

    def forget_id(self, _id: str) -> None:
        pass


async def strawberrys_frame(operation_id: str, result: ExecutionResult) -> str:
    """The frame strawberry's own code sends: its message, encoded by the view's encoder
    (services/api/app.py, ``CareteamGraphQL.encode_json``)."""
    recorder = _Recorder()
    operation = Operation(recorder, operation_id, "subscription { x }", None, None)  # type: ignore[arg-type]
    await operation.send_next(result)
    [message] = recorder.messages
    return jsontext.dumps(message)


EVENT = {
    "careEvents": {
        "eventType": "patient.task_created",
        "position": "0:12",
        "payload": {"kind": "other", "due_on": "2026-12-12", "count": 3, "ok": True, "x": None},
    }
}
RESULTS = [
    ExecutionResult(data=EVENT, errors=None),
    ExecutionResult(
        data={"careEvents": {"payload": {"text": 'é — 漢字 \n\t " \\ \u2028'}}}, errors=None
    ),
    ExecutionResult(
        data=None, errors=[GraphQLError("too slow", extensions={"code": "SUBSCRIBER_TOO_SLOW"})]
    ),
    ExecutionResult(data=EVENT, errors=None, extensions={"cost": 1}),
    ExecutionResult(data={"careEvents": {"payload": {"n": 2**70}}}, errors=None),
    ExecutionResult(data={"careEvents": {"payload": {"s": "\ud800"}}}, errors=None),
]
IDS = ["1", "a7f3e0c2-5b1d-4c8e-9f00-1234567890ab", 'tab "two" \\ é', "\x01", "\udc00"]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("operation_id", IDS)
async def test_the_spliced_frame_is_the_one_strawberry_sends(
    result: ExecutionResult, operation_id: str
) -> None:
    one = shared(result)
    assert isinstance(one, SharedResult)
    frame = next_frame(operation_id, one)
    expected = await strawberrys_frame(operation_id, result)
    if frame is None:  # encoded whole by strawberry's code, as before
        assert jsontext.dumps_fast(operation_id) is None or one.encoded_payload is False
    else:
        assert frame == expected


async def test_one_encoding_serves_every_member() -> None:
    one = shared(RESULTS[0])
    assert isinstance(one, SharedResult)
    frames = [next_frame(str(i), one) for i in range(3)]
    payload = one.encoded_payload
    assert isinstance(payload, str)
    assert frames == [await strawberrys_frame(str(i), RESULTS[0]) for i in range(3)]
    assert all(frame is not None and frame.endswith(payload + "}") for frame in frames)


def test_only_plain_results_are_shared_as_such() -> None:
    early = PreExecutionError(data=None, errors=[GraphQLError("bad document")])
    assert shared(early) is early
    assert type(shared(RESULTS[0])) is SharedResult
    one = shared(RESULTS[3])
    assert isinstance(one, SharedResult)
    assert (one.data, one.errors, one.extensions) == (EVENT, None, {"cost": 1})
