"""The one broker: messages on named channels between the processes of a deployment, each
handed to that channel's handler in every process (this one included).

Channels:
- LIVE: events for sockets, as *envelopes* (a chat message, a read marker, an AI job's update
  to its owner, "close this user's sockets" after a ban or a deletion); its handler is the Hub,
  which delivers each envelope to the matching sockets this process holds.
- AI_JOBS: updates of AI jobs from Celery workers, for every API process's waiters
  (services/ai/events.py registers the handler).

- InProcessBroker (the embedded default): the one process is the whole world.
- RedisBroker: each channel the deployment shares (shared_channels) is a Redis pub/sub channel
  every process subscribes to, on one connection; REDIS_URL shares them all, so any number of
  API processes behind a load balancer reach each other's sockets. It reconnects by itself
  after losing Redis (services/redis_client.py's backoff) and then tells its sockets to
  `resync`: events published while it was away are not replayed, but every message is in the
  database and clients catch up with `GET /chat/sessions/{id}/messages?after_id=`.

The running app's broker is kept in services/runtime.Runtime, never in a module global; the
services that publish take it as an argument (LiveEvents; NO_BROKER where no app runs). They
publish from worker threads (`send`, `publish_threadsafe`); the Hub and the brokers run on the
event loop. A process without a loop (a Celery worker) publishes with
`publish_without_loop`.
"""

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis

from config import Settings, settings
from services import redis_client

log = logging.getLogger(__name__)

PUBLISH_WAIT_SECONDS = 2.0
RESYNC_EVENT = json.dumps({"type": "resync"})

LIVE = "live"
AI_JOBS = "ai-jobs"

Handler = Callable[[str | bytes], None]  # one message, on the event loop


class Connection(Protocol):
    """What the Hub needs of one open socket (routers/chat_socket.Connection)."""

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
    return json.dumps(deliver_message(audience, event))


def deliver_message(audience: Audience, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "op": "deliver",
        "user_ids": list(audience.user_ids),
        "admins": audience.admins,
        "except_user_id": audience.except_user_id,
        # Serialized once here, sent as-is to every socket on every process.
        "event": json.dumps(event, ensure_ascii=False, separators=(",", ":")),
    }


def close_envelope(user_id: int, *, code: int, reason: str) -> str:
    return json.dumps({"op": "close", "user_id": user_id, "code": code, "reason": reason})


class LiveEvents(Protocol):
    """What the services that publish need of the broker (a Broker; NO_BROKER outside an app).
    Handed to them as an argument: a router passes its RuntimeDep's broker, the socket handler
    the broker it was started with."""

    def send(self, audience: Audience, event: dict[str, Any]) -> None:
        """Sends an event to the audience's sockets on every process (callable from any thread)."""

    def close_user_sockets(self, user_id: int, *, code: int, reason: str) -> None:
        """Closes every socket of this user on every process (e.g. a ban)."""

    def may_reach(self, user_id: int) -> bool:
        """Whether an event for this user's sockets could reach one (any process's)."""

    async def publish(self, envelope: str, channel: str = LIVE) -> None:
        """Sends an envelope already made, from the event loop."""


class _NoBroker:
    """No app is running (the CLI, a script, a test calling a service by itself): there are no
    sockets to tell, and whoever connects later catches up from the database."""

    def send(self, audience: Audience, event: dict[str, Any]) -> None:
        pass

    def close_user_sockets(self, user_id: int, *, code: int, reason: str) -> None:
        pass

    def may_reach(self, user_id: int) -> bool:
        return False

    async def publish(self, envelope: str, channel: str = LIVE) -> None:
        pass


