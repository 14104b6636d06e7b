"""The live socket, `WS /api/v1/ws?token=<access token>`: one per client, for every live event.

Frames are JSON text. Once the socket is signed in and registered the server sends
{"type": "ready", "user": {id, name}, "expires_at"}: every event from then on reaches it, so
that is the moment to fetch what was missed (history with after_id). The socket lives until
its token expires (expires_at), unless the client sends a fresh one first. A client sends:
  {"type": "chat.send", "session_id", "content", "client_id"}
      → this socket gets {"type": "chat.ack", "client_id", "message"}; every socket of every
        member (the opener, every administrator; this one too) gets {"type": "chat.message",
        "message"}. A resend with the same client_id gets the same ack and sends nothing more.
  {"type": "chat.read", "session_id", "last_read_id"}  → members get {"type": "chat.read", ...}
  {"type": "chat.typing", "session_id"}                → other members get {"type": "chat.typing",
                                                         "session_id", "user"} (nothing is stored)
  {"type": "auth", "token": <access token>} → {"type": "auth.ok", "expires_at"}: the socket now
      lives until the later of the two tokens' expiry. A bad token is an error event
      (invalid_token, token_expired, token_revoked) and the old deadline stands; another
      user's token closes the socket with 4401 "wrong_user".
  {"type": "ping"} → {"type": "pong"}; {"type": "pong"} answers the server's ping.
The server also sends chat.edited {"message"}, chat.deleted {"session_id", "message_id",
"message": the tombstone, content null except for administrators}, chat.session (opened,
renamed, closed), {"type": "ping"} every CHAT_PING_SECONDS (answer with pong, or send
anything), {"type": "resync"} when live events may have been missed (fetch history with
after_id), and {"type": "error", "code", "detail"[, "client_id"]} for any bad frame (the
detail names fields and rules, not the frame's values but a short unknown type); the socket
stays open.

Close codes: 4401 missing, bad or expired token (also when the token expires on an open
socket: reason "token_expired"), or another user's token in `auth`; 4403 banned (also at once
on a ban); 4408 no heartbeat; 1013 the socket could not keep up with its events.

Events for a socket go through its own bounded queue and writer task, so one slow socket
never holds up the others. Database work runs in a worker thread with its own Session.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import anyio
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from config import settings
from database import session_scope
from errors import DomainError, Forbidden, Unauthorized
from models import User
from schemas import (
    AuthEvent,
    ChatReadEvent,
    ChatSendEvent,
    ChatTypingEvent,
    ChatUser,
    ClientEvent,
    ClientId,
    PingEvent,
    PongEvent,
)
from services import chat, security
from services.broker import NO_BROKER, Audience, Broker, LiveEvents, deliver_envelope

log = logging.getLogger(__name__)

CLIENT_EVENTS: TypeAdapter[Any] = TypeAdapter(ClientEvent)
CLIENT_ID: TypeAdapter[str] = TypeAdapter(ClientId)
MAX_ECHOED_TYPE_CHARS = 32  # an unknown type is named in the error only when this short
MAX_FRAME_CHARS = 4096  # a chat.send with 256 characters of content is far smaller
TYPING_CACHE_SIZE = 1000
PING = json.dumps({"type": "ping"})
PONG = json.dumps({"type": "pong"})

T = TypeVar("T")


class SocketTransport(Protocol):
    """What this module needs of a WebSocket (Starlette's fits)."""

    async def accept(self) -> None: ...
    async def receive(self) -> Any: ...
    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


async def in_thread(function: Callable[..., T], /, **kwargs: Any) -> T:
    """Runs a sync service function in a worker thread with a Session of its own, so the
    event loop never waits on the database."""

    def work() -> T:
        with session_scope() as session:
            return function(session, **kwargs)

    return await anyio.to_thread.run_sync(work)


def _authenticate(session: Session, *, token: str | None) -> User:
    return security.authenticate(session, token)


def expiry_of(token: str | None) -> float:
    """When a token the socket was just signed in with expires (a Unix time)."""
    return security.token_claims(token).expires_at


def timestamp(unix_time: float) -> str:
    """A Unix time as the API writes times: ISO 8601, UTC."""
    return datetime.fromtimestamp(unix_time, UTC).isoformat().replace("+00:00", "Z")


async def serve(websocket: SocketTransport, *, live: Broker, token: str | None) -> None:
    """Serves one socket for its life; `live` is the running app's broker, whose Hub holds it."""
    # Accept first: a close code (4401, 4403) can only be sent on an open socket.
    await websocket.accept()
    try:
        user = await in_thread(_authenticate, token=token)
        expires_at = expiry_of(token)
    except Unauthorized as exc:
        await websocket.close(chat.CLOSE_UNAUTHORIZED, exc.code)
        return
    except Forbidden as exc:
        await websocket.close(chat.CLOSE_BANNED, exc.code)
        return
    connection = Connection(websocket, user, expires_at=expires_at, live=live)
    live.hub.register(connection)
    try:
        try:
            # A ban committed between the check above and register() closed no socket: look again.
            await in_thread(_authenticate, token=token)
        except Forbidden as exc:
            connection.close(chat.CLOSE_BANNED, exc.code)
        except Unauthorized as exc:
            connection.close(chat.CLOSE_UNAUTHORIZED, exc.code)
        else:
            # From here on every event for this user reaches this socket; the client may now
            # fetch what it missed while away (history with after_id).
            connection.send_event(
                {
                    "type": "ready",
                    "user": ChatUser.model_validate(user).model_dump(),
                    "expires_at": timestamp(expires_at),
                }
            )
        await connection.run()
    finally:
        live.hub.unregister(connection)


class TokenBucket:
    """Allows `rate` frames a second on average, in bursts of up to `rate`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    """One open socket: its reader, its writer with a bounded queue, its heartbeat, and the
    deadline its token sets."""

    def __init__(
        self, websocket: SocketTransport, user: User, *, expires_at: float, live: LiveEvents = NO_BROKER
    ) -> None:
        """live: where the socket's events go (the app's broker; NO_BROKER for one built alone,
        which tells nobody)."""
        self.websocket = websocket
        self.live = live
        self.user = user
        self.user_id = user.id
        self.is_admin = user.is_superuser
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.CHAT_SEND_QUEUE)
        self.rate = TokenBucket(settings.CHAT_MESSAGES_PER_SECOND) if settings.RATE_LIMIT_ENABLED else None
        self.last_heard = time.monotonic()
        # The socket speaks for its user until the token it opened with expires (a Unix time,
        # as a JWT's exp), or the later expiry of a fresh token the client sent in `auth`.
        self.expires_at = expires_at
        self.close_code: int | None = None
        self.close_reason = ""
        self.client_gone = False
        self._cancel_scope: anyio.CancelScope | None = None
        self._typing_audiences: dict[int, Audience] = {}

    # --- called by the Hub (on the event loop); never wait ---------------------------------

    def deliver(self, text: str) -> None:
        if self.close_code is not None:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.close(chat.CLOSE_TOO_SLOW, "too slow")

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    # --- the socket's life ------------------------------------------------------------------

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            self._cancel_scope = tasks.cancel_scope
            if self.close_code is not None:
                tasks.cancel_scope.cancel()
            tasks.start_soon(self._write)
            tasks.start_soon(self._heartbeat)
            tasks.start_soon(self._expire)
            tasks.start_soon(self._read)
        if self.close_code is not None and not self.client_gone:
            with contextlib.suppress(Exception):
                await self.websocket.close(self.close_code, self.close_reason)

    def _stop(self) -> None:
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def _write(self) -> None:
        try:
            while True:
                await self.websocket.send_text(await self.outbox.get())
        except Exception:  # the client went away mid-send
            self.client_gone = True
            self._stop()

    async def _heartbeat(self) -> None:
        interval = settings.CHAT_PING_SECONDS
        while True:
            await anyio.sleep(interval)
            if time.monotonic() - self.last_heard > 2 * interval:
                self.close(chat.CLOSE_NO_HEARTBEAT, "no heartbeat")
                return
            self.deliver(PING)

    async def _expire(self) -> None:
        """Closes the socket when its token expires; an `auth` moves the deadline later, and
        this wakes at the old one only to sleep on to the new."""
        while (left := self.expires_at - time.time()) > 0:
            await anyio.sleep(left)
        self.close(chat.CLOSE_UNAUTHORIZED, "token_expired")

    def expired(self) -> bool:
        return time.time() >= self.expires_at

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.client_gone = True
                self._stop()
                return
            self.last_heard = time.monotonic()
            await self._handle(message.get("text"))

    # --- one frame from the client ----------------------------------------------------------

    def send_event(self, event: dict[str, Any]) -> None:
        self.deliver(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def send_error(self, code: str, detail: str, *, client_id: str | None = None) -> None:
        event: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if client_id is not None:
            event["client_id"] = client_id
        self.send_event(event)

    async def _handle(self, text: str | None) -> None:
        if self.expired():
            # The timer may not have closed the socket yet: a frame after the deadline is not
            # acted on, whatever it holds.
            self.close(chat.CLOSE_UNAUTHORIZED, "token_expired")
            return
        if self.rate is not None and not self.rate.allow():
            self.send_error(
                "rate_limited", f"more than {settings.CHAT_MESSAGES_PER_SECOND} messages a second; slow down"
            )
            return
        try:
            event, client_id = parse_frame(text)
        except BadFrame as bad:
            # The client's mistake, not the server's: an error event, and no log line.
            self.send_error(bad.code, bad.detail, client_id=bad.client_id)
            return
        try:
            await self._dispatch(event)
        except DomainError as exc:
            self.send_error(exc.code, exc.detail, client_id=client_id)
        except Exception:
            log.exception("chat socket event failed")
            self.send_error("internal_error", "the server could not handle this event", client_id=client_id)

    async def _dispatch(self, event: object) -> None:
        match event:
            case ChatSendEvent():
                sent = await in_thread(
                    chat.send_message,
                    user=self.user,
                    conversation_id=event.session_id,
                    content=event.content,
                    client_id=event.client_id,
                    live=self.live,
                )
                self.send_event(
                    {
                        "type": "chat.ack",
                        "client_id": event.client_id,
                        "message": sent.message.model_dump(mode="json"),
                    }
                )
            case ChatReadEvent():
                await in_thread(
                    chat.mark_read_by_id,
                    user=self.user,
                    conversation_id=event.session_id,
                    last_read_id=event.last_read_id,
                    live=self.live,
                )
            case ChatTypingEvent():
                await self._relay_typing(event.session_id)
            case AuthEvent():
                await self._reauthenticate(event.token)
            case PingEvent():
                self.deliver(PONG)
            case PongEvent():
                pass

    async def _reauthenticate(self, token: str) -> None:
        """A fresh access token for this socket: the checks of the handshake (signature,
        expiry, token version, ban, deletion) and the same user. A bad token is an error event
        (Unauthorized: invalid_token, token_expired, token_revoked) and the deadline stays."""
        claims = security.token_claims(token)
        if claims.user_id != self.user_id:
            # The client now speaks for someone else; this socket carries this user's private
            # events, so it ends rather than lingering until its own token runs out.
            self.close(chat.CLOSE_UNAUTHORIZED, "wrong_user")
            return
        try:
            await in_thread(_authenticate, token=token)
        except Forbidden as exc:
            self.close(chat.CLOSE_BANNED, exc.code)
            return
        # The later of the two: the older token is still valid until its own expiry.
        self.expires_at = max(self.expires_at, claims.expires_at)
        self.send_event({"type": "auth.ok", "expires_at": timestamp(self.expires_at)})

    async def _relay_typing(self, conversation_id: int) -> None:
        """Typing is frequent and never stored: who may hear of it is looked up once per
        conversation and remembered for the socket's life."""
        audience = self._typing_audiences.get(conversation_id)
        if audience is None:
            audience = await in_thread(chat.typing_audience, user=self.user, conversation_id=conversation_id)
            if len(self._typing_audiences) >= TYPING_CACHE_SIZE:
                self._typing_audiences.clear()
            self._typing_audiences[conversation_id] = audience
        event = {
            "type": "chat.typing",
            "session_id": conversation_id,
            "user": {"id": self.user.id, "name": self.user.name},
        }
        await self.live.publish(deliver_envelope(audience, event))


