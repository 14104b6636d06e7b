"""What a running process holds for its lifetime, in one object: the broker (and its Hub of
sockets), the AI backend and the job events. main.py's lifespan builds it (`running()`) and keeps
it on `app.state.runtime`; requests reach it through deps.RuntimeDep, background code through the
object it was handed when it was built (the runner's lanes, the socket handler). A Celery worker
has no app: services/ai/celery_app.py gives its tasks what they need when the worker starts.

The model registry (services/ai/registry.py) is the one process-wide table left: models load
once per process and their model processes are its children, however many apps a test starts.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services import broker
from services.ai import runtime as ai_runtime
from services.ai.runtime import AIRuntime


@dataclass(frozen=True, slots=True)
class Runtime:
    broker: broker.Broker  # live events between processes; broker.hub holds this process's sockets
    ai: AIRuntime  # the AI backend and the job events

    @property
    def hub(self) -> broker.Hub:
        return self.broker.hub


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Runtime]:
    """Live events (in-process, or Redis pub/sub when REDIS_URL is set), then AI jobs (the
    embedded runner or Celery, with the recovery of jobs a crash left behind), which publish
    through them; stopped in the reverse order."""
    async with broker.running() as live, ai_runtime.running(live) as ai:
        yield Runtime(broker=live, ai=ai)