NO_BROKER: LiveEvents = _NoBroker()


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
    """Carries messages on named channels to their handlers in every process (this one
    included); the Hub handles LIVE."""

    def __init__(self) -> None:
        self.hub = Hub()
        self._handlers: dict[str, Handler] = {LIVE: self._to_hub}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._loop = None

    def handle(self, channel: str, handler: Handler | None) -> None:
        """Sets (None: removes) this process's handler of a channel; messages of a channel
        without one are dropped."""
        if handler is None:
            self._handlers.pop(channel, None)
        else:
            self._handlers[channel] = handler

    def shares(self, channel: str) -> bool:
        """Whether the channel reaches the other processes (else it stays in this one)."""
        return False

    async def publish(self, envelope: str, channel: str = LIVE) -> None:
        raise NotImplementedError

    def may_reach(self, user_id: int) -> bool:
        """Whether an event published for this user's sockets now could reach one (any
        process's): false when the broker is this process's alone and holds none of theirs
        (callable from any thread). A socket opened just after the answer misses the event, as
        if it had opened a moment later; clients catch up from the database."""
        return self.shares(LIVE) or self.hub.holds(user_id)

    def send(self, audience: Audience, event: dict[str, Any]) -> None:
        """Sends an event to the audience's sockets on every process (callable from any thread)."""
        self.publish_threadsafe(deliver_envelope(audience, event))

    def close_user_sockets(self, user_id: int, *, code: int, reason: str) -> None:
        """Closes every socket of this user on every process (e.g. a ban)."""
        self.publish_threadsafe(close_envelope(user_id, code=code, reason=reason))

    def publish_threadsafe(self, envelope: str, channel: str = LIVE) -> None:
        """Publishes from a worker thread (a sync service), waiting until the broker has taken
        the envelope. A failure is logged, not raised: the data is already committed and
        clients catch up from the database."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:  # called on the loop itself: must not block it
            task = loop.create_task(self.publish(envelope, channel))
            self._pending.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._pending.discard)
            return
        future = asyncio.run_coroutine_threadsafe(self.publish(envelope, channel), loop)
        try:
            future.result(timeout=PUBLISH_WAIT_SECONDS)
        except Exception:
            log.warning("live event not published", exc_info=True)

    def _dispatch(self, channel: str, message: str | bytes) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(message)

    def _to_hub(self, message: str | bytes) -> None:
        try:
            envelope = json.loads(message)
        except ValueError:
            log.warning("ignoring a malformed envelope")
            return
        self.hub.dispatch(envelope)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class InProcessBroker(Broker):
    async def publish(self, envelope: str, channel: str = LIVE) -> None:
        self._dispatch(channel, envelope)


class RedisBroker(Broker):
    """Redis pub/sub: every process subscribes to the Redis channel of each shared channel (one
    connection for all of them); a channel it does not share stays in this process."""

    # As CLIENT LIST shows it: which process holds the subscription, for operators (and tests).
    CLIENT_NAME = f"madang-live-{os.getpid()}"
    IDLE_PING_SECONDS = 5.0  # no traffic for this long: ping Redis; no answer in as long: reconnect

    def __init__(self, url: str, channel: str | None, *, ai_jobs_channel: str | None = None) -> None:
        """channel: the Redis channel of LIVE (None: live events stay in this process);
        ai_jobs_channel: that of AI_JOBS (None: not shared)."""
        super().__init__()
        self.redis_channels = {
            name: key for name, key in ((LIVE, channel), (AI_JOBS, ai_jobs_channel)) if key
        }
        self._names = {key: name for name, key in self.redis_channels.items()}
        self._redis = redis_client.connect_async(url, client_name=self.CLIENT_NAME)
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def shares(self, channel: str) -> bool:
        return channel in self.redis_channels

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

    async def publish(self, envelope: str, channel: str = LIVE) -> None:
        key = self.redis_channels.get(channel)
        if key is None:
            self._dispatch(channel, envelope)
            return
        try:
            await self._redis.publish(key, envelope)
        except (redis.RedisError, OSError):
            # Live delivery is best effort: the data is committed and clients catch up.
            log.warning("redis unavailable; live event dropped", exc_info=True)

    async def _listen(self) -> None:
        failures = 0
        ever_subscribed = False
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(*self._names)
                    log.info("subscribed to redis channels %s", ", ".join(self._names))
                    if ever_subscribed:
                        self.hub.resync_all()  # events may have been missed while away
                    ever_subscribed, failures = True, 0
                    self.subscribed.set()
                    await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                delay = redis_client.reconnect_delay(failures)
                failures += 1
                log.warning("redis broker lost (%s); reconnecting in %.2f s", exc, delay)
                await asyncio.sleep(delay)

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
            key = message["channel"]
            name = self._names.get(key.decode() if isinstance(key, bytes) else key)
            if name is not None:
                self._dispatch(name, message["data"])


def shared_channels(config: Settings, *, celery_workers: bool) -> tuple[str, dict[str, str]]:
    """Where the processes of this deployment meet: a Redis URL and the channels shared there
    (name -> Redis channel). REDIS_URL shares LIVE, and AI_JOBS when there are Celery workers;
    without it, a Redis Celery broker carries AI_JOBS alone (live events stay in each process)."""
    channels = {LIVE: config.BROKER_CHANNEL} if config.REDIS_URL else {}
    url = config.REDIS_URL
    if not url and config.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        url = config.CELERY_BROKER_URL
    if celery_workers and url:
        channels[AI_JOBS] = config.AI_EVENTS_CHANNEL
    return url, channels


def publish_without_loop(channel: str, message: str) -> None:
    """Publishes from a process that runs no broker (a Celery worker has no event loop):
    straight to Redis when the deployment shares the channel, else nowhere (nobody could hear
    it). Raises what Redis raises."""
    url, channels = shared_channels(settings, celery_workers=True)
    key = channels.get(channel)
    if key is not None:
        redis_client.connect(url).publish(key, message)


def create_broker(config: Settings) -> Broker:
    url, channels = shared_channels(config, celery_workers=config.AI_BACKEND == "celery")
    if not channels:
        return InProcessBroker()
    return RedisBroker(url, channels.get(LIVE), ai_jobs_channel=channels.get(AI_JOBS))


@contextlib.asynccontextmanager
async def running(config: Settings) -> AsyncIterator[Broker]:
    """Starts the broker for the app's lifetime (main.py's lifespan, kept in services/runtime.Runtime)."""
    broker = create_broker(config)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