class BadFrame(Exception):
    """A frame that holds no valid client event: the error event to answer it with."""

    def __init__(self, code: str, detail: str, *, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.client_id = code, detail, client_id


def parse_frame(text: str | None) -> tuple[object, str | None]:
    """The client event a frame holds and its client_id (if it names a valid one); BadFrame
    for anything else. Never raises anything but BadFrame, whatever the frame holds."""
    if text is None:
        raise BadFrame("invalid_json", "send JSON in text frames")
    if len(text) > MAX_FRAME_CHARS:
        raise BadFrame("too_large", f"a frame holds at most {MAX_FRAME_CHARS} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's recursion limit, "[[[[...]]]]";
        # ValueError includes an integer of more digits than sys.get_int_max_str_digits().
        raise BadFrame("invalid_json", "the frame is not valid JSON") from None
    client_id = echoable_client_id(data.get("client_id") if isinstance(data, dict) else None)
    try:
        return CLIENT_EVENTS.validate_python(data), client_id
    except ValidationError as exc:
        raise BadFrame(*describe_invalid(exc, data), client_id=client_id) from None


def echoable_client_id(value: object) -> str | None:
    """The client_id to name in an error event: only a valid one (short, plain ASCII), so an
    error never echoes arbitrary input back (a lone surrogate could not even be sent)."""
    try:
        return CLIENT_ID.validate_python(value, strict=True)
    except ValidationError:
        return None


def describe_invalid(exc: ValidationError, data: object) -> tuple[str, str]:
    """An error code and a readable detail for a frame that is JSON but not a valid event.
    The detail names fields and rules; of the frame's values, at most a short event type."""
    first = exc.errors()[0]
    if first["type"] == "union_tag_invalid":
        kind = data.get("type") if isinstance(data, dict) else None
        if isinstance(kind, str) and len(kind) <= MAX_ECHOED_TYPE_CHARS and kind.isprintable():
            return "unknown_type", f"unknown event type {kind!r}"
        return "unknown_type", "unknown event type"
    if first["type"] == "union_tag_not_found":
        return "invalid_input", "the event has no 'type'"
    if first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "invalid_input", "an event is a JSON object"
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"][1:])  # [0] is the event type
        problems.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "invalid_input", "; ".join(problems)
