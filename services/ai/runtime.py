"""The AI side of the app's lifetime (main.py's lifespan, through services/runtime.py): the model
registry, the AI table's rows for its models, the job events, the backend, the recovery of jobs
a crash left, and, with the embedded runner, the heartbeat of its job leases. What it builds is
an AIRuntime, kept in the app's Runtime and handed to the code that needs it (never found in a
module global)."""

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import partial

from anyio import to_thread
from sqlalchemy.exc import IntegrityError

from config import Settings, settings
from crud import ai as ai_crud
from database import session_scope
from ml.base import AIModel
from services.ai import backends, events, registry
from services.ai.backends import Backend
from services.ai.events import NOBODY, JobEvents, Publisher
from services.ai.recovery import recover
from services.ai.reembed import Reembedding
from services.ai.registry import Registry
from services.broker import Broker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AIRuntime:
    """Where this process's AI jobs run, who hears of them, and the models it knows. Without a
    running app (a script, a test calling a service by itself: NO_APP) there is no backend — a
    stored job stays queued for the next start's recovery — nobody to tell, and no model of the
    code (trained models are still found)."""

    backend: Backend | None
    events: JobEvents | None  # the API process's waiters and sockets
    models: Registry = field(default_factory=Registry)
    # The app's settings (main.create_app): its backend's, and the per-user job limit.
    config: Settings = field(default_factory=lambda: settings)
    # Posts re-embedded after a change of EMBEDDING_MODEL (None without a backend).
    reembedding: Reembedding | None = None

    @property
    def publisher(self) -> Publisher:
        return self.events if self.events is not None else NOBODY


NO_APP = AIRuntime(backend=None, events=None)


@contextlib.asynccontextmanager
async def running(
    config: Settings, live: Broker, *, extra_models: Iterable[AIModel] = ()
) -> AsyncIterator[AIRuntime]:
    """extra_models: models of an app a test builds, besides the shipped and AI_MODEL_MODULES ones."""
    models = await to_thread.run_sync(partial(registry.load, extra_models, config=config))
    await to_thread.run_sync(sync_models, models)
    async with events.running(live, listen_to_workers=config.AI_BACKEND == "celery") as job_events:
        backend = backends.create_backend(config, job_events, models)
        backend.start()
        reembedding = Reembedding(config, backend, models)
        try:
            await to_thread.run_sync(partial(recover, backend, job_events))
            if backend.leases is not None:
                # The heartbeat: this process's leases renewed, and the jobs of another process
                # that stopped renewing its own taken over (backend.stop stops it).
                backend.leases.keep(sweep=partial(recover, backend, job_events, at_start=False))
            reembedding.start()
            yield AIRuntime(
                backend=backend, events=job_events, models=models, config=config, reembedding=reembedding
            )
        finally:
            await to_thread.run_sync(reembedding.stop)
            await to_thread.run_sync(backend.stop)


def sync_models(models: Registry) -> None:
    """A row in the AI table for each listed model of the registry that has none."""
    entries = [(model.name, model.information) for model in models.listed()]
    with session_scope() as session:
        try:
            added = ai_crud.insert_missing_models(session, entries)
            session.commit()
        except IntegrityError:  # another API process starting at the same time added them
            session.rollback()
            added = 0
    if added:
        log.info("%d AI model(s) added to the AI table", added)
