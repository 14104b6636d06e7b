"""The AI side of the app's lifetime (main.py's lifespan, through services/runtime.py): the AI
table's rows for the registry's models, the job events, the backend, and the recovery of jobs a
crash left. What it builds is an AIRuntime, kept in the app's Runtime and handed to the code
that needs it (never found in a module global)."""

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from anyio import to_thread
from sqlalchemy.exc import IntegrityError

from config import settings
from crud import ai as ai_crud
from database import session_scope
from services import broker
from services.ai import backends, events, registry
from services.ai.recovery import recover

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AIRuntime:
    """Where this process's AI jobs run and who hears of them. Without a running app (a script,
    a test calling a service by itself: NO_APP) there is no backend — a stored job stays queued
    for the next start's recovery — and nobody to tell."""

    backend: backends.Backend | None
    events: events.JobEvents | None  # the API process's waiters and sockets

    @property
    def publisher(self) -> events.Publisher:
        return self.events if self.events is not None else events.NOBODY


NO_APP = AIRuntime(backend=None, events=None)


@contextlib.asynccontextmanager
async def running(live: broker.Broker) -> AsyncIterator[AIRuntime]:
    await to_thread.run_sync(sync_models)
    async with events.running(live, listen_to_workers=settings.AI_BACKEND == "celery") as job_events:
        backend = backends.create_backend(job_events)
        backend.start()
        try:
            await to_thread.run_sync(partial(recover, backend, job_events))
            yield AIRuntime(backend=backend, events=job_events)
        finally:
            await to_thread.run_sync(backend.stop)


def sync_models() -> None:
    """A row in the AI table for each model of the registry that has none."""
    entries = [(model.name, model.information) for model in registry.listed()]
    with session_scope() as session:
        try:
            added = ai_crud.insert_missing_models(session, entries)
            session.commit()
        except IntegrityError:  # another API process starting at the same time added them
            session.rollback()
            added = 0
    if added:
        log.info("%d AI model(s) added to the AI table", added)
