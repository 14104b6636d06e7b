"""Real Celery worker processes for the tests of AI_BACKEND=celery (tests/test_ai_celery.py,
tests/test_ai_training_celery.py): each runs `celery -A services.ai.celery_app worker -Q <queue>` on the
test database, in its own process group so the whole worker can be killed at once."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

from config import BASE_DIR

WORKER_READY_SECONDS = 120  # loading torch and the models in a busy machine


def forget_keys(connection: redis.Redis, prefix: str) -> None:
    for key in connection.scan_iter(f"{prefix}*"):
        connection.delete(key)
    connection.close()


class CeleryWorker:
    """One `celery worker` (a main process and one pool process) for one queue."""

    def __init__(self, queue: str, log_path: Path, *, environment: dict[str, str]) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "services.ai.celery_app", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "-Q", queue),
                *("-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"),
            ],
            cwd=BASE_DIR,
            env={**os.environ, **environment, "PYTHONPATH": str(BASE_DIR)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            assert self.process.poll() is None, self.log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        raise AssertionError(
            "the worker did not start:\n" + self.log_path.read_text(errors="replace")[-3000:]
        )

    def kill(self) -> None:
        """kill -9 of the whole worker: the main process and its pool process."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()
