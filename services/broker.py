"""Live events between API processes and the sockets they hold.

Every live event (a chat message, a read marker, "close this user's sockets") is published
to the broker as an *envelope*; the broker hands every envelope to the Hub of every API
process, and each Hub delivers it to the matching sockets it holds.

- InProcessBroker (the embedded default): the one process is the whole world.
- RedisBroker (when REDIS_URL is set): one pub/sub channel shared by every process, so any
  number of API processes behind a load balancer reach each other's sockets. It reconnects
  by itself after losing Redis and then tells its sockets to `resync`: events published while
  it was away are not replayed, but every message is in the database and clients catch up
  with `GET /chat/sessions/{id}/messages?after_id=`.

Services publish from worker threads with `publish_threadsafe`; the Hub and the brokers run
on the event loop.
"""

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis

from config import settings

log = logging.getLogger(__name__)

PUBLISH_WAIT_SECONDS = 2.0
RESYNC_EVENT = json.dumps({"type": "resync"})


class Connection(Protocol):
    """What the Hub needs of one open socket (services/chat_socket.Connection)."""

    user_id: int
    is_admin: bool

    def deliver(self, text: str) -> None:
        """Queues one event (already JSON) for the socket; never waits."""

    def close(self, code: int, reason: str) -> None:
        """Closes the socket soon; never waits."""


@dataclass(frozen=True)
class Audience:
    """Who receives an event: the sockets of these users, and of every administrator."""

    user_ids: tuple[int, ...] = ()
    admins: bool = False
    except_user_id: int | None = None  # e.g. the one typing does not see their own typing


def deliver_envelope(audience: Audience, event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "op": "deliver",
            "user_ids": list(audience.user_ids),
            "admins": audience.admins,
            "except_user_id": audience.except_user_id,
            # Serialized once here, sent as-is to every socket on every process.
            "event": json.dumps(event, ensure_ascii=False, separators=(",", ":")),
        }
    )


def close_envelope(user_id: int, *, code: int, reason: str) -> str:
    return json.dumps({"op": "close", "user_id": user_id, "code": code, "reason": reason})


class Hub:
    """The sockets this process holds, by user, and the administrators among them."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[Connection]] = defaultdict(set)
        self._admins: set[Connection] = set()

    def register(self, connection: Connection) -> None:
        self._by_user[connection.user_id].add(connection)
        if connection.is_admin:
            self._admins.add(connection)

    def unregister(self, connection: Connection) -> None:
        sockets = self._by_user.get(connection.user_id)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self._by_user[connection.user_id]
        self._admins.discard(connection)

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_user.values())

    def holds(self, user_id: int) -> bool:
        """Whether a socket of this user is open here (a dict lookup: safe from any thread)."""
        return user_id in self._by_user

    def dispatch(self, envelope: dict[str, Any]) -> None:
        if envelope.get("op") == "close":
            for connection in list(self._by_user.get(envelope["user_id"], ())):
                connection.close(envelope["code"], envelope["reason"])
            return
        targets: set[Connection] = set()
        for user_id in envelope["user_ids"]:
            targets.update(self._by_user.get(user_id, ()))
        if envelope["admins"]:
            targets.update(self._admins)
        skipped = envelope.get("except_user_id")
        for connection in targets:
            if connection.user_id != skipped:
                connection.deliver(envelope["event"])

    def resync_all(self) -> None:
        for sockets in list(self._by_user.values()):
            for connection in list(sockets):
                connection.deliver(RESYNC_EVENT)


class Broker:
    """Carries envelopes to the Hub of every process (this one included)."""

    def __init__(self) -> None:
        self.hub = Hub()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._loop = None

    async def publish(self, envelope: str) -> None:
        raise NotImplementedError

    def may_reach(self, user_id: int) -> bool:
        """Whether an event for this user's sockets could reach one (any process's)."""
        return True

    def publish_threadsafe(self, envelope: str) -> None:
        """Publishes from a worker thread (a sync service), waiting until the broker has taken
        the envelope. A failure is logged, not raised: the data is already committed and
        clients catch up from the database."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:  # called on the loop itself: must not block it
            task = loop.create_task(self.publish(envelope))
            self._pending.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._pending.discard)
            return
        future = asyncio.run_coroutine_threadsafe(self.publish(envelope), loop)
        try:
            future.result(timeout=PUBLISH_WAIT_SECONDS)
        except Exception:
            log.warning("live event not published", exc_info=True)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class InProcessBroker(Broker):
    async def publish(self, envelope: str) -> None:
        self.hub.dispatch(json.loads(envelope))

    def may_reach(self, user_id: int) -> bool:
        return self.hub.holds(user_id)  # this process's sockets are all there are


