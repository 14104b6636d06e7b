"""Re-embedding the posts after a change of EMBEDDING_MODEL (and on the upgrade from vectors an
earlier model made): in the background of a running app, newest posts first, through the app's
AI backend like any post written, so users' jobs go first (the runner's background lane; the
Celery index tasks' low priority).

A chunk of posts is handed over, then the next once those are stored, so the backend's queue
never fills with it. Progress goes to the log (every LOG_EVERY_SECONDS) and to /ready's
`reembedding`; similar-posts meanwhile answers from the posts indexed so far and says
`"partial": true`. With Redis (several API processes), one process at a time does it: the others
see its lock and leave it be.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass

import redis

from config import Settings
from crud import embeddings as embeddings_crud
from database import session_scope
from services import redis_client
from services.ai.backends import Backend
from services.ai.registry import Registry

log = logging.getLogger(__name__)

CHUNK = 32  # posts handed to the backend at a time
CHUNK_TIMEOUT_SECONDS = 300.0  # a chunk not stored by then is left for the next sweep
POLL_SECONDS = 0.2
LOG_EVERY_SECONDS = 10.0
SWEEPS = 3  # passes from the newest post down; a later one takes what a full queue dropped
LOCK_SECONDS = 60  # the Redis lock's lifetime, renewed at every chunk


@dataclass
class Progress:
    model: str
    total: int  # posts without a vector of the model when it started
    done: int = 0
    finished: bool = False


class Reembedding:
    """The background re-embedding of one app (services/ai/runtime.py starts and stops it)."""

    def __init__(self, config: Settings, backend: Backend, models: Registry) -> None:
        self.config = config
        self.backend = backend
        self.models = models
        self.progress: Progress | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_owner = f"{os.getpid()}@{id(self)}"  # what this process writes in the lock

    def start(self) -> None:
        if not self.config.AI_INDEX_POSTS:
            return  # posts are not embedded here at all (`cli.py reindex` does it by hand)
        self._thread = threading.Thread(target=self._run_logged, name="madang-reembed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def running(self) -> Progress | None:
        """The progress while posts are being re-embedded, else None."""
        progress = self.progress
        return progress if progress is not None and not progress.finished else None

    def _run_logged(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("re-embedding the posts stopped; `python cli.py reindex` finishes it")

    def _run(self) -> None:
        model = self.models.vector_model
        with session_scope() as session:
            total = embeddings_crud.count_without_vector(session, model_name=model)
        if not total:
            return
        while not self._take_lock(model):  # another process does it; take over if it stops
            if self._stopping.wait(LOCK_SECONDS):
                return
            with session_scope() as session:
                total = embeddings_crud.count_without_vector(session, model_name=model)
            if not total:
                return
        log.info("re-embedding %d posts for %s, newest first", total, model)
        progress = self.progress = Progress(model, total)
        started = logged = time.monotonic()
        for _ in range(SWEEPS):
            stored_in_sweep, before_id = 0, None
            while not self._stopping.is_set():
                with session_scope() as session:
                    post_ids = embeddings_crud.ids_without_vector(
                        session, model_name=model, before_id=before_id, limit=CHUNK
                    )
                if not post_ids:
                    break
                self.backend.submit_index(post_ids, background=True)
                stored = self._wait_until_stored(post_ids, model)
                stored_in_sweep += stored
                progress.done = min(total, progress.done + stored)
                before_id = post_ids[-1]
                if time.monotonic() - logged >= LOG_EVERY_SECONDS:
                    logged = time.monotonic()
                    log.info("re-embedding posts for %s: %d of %d", model, progress.done, total)
                self._take_lock(model)
            if self._stopping.is_set() or not stored_in_sweep:
                break
        progress.finished = True
        self._release_lock(model)
        log.info(
            "re-embedded %d of %d posts for %s in %.0f s",
            progress.done,
            total,
            model,
            time.monotonic() - started,
        )

    def _wait_until_stored(self, post_ids: list[int], model: str) -> int:
        """How many of these posts got their vector (deleted ones count as done)."""
        deadline = time.monotonic() + CHUNK_TIMEOUT_SECONDS
        while True:
            with session_scope() as session:
                left = embeddings_crud.still_without_vector(session, post_ids, model_name=model)
            if not left or time.monotonic() > deadline or self._stopping.wait(POLL_SECONDS):
                return len(post_ids) - len(left)

    # --- one process at a time, where several share a Redis ---------------------------------

    def _lock_key(self, model: str) -> str:
        return f"madang:reembed:{model}"

    def _take_lock(self, model: str) -> bool:
        """Takes (or renews) the lock; False if another process holds it. Without Redis (one
        process) or with Redis down, this process goes on."""
        if not self.config.REDIS_URL:
            return True
        try:
            client = redis_client.connect(self.config.REDIS_URL)
            key = self._lock_key(model)
            owner = self._lock_owner
            if client.set(key, owner, nx=True, ex=LOCK_SECONDS) or client.get(key) == owner.encode():
                client.expire(key, LOCK_SECONDS)
                return True
        except redis.RedisError:
            log.warning("Redis unreachable: re-embedding without the lock", exc_info=True)
            return True
        return False

    def _release_lock(self, model: str) -> None:
        if not self.config.REDIS_URL:
            return
        try:
            client = redis_client.connect(self.config.REDIS_URL)
            if client.get(self._lock_key(model)) == self._lock_owner.encode():
                client.delete(self._lock_key(model))
        except redis.RedisError:
            return  # it expires by itself
