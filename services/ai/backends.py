"""Where AI work runs: in this process (the embedded runner, AI_BACKEND=thread) or on Celery
workers (AI_BACKEND=celery). The job service talks to either through the same few calls, to the
backend of the running app, which services/ai/runtime.py builds into the app's Runtime."""

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any, Protocol

import numpy as np
from sqlalchemy.orm import Session

from config import Settings
from crud import ai as ai_crud
from ml.embedding import one_blas_thread
from ml.post_index import PostIndex
from ml.runner import BatchRunner, Lane, QueueFull
from ml.training import TrainingExecutor, TrainingProcesses
from services.ai import registry, worker
from services.ai.events import Publisher
from services.ai.leases import Leases
from services.ai.registry import Registry
from services.ai.training_run import run_training, settle

log = logging.getLogger(__name__)

CELERY_RETRY_AFTER_SECONDS = 5
# Indexing a written post is background work: on the Redis broker it goes on the queue's lowest
# priority list (kombu's Redis transport keeps one list per priority step, 0 first, and a
# worker takes from them in that order), so users' jobs never wait behind a backlog of posts.
INDEX_TASK_PRIORITY = 9


class Backend(Protocol):
    # Whether jobs left queued or running at startup are this process's to run again: true
    # for the embedded runner (they died with the last process, or with another one whose
    # lease ran out); Celery's broker keeps them.
    recovers_at_startup: bool

    @property
    def leases(self) -> Leases | None:
        """The embedded runner's hold on the jobs it queued or runs, which tells the other API
        processes on the database to leave them (services/ai/leases.py); None on Celery."""

    def start(self) -> None: ...

    def models_loading(self) -> bool:
        """Whether the models are still loading after the start (/ready waits for them)."""
        ...

    def stop(self) -> None: ...

    def reserve(self, session: Session) -> None:
        """Room for one more job, or QueueFull."""

    def release(self) -> None:
        """Gives back a reservation that did not become a job."""

    def submit_job(self, model_name: str, job_id: int) -> None:
        """Runs a stored, queued job (after a reservation)."""

    def resubmit_job(self, model_name: str, job_id: int) -> None:
        """Runs a job again after a restart (no reservation: it was admitted long ago)."""

    def submit_index(self, post_ids: Sequence[int], *, background: bool = False) -> None:
        """Embeds these posts, best effort; background: behind users' jobs (the re-embedding
        after a change of model), else in turn with them (a post just written)."""

    def submit_training(self, job_id: int) -> None:
        """Runs a stored training job, on the training queue (never the inference one)."""

    def embed_query(self, text: str, *, timeout: float) -> np.ndarray | str:
        """A search question's vector (as similar-posts reads its text), computed here with
        other work in the model processes, or why it cannot be now (the search says so)."""

    def retry_after(self) -> int: ...


