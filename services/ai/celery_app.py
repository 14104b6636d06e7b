"""The Celery side of AI_BACKEND=celery: workers that run AI jobs, on this machine or others,
and write the results to the shared database (docs/operations.md, "From one machine to many").

    celery -A services.ai.celery_app worker --loglevel INFO --concurrency 1

Each worker process builds its model registry (services/ai/registry.py) and loads the models once
when it starts; the registry is kept on the Celery app, the worker's composition root (a worker
has no FastAPI lifespan), and handed from there to what its tasks run. Delivery is at-least-once: a task
is acknowledged only when it ends (acks_late), a task whose process died goes back to the
queue (task_reject_on_worker_lost; after a whole worker dies the broker hands its message out
again once CELERY_VISIBILITY_TIMEOUT_SECONDS pass), and each worker process takes one task at a
time (prefetch 1). The attempts are counted in the database, so a job that kills its worker
is failed after AI_MAX_ATTEMPTS instead of looping forever; time limits stay below the
visibility timeout so a slow job is never handed to a second worker.
"""

import logging
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from config import Settings, settings
from database import engine
from ml.embedding import one_blas_thread
from ml.training import worker_processes
from services.ai import registry, training_run, worker
from services.ai.events import TO_API_PROCESSES
from services.ai.registry import Registry

log = logging.getLogger(__name__)

# A worker process has no app and no sockets: its tasks tell of their jobs to the API processes,
# over the broker's AI_JOBS channel (what the API's lifespan builds is the API's Runtime).
TO_API = TO_API_PROCESSES

# Loading torch and the weights takes several seconds; the default (4 s) would kill the process.
PROCESS_START_TIMEOUT_SECONDS = 120


class WorkerApp(Celery):
    """The Celery app; in a worker process it also holds the process's model registry."""

    _models: Registry | None = None

    @property
    def models(self) -> Registry:
        """The worker process's registry: built when the process starts (load_models), or by its
        first task where the pool starts no process (e.g. `--pool solo`)."""
        if self._models is None:
            self._models = registry.load()
        return self._models


def make_celery(config: Settings = settings) -> WorkerApp:
    """A Celery app from these settings (a worker: the process's; the API process makes one per
    start from its app's, to send)."""
    transport_options: dict[str, Any] = {
        "visibility_timeout": config.CELERY_VISIBILITY_TIMEOUT_SECONDS,
        "unacked_restore_interval": config.CELERY_RESTORE_INTERVAL_SECONDS,
        "unacked_restore_throttle": 1,
    }
    if config.CELERY_KEY_PREFIX:
        transport_options["global_keyprefix"] = config.CELERY_KEY_PREFIX
    celery = WorkerApp("madang", broker=config.CELERY_BROKER_URL, set_as_current=False)
    celery.conf.update(
        task_default_queue=config.CELERY_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=config.AI_JOB_TIMEOUT_SECONDS,
        task_time_limit=config.celery_hard_time_limit,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_proc_alive_timeout=PROCESS_START_TIMEOUT_SECONDS,
        worker_hijack_root_logger=False,
    )
    return celery


app = make_celery()


@worker_process_init.connect
def load_models(**_: Any) -> None:
    """Once per worker process: connections inherited from the parent are not reused, and every
    model's weights load before the first task."""
    engine.dispose(close=False)
    one_blas_thread()  # torch's threads compute here too
    if not settings.AI_WORKER_PRELOAD:
        return
    models = app.models
    for model in [*models.listed(), models.post_index()]:
        model.load()
    log.info("models loaded: %s", ", ".join(m.name for m in models.listed()))


@app.task(name="madang.ai.run_job")
def run_job(model_name: str, job_id: int) -> None:
    try:
        worker.run_jobs(
            model_name,
            [job_id],
            models=app.models,
            events=TO_API,
            redelivered=True,
            interrupts=(SoftTimeLimitExceeded,),
        )
    except SoftTimeLimitExceeded:
        worker.fail_jobs(
            [job_id], error=worker.timed_out_error(settings.AI_JOB_TIMEOUT_SECONDS), events=TO_API
        )


@app.task(name="madang.ai.index_posts")
def index_posts(post_ids: list[int]) -> None:
    worker.index_posts(post_ids, models=app.models)


# Training tasks come on CELERY_TRAIN_QUEUE: run a worker for it apart from the inference workers
# (`-Q madang-train`), so a long run never holds an inference worker. The run stops itself at
# train_timeout_seconds; Celery's limits are the backstop, below the visibility timeout.
@app.task(  # type: ignore[call-overload, untyped-decorator]  # celery-types types the time limits int; Celery takes float seconds
    name="madang.ai.train_model",
    soft_time_limit=settings.train_timeout_seconds + max(0.5, settings.train_timeout_seconds / 20),
    time_limit=settings.celery_train_hard_time_limit,
)
def train_model(job_id: int) -> None:
    try:
        training_run.run_training(job_id, worker_processes(), events=TO_API, redelivered=True)
    except SoftTimeLimitExceeded:
        training_run.fail_training(
            job_id, error=worker.timed_out_error(settings.train_timeout_seconds), events=TO_API
        )
