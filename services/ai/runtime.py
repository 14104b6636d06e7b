"""The AI side of the app's lifetime (main.py's lifespan): the AI table's rows for the registry's
models, the job events, the backend, and the recovery of jobs a crash left."""

import contextlib
import logging
from collections.abc import AsyncIterator

from anyio import to_thread
from sqlalchemy.exc import IntegrityError

from config import settings
from crud import ai as ai_crud
from database import SessionLocal
from services.ai import backends, events, registry
from services.ai.recovery import recover

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[None]:
    await to_thread.run_sync(sync_models)
    async with events.running(listen_to_workers=settings.AI_BACKEND == "celery"):
        backend = backends.create_backend()
        backend.start()
        backends.set_current(backend)
        try:
            await to_thread.run_sync(recover, backend)
            yield
        finally:
            if backends.current() is backend:
                backends.set_current(None)
            await to_thread.run_sync(backend.stop)


def sync_models() -> None:
    """A row in the AI table for each model of the registry that has none."""
    entries = [(model.name, model.information) for model in registry.listed()]
    with SessionLocal() as session:
        try:
            added = ai_crud.insert_missing_models(session, entries)
            session.commit()
        except IntegrityError:  # another API process starting at the same time added them
            session.rollback()
            added = 0
    if added:
        log.info("%d AI model(s) added to the AI table", added)
