"""How the world learns that an AI job changed: the requests long-polling it
(`GET /ai/jobs/{id}?wait=`) and its owner's sockets (`{"type": "ai.job", "job": {...}}`).

In the API process, updates land on the event loop (one call per batch), where they wake the
waiters and go out through the live-event broker (services/broker.py). A Celery worker has no
loop and no sockets: it publishes its updates on the Redis channel AI_EVENTS_CHANNEL, which
every API process listens to for its waiters; the socket events it sends straight to the
broker's channel when the API processes share one (REDIS_URL), so each event arrives once.
"""

import asyncio
import contextlib
import json
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import redis
import redis.asyncio as aioredis

from config import settings
from services import broker

log = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 2.0


@dataclass(frozen=True)
class JobUpdate:
    user_id: int
    job: dict[str, Any]  # schemas.JobPublic as JSON


def job_event(job: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ai.job", "job": job}


class JobEvents:
    """The API process's side: waiters by job id, on the event loop, and the last state of the
    jobs that finished lately, so a waiter is answered from the event, not from the database."""

    RECENT_JOBS = 10_000

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiters: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._finished: OrderedDict[int, dict[str, Any]] = OrderedDict()

    @contextlib.contextmanager
    def watch(self, job_id: int) -> Iterator[asyncio.Event]:
        """An event set when the job finishes (call on the loop, then look at `finished`, so an
        ending just before the watch began is not missed)."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def finished(self, job_id: int) -> dict[str, Any] | None:
        """The job as it ended, if it ended lately (in this process's hearing)."""
        return self._finished.get(job_id)

    def deliver(self, updates: list[JobUpdate], *, to_sockets: bool) -> None:
        """On the loop: wakes the waiters of finished jobs and tells the owners' sockets."""
        for update in updates:
            if update.job.get("is_finished"):
                self._remember(update.job)
                for event in self._waiters.get(update.job["id"], ()):
                    event.set()
            if to_sockets and broker.may_reach(update.user_id):
                # On the loop, the broker publishes without blocking (it schedules a task).
                broker.publish(broker.Audience(user_ids=(update.user_id,)), job_event(update.job))

    def deliver_threadsafe(self, updates: list[JobUpdate], *, to_sockets: bool = True) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the app is gone
            self.loop.call_soon_threadsafe(partial(self.deliver, updates, to_sockets=to_sockets))

    def _remember(self, job: dict[str, Any]) -> None:
        self._finished[job["id"]] = job
        self._finished.move_to_end(job["id"])
        while len(self._finished) > self.RECENT_JOBS:
            self._finished.popitem(last=False)


_events: JobEvents | None = None


def current() -> JobEvents | None:
    """The API process's waiters, or None in a worker, the CLI or a test without a client."""
    return _events


def publish(updates: list[JobUpdate]) -> None:
    """Tells waiters and sockets about changed jobs; callable from any thread of any process,
    never raises (the job is already stored; clients catch up by reading it)."""
    if not updates:
        return
    events = _events
    if events is not None:
        events.deliver_threadsafe(updates)
        return
    if not _in_worker:
        return  # a script (reindex) or an app shutting down: nobody is listening
    try:
        _publish_to_api_processes(updates)
    except Exception:
        log.warning("job updates not published", exc_info=True)


_in_worker = False


def worth_telling(user_id: int, *, finished: bool) -> bool:
    """Whether an update of this user's job has anyone to tell, so that it is worth making: a
    job's ending has its waiters (and the endings they look up); any update the owner's
    sockets, unless this API process knows there are none (services/broker.may_reach). A
    worker cannot know: the API processes hear all its updates."""
    if finished or _in_worker:
        return True
    return _events is not None and broker.may_reach(user_id)


def serve_from_worker() -> None:
    """Called once by a Celery worker process: its updates go to the API processes via Redis."""
    global _in_worker  # noqa: PLW0603 - a property of the whole process
    _in_worker = True


def events_redis_url() -> str:
    """Where workers and API processes meet for job updates: REDIS_URL, else a Redis broker."""
    if settings.REDIS_URL:
        return settings.REDIS_URL
    return settings.CELERY_BROKER_URL if settings.CELERY_BROKER_URL.startswith("redis") else ""


_client_lock = threading.Lock()
_client: redis.Redis | None = None


def _redis() -> redis.Redis | None:
    global _client  # noqa: PLW0603 - one connection pool per process
    url = events_redis_url()
    if not url:
        return None
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        return _client


def _publish_to_api_processes(updates: list[JobUpdate]) -> None:
    client = _redis()
    if client is None:
        return  # no Redis: waiters notice by re-reading the job
    pipe = client.pipeline(transaction=False)
    pipe.publish(settings.AI_EVENTS_CHANNEL, json.dumps([asdict(u) for u in updates]))
    if settings.REDIS_URL:
        for update in updates:
            envelope = broker.deliver_envelope(
                broker.Audience(user_ids=(update.user_id,)), job_event(update.job)
            )
            pipe.publish(settings.BROKER_CHANNEL, envelope)
    pipe.execute()


async def _listen(events: JobEvents, url: str) -> None:
    """Job updates from workers, for this process's waiters (and its sockets when the broker is
    in-process, i.e. the workers could not reach them through REDIS_URL)."""
    delay = 0.05
    to_sockets = not settings.REDIS_URL
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        while True:
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(settings.AI_EVENTS_CHANNEL)
                    delay = 0.05
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            updates = [JobUpdate(**u) for u in json.loads(message["data"])]
                        except (ValueError, TypeError):
                            log.warning("ignoring a malformed job update")
                            continue
                        events.deliver(updates, to_sockets=to_sockets)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job updates channel lost (%s); reconnecting in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def running(*, listen_to_workers: bool) -> AsyncIterator[JobEvents]:
    """The API process's job events for the app's lifetime (services/ai.running)."""
    global _events  # noqa: PLW0603 - one per process, like the broker
    events = JobEvents(asyncio.get_running_loop())
    listener: asyncio.Task[None] | None = None
    url = events_redis_url()
    if listen_to_workers and url:
        listener = asyncio.create_task(_listen(events, url), name="ai-job-updates")
    _events = events
    try:
        yield events
    finally:
        if _events is events:
            _events = None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