class ThreadBackend:
    recovers_at_startup = True

    def __init__(self, config: Settings, events: Publisher, models: Registry) -> None:
        self.config = config
        self.events = events  # where the runner's threads tell of the jobs they run
        self.models = models  # the app's, which the runner's threads run
        # This app's owner id and heartbeat: its jobs carry them from submission to their end.
        self.leases = Leases(config.AI_LEASE_SECONDS)
        self.runner = BatchRunner(
            workers=config.ai_workers,
            max_batch=config.AI_MAX_BATCH,
            max_wait_ms=config.AI_MAX_WAIT_MS,
            fill_wait_ms=config.AI_FILL_WAIT_MS,
            queue_max=config.AI_QUEUE_MAX,
            timeout_seconds=config.AI_JOB_TIMEOUT_SECONDS,
        )
        self.trainer = TrainingExecutor(
            workers=config.AI_TRAIN_WORKERS, run=partial(_run_leased_training, self.leases, events=events)
        )
        self._loader: threading.Thread | None = None
        self.queries = QueryEmbeddings(self.runner, models)

    def start(self) -> None:
        self.models.check_loadable(self.config)  # for /ready, before anything loads
        one_blas_thread()
        registry.start_model_processes(self.config)
        self.runner.start()
        self.trainer.start()
        if self.config.AI_LOAD_AT_START:
            # The models (and their model processes) load now, in the background, rather than
            # in the first job (a 22 s wait after a restart); /ready says "models loading".
            self._load_in_background()

    def _load_in_background(self) -> None:
        if self._loader is None or not self._loader.is_alive():
            self._loader = threading.Thread(target=self._load_models, name="madang-ai-load", daemon=True)
            self._loader.start()

    def models_loading(self) -> bool:
        # A load a search asked for (AI_LOAD_AT_START off) keeps the process ready: it serves
        # meanwhile, searching by keyword.
        return self.config.AI_LOAD_AT_START and self._loader is not None and self._loader.is_alive()

    def _load_models(self) -> None:
        started = time.perf_counter()
        for model in [*self.models.listed(), self.models.post_index()]:
            if model.load_error is not None:
                continue  # check_loadable found why it cannot load; /ready says so
            try:
                model.load_noting_outcome()
            except Exception:
                log.exception("model %s did not load", model.name)
        log.info("models loaded in %.1f s", time.perf_counter() - started)

    def stop(self) -> None:
        self.leases.stop_sweeping()  # renewed through the grace: the running batches hold them
        self.trainer.stop()
        self.runner.stop(grace=self.config.AI_SHUTDOWN_GRACE_SECONDS)
        self.leases.stop()  # what is still queued or running here is another process's to take

    def reserve(self, session: Session) -> None:
        self.runner.reserve()

    def release(self) -> None:
        self.runner.release()

    def submit_job(self, model_name: str, job_id: int) -> None:
        self.runner.submit(self._job_lane(model_name), job_id, reserved=True)

    def resubmit_job(self, model_name: str, job_id: int) -> None:
        self.runner.submit(self._job_lane(model_name), job_id)

    def submit_index(self, post_ids: Sequence[int], *, background: bool = False) -> None:
        name = f"{PostIndex.name} (background)" if background else PostIndex.name
        lane = self.runner.lane(name, partial(_index_lane, self.models, name=name, background=background))
        queued = self.runner.submit_many(lane, list(post_ids))
        if queued < len(post_ids):
            log.warning("post index queue full; %d post(s) wait for `cli.py reindex`", len(post_ids) - queued)

    def submit_training(self, job_id: int) -> None:
        # Stored without a lease (services/ai/training.py): queued here only if no other
        # process took it meanwhile (its sweep), else there it runs.
        if self.leases.take([job_id]):
            self.trainer.submit(job_id)

    def embed_query(self, text: str, *, timeout: float) -> np.ndarray | str:
        model = self.models.builtin(SIMILAR_POSTS)
        if model is None or model.load_error is not None:
            return "the embedding model cannot load here"
        if not registry.encoder(self.config).ready:
            self._load_in_background()  # a search never waits for it; the next ones use it
            return "the embedding model is loading"
        return self.queries.embed(text, timeout=timeout)

    def retry_after(self) -> int:
        return self.runner.retry_after()

    def _job_lane(self, model_name: str) -> Lane:
        return self.runner.lane(
            model_name, partial(_job_lane, model_name, self.models, self.events, self.leases)
        )


def _run_leased_training(
    leases: Leases, job_id: int, processes: TrainingProcesses, *, events: Publisher
) -> None:
    """A training job of this process's queue runs if this process still holds it (its lease
    ran out meanwhile and another process took it over: there it runs)."""
    if leases.take([job_id]):
        run_training(job_id, processes, events=events)
    else:
        settle()  # canceled meanwhile: its version takes the job's ending, as run_training would


def _job_lane(model_name: str, models: Registry, events: Publisher, leases: Leases) -> Lane:
    return Lane(
        name=model_name,
        run=lambda job_ids, computed: worker.run_jobs(
            model_name, job_ids, models=models, events=events, computed=computed, leases=leases
        ),
        timed_out=lambda job_ids, seconds: worker.fail_jobs(
            job_ids, error=worker.timed_out_error(seconds), events=events
        ),
        interrupted=worker.give_back,
    )


def _index_lane(models: Registry, *, name: str, background: bool) -> Lane:
    def run(post_ids: list[int], computed: Callable[[], None]) -> None:
        worker.index_posts(post_ids, models=models, computed=computed)

    return Lane(
        name=name,
        run=run,
        timed_out=lambda post_ids, seconds: log.warning(
            "embedding %d posts took over %g s", len(post_ids), seconds
        ),
        counts_toward_limit=False,
        background=background,
    )


