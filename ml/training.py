"""Where training runs, apart from inference: the parent's side of ml/train_process.py, and the
embedded backend's training executor (its own threads and queue, never the inference runner's).

`TrainingProcesses.run` starts one child per run, relays its progress, kills it past its time
limit, and tells how it ended. `stop()` (the app shutting down) kills the children and marks their
runs interrupted: their jobs stay `running` for the next start's recovery to queue again.
"""

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
STOP_JOIN_SECONDS = 10.0

Progress = Callable[[int, int, float], None]  # epoch, epochs, loss


@dataclass(frozen=True)
class Outcome:
    metrics: dict[str, Any] | None = None
    error: str | None = None
    interrupted: bool = False  # stopped by a shutdown: the run should happen again


class TrainingProcesses:
    """The training children of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[str]] = set()
        self._stopping = False

    def run(self, request: dict[str, Any], *, progress: Progress, timeout: float) -> Outcome:
        with self._lock:
            if self._stopping:
                return Outcome(interrupted=True)
            child = subprocess.Popen(
                [sys.executable, "-m", "ml.train_process"],
                cwd=REPO,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                },
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self._children.add(child)
        timed_out = threading.Event()

        def kill_late_run() -> None:
            timed_out.set()
            child.kill()

        timer = threading.Timer(timeout, kill_late_run)
        timer.daemon = True
        timer.start()
        metrics: dict[str, Any] | None = None
        error: str | None = None
        try:
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(json.dumps(request))
                child.stdin.close()
            except OSError:
                pass  # it died at once; its exit code tells
            for line in child.stdout:
                event = _parse(line)
                kind = event.get("event")
                if kind == "progress":
                    _report(progress, event)
                elif kind == "done":
                    metrics = event.get("metrics")
                elif kind == "error":
                    error = str(event.get("error"))
            code = child.wait()
        finally:
            timer.cancel()
            if child.poll() is None:  # interrupted here (a Celery time limit): the run goes too
                child.kill()
                child.wait()
            with self._lock:
                self._children.discard(child)
                stopping = self._stopping
        if timed_out.is_set():
            return Outcome(error=f"timed out after {timeout:g} s")
        if stopping and code != 0:
            return Outcome(interrupted=True)
        if code == 0 and metrics is not None:
            return Outcome(metrics=metrics)
        return Outcome(error=error or f"the training process stopped (exit code {code})")

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            children = list(self._children)
        for child in children:
            child.kill()


def _parse(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _report(progress: Progress, event: dict[str, Any]) -> None:
    try:
        progress(int(event["epoch"]), int(event["epochs"]), float(event["loss"]))
    except Exception:  # a lost progress report must not cost the run
        log.warning("training progress not reported", exc_info=True)


_worker_processes = TrainingProcesses()


def worker_processes() -> TrainingProcesses:
    """The children of a Celery worker process (never stopped: a warm shutdown lets runs end)."""
    return _worker_processes


class TrainingExecutor:
    """The embedded backend's training queue: AI_TRAIN_WORKERS threads of its own, each waiting
    on one training child at a time. Unbounded here; admission is counted in the database
    (AI_TRAIN_QUEUE_MAX)."""

    def __init__(self, *, workers: int, run: Callable[[int, TrainingProcesses], None]) -> None:
        self.workers = max(1, workers)
        self._run = run
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.processes = TrainingProcesses()

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"ai-trainer-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job_id: int) -> None:
        self._queue.put(job_id)

    def stop(self) -> None:
        """Kills running children (their jobs stay running, for recovery) and drops what is queued
        (it stays queued in the database, for recovery)."""
        self.processes.stop()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(STOP_JOIN_SECONDS)

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self.processes.stopping:
                return
            try:
                self._run(job_id, self.processes)
            except Exception:
                log.exception("training job %d failed outside its run", job_id)
