"""What a running process holds for its lifetime, in one object: the broker (and its Hub of
sockets), the AI side (the backend, the job events, the model registry) and the metrics
(METRICS_ENABLED). main.py's lifespan builds it (`running()`) and keeps it on
`app.state.runtime`; requests reach it through deps.RuntimeDep, the live socket through its
route, background code through the object it was handed when it was built (the runner's lanes,
the training threads). Code that runs without an app gets the null parts:
services/broker.NO_BROKER, services/ai/runtime.NO_APP. A Celery worker has no app:
services/ai/celery_app.py builds what its tasks need when the worker starts.

What stays per process rather than per app is the sentence encoder (ml/encoder.get_encoder):
its weights load once per process however many apps a test suite starts, and its model
processes are the process's children.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from config import Settings
from ml.base import AIModel
from services import broker, metrics, storage
from services.ai import runtime as ai_runtime
from services.ai.runtime import AIRuntime
from services.broker import Broker, Hub
from services.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Settings  # what the app was built with (main.create_app); the parts below were built from it
    broker: Broker  # live events between processes; broker.hub holds this process's sockets
    ai: AIRuntime  # the AI backend, the job events and the model registry
    metrics: Metrics | None = None  # GET /metrics' counts (METRICS_ENABLED), else None

    @property
    def hub(self) -> Hub:
        return self.broker.hub


@contextlib.asynccontextmanager
async def running(config: Settings, *, extra_models: Iterable[AIModel] = ()) -> AsyncIterator[Runtime]:
    """Live events (in-process, or Redis pub/sub when REDIS_URL is set), then AI jobs (the
    model registry, the embedded runner or Celery, with the recovery of jobs a crash left
    behind), which publish through them; stopped in the reverse order. extra_models: an app a
    test builds with models of its own (main.create_app)."""
    if config.STORAGE_BACKEND == "s3":
        # The process's S3 client (services/storage.s3_client) built now, off the event loop:
        # importing boto3 and building a client take a few tenths of a second, which the first
        # upload would otherwise spend on the loop.
        await asyncio.to_thread(storage.s3_client, config)
    async with (
        broker.running(config) as live,
        ai_runtime.running(config, live, extra_models=extra_models) as ai,
        metrics.running(config, ai) as measured,
    ):
        yield Runtime(config=config, broker=live, ai=ai, metrics=measured)