class CeleryBackend:
    """Sends each job to the Celery queue by task name; any worker (`celery -A
    services.ai.celery_app worker`) runs it and writes the result to the shared database."""

    recovers_at_startup = False
    leases: None = None  # the broker redelivers a dead worker's message

    def __init__(self, config: Settings) -> None:
        self.config = config
        # Celery loads only in the processes that use it (importing it takes ~0.15 s).
        from services.ai.celery_app import make_celery  # noqa: PLC0415

        self.celery: Any = make_celery(config)

    def start(self) -> None:
        return

    def models_loading(self) -> bool:
        return False  # the workers load the models, each when it starts

    def stop(self) -> None:
        self.celery.close()

    def reserve(self, session: Session) -> None:
        # The queue's depth is the number of queued jobs, whichever process admitted them.
        if ai_crud.count_queued(session) >= self.config.AI_QUEUE_MAX:
            raise QueueFull(CELERY_RETRY_AFTER_SECONDS)

    def release(self) -> None:
        return

    def submit_job(self, model_name: str, job_id: int) -> None:
        self.celery.send_task("madang.ai.run_job", args=[model_name, job_id], queue=self.config.CELERY_QUEUE)

    def resubmit_job(self, model_name: str, job_id: int) -> None:
        self.submit_job(model_name, job_id)

    def submit_index(self, post_ids: Sequence[int], *, background: bool = False) -> None:
        # Every index task is background work on Celery: users' jobs never wait behind them.
        self.celery.send_task(
            "madang.ai.index_posts",
            args=[list(post_ids)],
            queue=self.config.CELERY_QUEUE,
            priority=INDEX_TASK_PRIORITY,
        )

    def embed_query(self, text: str, *, timeout: float) -> np.ndarray | str:
        return "semantic search runs where the models run in the API process (AI_BACKEND=thread)"

    def submit_training(self, job_id: int) -> None:
        self.celery.send_task("madang.ai.train_model", args=[job_id], queue=self.config.CELERY_TRAIN_QUEUE)

    def retry_after(self) -> int:
        return CELERY_RETRY_AFTER_SECONDS


def create_backend(config: Settings, events: Publisher, models: Registry) -> Backend:
    return CeleryBackend(config) if config.AI_BACKEND == "celery" else ThreadBackend(config, events, models)


SIMILAR_POSTS = "similar-posts"  # the model whose way of reading a question search shares
QUERY_LANE = "search queries"


class QueryEmbeddings:
    """Search questions embedded in the model processes: several waiting at once go through one
    forward, on a runner lane of their own, beside the jobs (a search is a request, not a job:
    nothing is stored). The last RECENT_QUERIES questions' vectors are kept: a question asked
    again (a popular one, the next page of one) costs no forward."""

    RECENT_QUERIES = 1024  # 1.5 MiB of 384-float vectors

    def __init__(self, runner: BatchRunner, models: Registry) -> None:
        self.runner = runner
        self.models = models
        self._waiting: dict[int, tuple[str, Future[np.ndarray]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # By the model's name too: a test (or a reload) may put another model in its place.
        self._recent: OrderedDict[tuple[str | None, str], np.ndarray] = OrderedDict()

    def embed(self, text: str, *, timeout: float) -> np.ndarray | str:
        model = self.models.builtin(SIMILAR_POSTS)
        key = (getattr(model, "vector_model", None), text)
        with self._lock:
            if (vector := self._recent.get(key)) is not None:
                self._recent.move_to_end(key)
                return vector
        found = self._computed(text, timeout=timeout)
        if isinstance(found, np.ndarray):
            found.setflags(write=False)  # shared by every search that asks the same
            with self._lock:
                self._recent[key] = found
                if len(self._recent) > self.RECENT_QUERIES:
                    self._recent.popitem(last=False)
        return found

    def _computed(self, text: str, *, timeout: float) -> np.ndarray | str:
        future: Future[np.ndarray] = Future()
        with self._lock:
            item = next(self._ids)
            self._waiting[item] = (text, future)
        lane = self.runner.lane(QUERY_LANE, self._lane)
        try:
            if not self.runner.submit_many(lane, [item]):
                return "the model processes are busy"
            return future.result(timeout)
        except FutureTimeout:
            return f"the query was not embedded within {timeout:g} s"
        except Exception as exc:
            log.warning("a search query could not be embedded", exc_info=True)
            return f"the query could not be embedded ({type(exc).__name__})"
        finally:
            with self._lock:
                self._waiting.pop(item, None)

    def _lane(self) -> Lane:
        return Lane(name=QUERY_LANE, run=self._run, timed_out=self._fail, counts_toward_limit=False)

    def _run(self, items: list[int], computed: Callable[[], None]) -> None:
        with self._lock:
            waiting = [self._waiting[item] for item in items if item in self._waiting]
        try:
            model = self.models.builtin(SIMILAR_POSTS)
            assert model is not None
            vectors = model.run_batch([text for text, _ in waiting]) if waiting else []
        except Exception as exc:
            for _, future in waiting:
                future.set_exception(exc)
            return
        finally:
            computed()
        for (_, future), vector in zip(waiting, vectors, strict=True):
            future.set_result(np.asarray(vector, dtype=np.float32))

    def _fail(self, items: list[int], seconds: float) -> None:
        with self._lock:
            waiting = [self._waiting[item][1] for item in items if item in self._waiting]
        for future in waiting:
            if not future.done():
                future.set_exception(TimeoutError(f"embedding took over {seconds:g} s"))
