"""How the world learns that an AI job changed: the requests long-polling it
(`GET /ai/jobs/{id}?wait=`) and its owner's sockets (`{"type": "ai.job", "job": {...}}`).

In the API process, updates land on the event loop (one call per batch), where they wake the
waiters and go out to the owner's sockets through the broker's LIVE channel (services/broker.py).
A Celery worker has no loop and no sockets: it publishes its updates on the broker's AI_JOBS
channel (over Redis), which every API process hears; each wakes its waiters and tells the
sockets it holds, so each event reaches a socket once.
"""

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Protocol

from models import AIlog
from schemas import JobPublic
from services import broker
from services.ai.job_view import job_public

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobUpdate:
    user_id: int
    job: dict[str, Any]  # schemas.JobPublic as JSON


def job_event(job: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ai.job", "job": job}


class Publisher(Protocol):
    """Where the code running jobs tells of them: handed to it when it is built (the embedded
    backend's threads get the app's JobEvents, a Celery worker TO_API_PROCESSES, a script
    NOBODY), never found in a module global."""

    def publish(self, updates: list[JobUpdate]) -> None:
        """Tells waiters and sockets about changed jobs; callable from any thread, never raises
        (the job is already stored; clients catch up by reading it)."""

    def worth_telling(self, user_id: int, *, finished: bool) -> bool:
        """Whether an update of this user's job has anyone to tell, so that it is worth making."""


class JobEvents:
    """The API process's side: waiters by job id, on the event loop, and the last state of the
    jobs that finished lately, so a waiter is answered from the event, not from the database."""

    RECENT_JOBS = 10_000

    def __init__(self, loop: asyncio.AbstractEventLoop, live: broker.Broker) -> None:
        self.loop = loop
        self.live = live
        self.closed = False  # the app stopped: nobody is listening any more
        self._waiters: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._finished: OrderedDict[int, dict[str, Any]] = OrderedDict()
        # Called with every batch of updates this process publishes (services/metrics.py counts
        # the endings), on the thread that publishes them.
        self.observers: list[Callable[[list[JobUpdate]], None]] = []

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

    def deliver(self, updates: list[JobUpdate], *, from_workers: bool = False) -> None:
        """On the loop: wakes the waiters of finished jobs and tells the owners' sockets, those
        of every process (through the broker); or, for updates every API process hears from the
        workers, those this process holds."""
        for update in updates:
            if update.job.get("is_finished"):
                self._remember(update.job)
                for event in self._waiters.get(update.job["id"], ()):
                    event.set()
            audience = broker.Audience(user_ids=(update.user_id,))
            if from_workers:
                if self.live.hub.holds(update.user_id):
                    self.live.hub.dispatch(broker.deliver_message(audience, job_event(update.job)))
            elif self.live.may_reach(update.user_id):
                # On the loop, the broker publishes without blocking (it schedules a task).
                self.live.publish_threadsafe(broker.deliver_envelope(audience, job_event(update.job)))

    def publish(self, updates: list[JobUpdate]) -> None:
        if not updates or self.closed:
            return  # an app shutting down: nobody is listening
        for observe in self.observers:
            observe(updates)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the app is gone
            self.loop.call_soon_threadsafe(partial(self.deliver, updates))

    def worth_telling(self, user_id: int, *, finished: bool) -> bool:
        """A job's ending has its waiters (and the endings they look up); any update the owner's
        sockets, unless this API process knows there are none (services/broker.Broker.may_reach)."""
        return not self.closed and (finished or self.live.may_reach(user_id))

    def _remember(self, job: dict[str, Any]) -> None:
        self._finished[job["id"]] = job
        self._finished.move_to_end(job["id"])
        while len(self._finished) > self.RECENT_JOBS:
            self._finished.popitem(last=False)


class ToAPIProcesses:
    """A Celery worker's publisher: its updates go to the API processes via Redis (the broker's
    AI_JOBS channel). A worker cannot know who listens: the API processes hear all its updates."""

    def publish(self, updates: list[JobUpdate]) -> None:
        if not updates:
            return
        try:
            broker.publish_without_loop(broker.AI_JOBS, json.dumps([asdict(u) for u in updates]))
        except Exception:  # no Redis: waiters notice by re-reading the job
            log.warning("job updates not published", exc_info=True)

    def worth_telling(self, user_id: int, *, finished: bool) -> bool:
        return True


class Nobody:
    """A script's publisher (reindex, a test's own calls): nobody is listening."""

    def publish(self, updates: list[JobUpdate]) -> None:
        return

    def worth_telling(self, user_id: int, *, finished: bool) -> bool:
        return False


TO_API_PROCESSES = ToAPIProcesses()
NOBODY = Nobody()


def publish_jobs(publisher: Publisher, jobs: Sequence[AIlog]) -> None:
    """Tells waiters and the owners' sockets how these jobs stand now (those with anyone to
    tell: worth_telling)."""
    publish_public(
        publisher,
        [
            (job.user_id, job_public(job))
            for job in jobs
            if publisher.worth_telling(job.user_id, finished=job.is_finished)
        ],
    )


def publish_public(publisher: Publisher, jobs: Sequence[tuple[int, JobPublic]]) -> None:
    """The same, for jobs already in their public form, each with its owner's id."""
    publisher.publish(
        [
            JobUpdate(user_id, job.model_dump(mode="json"))
            for user_id, job in jobs
            if publisher.worth_telling(user_id, finished=job.is_finished)
        ]
    )


@contextlib.asynccontextmanager
async def running(live: broker.Broker, *, listen_to_workers: bool) -> AsyncIterator[JobEvents]:
    """The API process's job events for the app's lifetime (services/ai/runtime.running), on the
    broker's AI_JOBS channel when listening to workers (the broker runs already)."""
    events = JobEvents(asyncio.get_running_loop(), live)
    listening = listen_to_workers and live.shares(broker.AI_JOBS)
    if listening:
        live.handle(broker.AI_JOBS, partial(_heard_from_workers, events))
    try:
        yield events
    finally:
        events.closed = True
        if listening:
            live.handle(broker.AI_JOBS, None)


def _heard_from_workers(events: JobEvents, message: str | bytes) -> None:
    try:
        updates = [JobUpdate(**update) for update in json.loads(message)]
    except (ValueError, TypeError):
        log.warning("ignoring a malformed job update")
        return
    events.deliver(updates, from_workers=True)
