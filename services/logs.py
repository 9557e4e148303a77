"""Logs without patient data: one line per event, with the request id: ``key=value``
words (``CARETEAM_LOG_FORMAT=text``, the default) or one JSON object
(``CARETEAM_LOG_FORMAT=json``) with the same fields.

What a line may carry (docs/privacy.md has the policy):

- careteam's own loggers (``careteam.*``): their message, which by rule holds only ids,
  codes, counts and type names (never names, birth dates, MRNs, free text, GraphQL
  variables or documents); a message ending in ``key=value`` words is split into fields;
- every other library's logger: only the constant template of its message, cut before the
  first quote, bracket or parenthesis, and never its arguments (uvicorn, asyncio and the
  GraphQL libraries format requests, reprs and values into theirs), except a few
  templates known to carry only the server's own address or process id;
- an exception: its type, the types of its causes, and the frames of careteam's own code
  (file, line, function), never its message, never local values, never library frames.

The request id (and the W3C trace id) come from context variables that the HTTP middleware
sets, so every line logged while a request is served carries them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from services.tracing import TRACEPARENT, trace_id_of

REQUEST_ID: ContextVar[str | None] = ContextVar("careteam_request_id", default=None)

_ROOT = Path(__file__).resolve().parents[1]
_OWN_DIRS = tuple(str(_ROOT / name) + "/" for name in ("domain", "services", "projections"))

# Library messages whose arguments are the server's own address or process id.
_SAFE_TEMPLATES = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
    }
)
_TEMPLATE_CUT = re.compile(r"[^A-Za-z0-9 %,.;:_/-]")
_PAIR = re.compile(r"^[a-z][a-z0-9_]*=\S*$")
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+,-]+$")


def _value(value: object) -> str:
    text = str(value)
    if _BARE.match(text):
        return text
    return json.dumps(text)


def _own_message(record: logging.LogRecord) -> list[tuple[str, object]]:
    """careteam's message: its text as ``msg``, trailing ``key=value`` words as fields."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the line
        message = str(record.msg)
    words = message.split(" ")
    start = len(words)
    while start > 0 and _PAIR.match(words[start - 1]):
        start -= 1
    fields: list[tuple[str, object]] = []
    text = " ".join(words[:start])
    if text:
        fields.append(("msg", text))
    for word in words[start:]:
        key, _, value = word.partition("=")
        fields.append((key, value))
    return fields


def library_message(record: logging.LogRecord) -> str:
    """A library's message reduced to what cannot hold request data (see the module)."""
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if template in _SAFE_TEMPLATES:
        try:
            return record.getMessage()
        except Exception:
            return template
    first = template.split("\n", 1)[0]
    cut = _TEMPLATE_CUT.search(first)
    return (first[: cut.start()] if cut else first).strip()[:200]


def own_frames(tb: TracebackType | None) -> list[str]:
    """``path:line in function`` for each frame of careteam's code, outermost first."""
    frames = []
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith(_OWN_DIRS):
            path = frame.filename[len(str(_ROOT)) + 1 :]
            frames.append(f"{path}:{frame.lineno} in {frame.name}")
    return frames


def exception_fields(exc: BaseException) -> list[tuple[str, object]]:
    """The exception's type, its causes' types and careteam's frames; never a message."""
    fields: list[tuple[str, object]] = [("error_type", _type_name(exc))]
    chain = [exc]
    inner = exc.__cause__ or exc.__context__
    while inner is not None and inner not in chain and len(chain) < 6:
        chain.append(inner)
        inner = inner.__cause__ or inner.__context__
    if len(chain) > 1:
        fields.append(("caused_by", ",".join(_type_name(e) for e in chain[1:])))
    # Each exception's own frames, the outermost exception first, separated by " | ".
    frames = [" > ".join(own_frames(e.__traceback__)) or "-" for e in chain]
    fields.append(("traceback", " | ".join(frames)))
    return fields


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def record_fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    """What one line says: ts, level, logger, request_id, trace_id, then the message's
    fields (see the module for what each may hold)."""
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    fields: list[tuple[str, object]] = [
        ("ts", stamp.replace("+00:00", "Z")),
        ("level", record.levelname),
        ("logger", record.name),
    ]
    request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
    if request_id:
        fields.append(("request_id", request_id))
    if traceparent := TRACEPARENT.get():
        fields.append(("trace_id", trace_id_of(traceparent)))
    if record.name == "careteam" or record.name.startswith("careteam."):
        fields += _own_message(record)
    else:
        fields.append(("msg", library_message(record)))
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        fields += list(extra.items())
    if record.exc_info and record.exc_info[1] is not None:
        fields += exception_fields(record.exc_info[1])
    return fields


class KeyValueFormatter(logging.Formatter):
    """One line per record: ``key=value`` words (``record_fields``)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_value(value)}" for key, value in record_fields(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the fields of ``record_fields`` (a repeated key
    keeps its last value); numbers, booleans and null stay JSON values, anything else
    becomes its text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {}
        for key, value in record_fields(record):
            plain = value is None or isinstance(value, bool | int | float | str)
            out[key] = value if plain else str(value)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def configure_logging(level: int = logging.INFO, log_format: str = "text") -> None:
    """Every logger of the process through one formatter on stderr (``text``: key=value,
    ``json``: one object per line); uncaught exceptions (main thread and others) logged
    the same way instead of printed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    crash = logging.getLogger("careteam.crash")

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        crash.critical("uncaught exception", exc_info=(kind, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            crash.critical(
                "uncaught exception in a thread",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )

    sys.excepthook = excepthook
    threading.excepthook = thread_hook


def log_fields(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: fields appended to the line as key=value."""
    return {"fields": fields}