class RedisBroker(Broker):
    """Redis pub/sub on one channel; every process subscribes and filters for its sockets."""

    # As CLIENT LIST shows it: which process holds the subscription, for operators (and tests).
    CLIENT_NAME = f"madang-live-{os.getpid()}"
    RECONNECT_MAX_SECONDS = 2.0
    IDLE_PING_SECONDS = 5.0  # no traffic for this long: ping Redis; no answer in as long: reconnect

    def __init__(self, url: str, channel: str) -> None:
        super().__init__()
        self.channel = channel
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_keepalive=True, client_name=self.CLIENT_NAME
        )
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        self.subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="redis-broker-listener")
        # Start serving even if Redis is down: the listener keeps trying, REST keeps working.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()
        await super().stop()

    async def publish(self, envelope: str) -> None:
        try:
            await self._redis.publish(self.channel, envelope)
        except (redis.RedisError, OSError):
            # Live delivery is best effort: the data is committed and clients catch up.
            log.warning("redis unavailable; live event dropped", exc_info=True)

    async def _listen(self) -> None:
        delay = 0.05
        ever_subscribed = False
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    log.info("subscribed to redis channel %s", self.channel)
                    if ever_subscribed:
                        self.hub.resync_all()  # events may have been missed while away
                    ever_subscribed, delay = True, 0.05
                    self.subscribed.set()
                    await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("redis broker lost (%s); reconnecting in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.RECONNECT_MAX_SECONDS)

    async def _receive(self, pubsub: Any) -> None:
        last_heard = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self.IDLE_PING_SECONDS)
            now = time.monotonic()
            if message is None:
                if now - last_heard < self.IDLE_PING_SECONDS:
                    continue
                if pinged:
                    raise ConnectionError("redis did not answer a ping")
                await pubsub.ping()
                pinged = True
                continue
            last_heard, pinged = now, False
            if message["type"] != "message":
                continue  # a pong
            try:
                envelope = json.loads(message["data"])
            except ValueError:
                log.warning("ignoring a malformed envelope on %s", self.channel)
                continue
            self.hub.dispatch(envelope)


_current: Broker | None = None


def get_broker() -> Broker | None:
    """The broker of the running app, or None outside it (a CLI, a test without a client)."""
    return _current


def create_broker() -> Broker:
    if settings.REDIS_URL:
        return RedisBroker(settings.REDIS_URL, settings.BROKER_CHANNEL)
    return InProcessBroker()


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Broker]:
    """Starts the broker for the app's lifetime (main.py's lifespan)."""
    global _current  # noqa: PLW0603 - one broker per process, like the engine
    broker = create_broker()
    await broker.start()
    _current = broker
    try:
        yield broker
    finally:
        if _current is broker:
            _current = None
        await broker.stop()


def publish(audience: Audience, event: dict[str, Any]) -> None:
    """Sends an event to the audience's sockets on every process (callable from any thread)."""
    broker = _current
    if broker is not None:
        broker.publish_threadsafe(deliver_envelope(audience, event))


def may_reach(user_id: int) -> bool:
    """Whether an event published for this user's sockets now could reach one: false when the
    broker is this process's alone and holds none of theirs (callable from any thread). A
    socket opened just after the answer misses the event, as if it had opened a moment later;
    clients catch up from the database."""
    broker = _current
    return broker is not None and broker.may_reach(user_id)


def close_user_sockets(user_id: int, *, code: int, reason: str) -> None:
    """Closes every socket of this user on every process (e.g. a ban)."""
    broker = _current
    if broker is not None:
        broker.publish_threadsafe(close_envelope(user_id, code=code, reason=reason))
