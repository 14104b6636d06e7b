"""Logs: a request id for every request and WebSocket, carried by every log record made while
handling it; one access line per request; JSON lines (LOG_FORMAT=json) or readable text.

- RequestLogMiddleware, the outermost layer of the app (main.py), gives each request its id
  (the client's `X-Request-ID` when it is plain and short, else a new one), sends it back as
  `X-Request-ID` on every answer, errors included, and writes the access line.
- configure_logging() sets the one handler and format, and folds uvicorn's own loggers into it
  (its access log off: ours replaces it), so plain `uvicorn main:app` logs this way.
- remember_user() notes the signed-in user (services/security.authenticate) for the records that follow.
"""

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import settings
from edge import client_ip

REQUEST_ID_HEADER = b"x-request-id"
# A client's id is kept only when short and plain: it is written into every log line.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# The messages that start an answer, and so get the header.
ANSWER_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})

access_log = logging.getLogger("madang.access")


class RequestContext:
    """What every log record made while handling one request carries."""

    __slots__ = ("request_id", "user_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.user_id: int | None = None


_current: ContextVar[RequestContext | None] = ContextVar("madang_request", default=None)


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def remember_user(user_id: int) -> None:
    """The request's user, once authenticated: on its log records from here on."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id


def incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value if SANE_REQUEST_ID.fullmatch(value) else None
    return None


class RequestLogMiddleware:
    """Pure ASGI, so it costs a few microseconds a request (BaseHTTPMiddleware would add a task
    and a body stream to each). Outermost, so the header is on every answer: the 413 of
    TooLargeAsJSON and the 500 of the server error handler too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_id = incoming_request_id(scope["headers"]) or uuid.uuid4().hex.encode()
        header = (REQUEST_ID_HEADER, raw_id)
        context = RequestContext(raw_id.decode())
        # Never reset: each request runs in a task of its own (uvicorn, TestClient), and after an
        # unhandled error the server logs the traceback in that task, which should carry the id.
        _current.set(context)
        status = 500  # what the server answers when the app answers nothing
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ANSWER_STARTS:
                message["headers"] = [*(message.get("headers") or ()), header]
                status = message.get("status", 101)
            elif kind == "websocket.close" and status == 500:
                status = 403  # closed before it was accepted: the server refuses the handshake
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                write_access_line(scope, status, time.perf_counter() - started)


def write_access_line(scope: Scope, status: int, seconds: float) -> None:
    method = scope.get("method", "WEBSOCKET")
    path = scope["path"]  # never the query string: /ws carries its token there
    duration_ms = round(seconds * 1000, 2)
    access_log.info(
        "%s %s %d %.1f ms",
        method,
        path,
        status,
        duration_ms,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "client": client_ip(scope),  # the address rate limits count, not a forgeable header
        },
    )


# --- records and formats --------------------------------------------------------------------

RecordFactory = Callable[..., logging.LogRecord]


class RequestContextRecords:
    """A record factory whose records carry the current request's id (None outside a request)
    and, once known, its user's id: for every handler alike (ours, a test's capture, anyone's)."""

    carries_request_context = True  # configure_logging wraps the factory once

    def __init__(self, make_record: RecordFactory) -> None:
        self.make_record = make_record

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        context = _current.get()
        record.request_id = context.request_id if context is not None else None
        if context is not None and context.user_id is not None:
            record.user_id = context.user_id
        return record


# What every LogRecord has; anything else on a record is an extra worth writing out.
STANDARD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "color_message",  # uvicorn's copy of the message with terminal colors
}


# Made once: json.dumps with any option builds a new encoder on every call.
JSON_LINE = json.JSONEncoder(ensure_ascii=False, default=str)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_FIELDS and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return JSON_LINE.encode(entry)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message`, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or "-"
        when = self.formatTime(record)
        line = f"{when} {record.levelname:<7} {record.name} [{request_id}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record comes (a test runner swaps it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        return


HANDLER_NAME = "madang"


def configure_logging() -> None:
    """The root logger writes to stderr in LOG_FORMAT at LOG_LEVEL; uvicorn's loggers go through
    it too, without uvicorn's access log. Called again, it replaces its own handler only."""
    if not getattr(logging.getLogRecordFactory(), "carries_request_context", False):
        logging.setLogRecordFactory(RequestContextRecords(logging.getLogRecordFactory()))
    handler = StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JSONFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [each for each in root.handlers if each.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL)
    logging.captureWarnings(True)  # a Python warning becomes a record too, not a stray line
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # uvicorn writes its access line only when this logger has a handler somewhere.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    logging.getLogger("uvicorn.error").addFilter(without_websocket_handshakes)
    logging.getLogger("uvicorn.error").addFilter(without_client_fault_tracebacks)
    logging.getLogger("asyncio").addFilter(without_closing_socket_stumbles)


# uvicorn's words for a client's text frame that is not UTF-8, which it rightly answers by
# closing the socket with 1007 (RFC 6455 §8.1).
CLIENT_FAULTS = ("Invalid UTF-8 sequence received from client.",)


def without_client_fault_tracebacks(record: logging.LogRecord) -> bool:
    """uvicorn logs a client's broken frame with a traceback of its own code; the client is at
    fault, not the server, so one line says it all (a client cannot fill the log with them)."""
    if record.msg in CLIENT_FAULTS:
        record.exc_info = record.exc_text = None
    return True


def without_closing_socket_stumbles(record: logging.LogRecord) -> bool:
    """uvicorn answers that bad frame with a close even when the client's own close came in the
    same packet; the websockets library refuses (InvalidState) and asyncio logs a "fatal error"
    with two tracebacks. The connection is gone either way and uvicorn's line said why."""
    error = record.exc_info[1] if record.exc_info else None
    return not (
        error is not None
        and type(error).__name__ == "InvalidState"
        and type(error).__module__.startswith("websockets")
    )


def without_websocket_handshakes(record: logging.LogRecord) -> bool:
    """uvicorn logs each WebSocket handshake with its query string, which holds /ws's token;
    our access line says the same without it."""
    return not (isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"'))
