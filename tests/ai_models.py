"""Small models that exist only for the tests: they make a job fail, hang, wait for the test's
signal or kill their own process, which the real models never do on purpose. Tests register
them in the registry for their duration (tests/test_ai_jobs.py); a Celery worker started by
the tests imports tests/ai_worker_models.py (AI_MODEL_MODULES) to know them too."""

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ml.base import AIModel

GATE_TIMEOUT_SECONDS = 30  # a gate the test forgot to open still lets the runner thread go


class EchoModel(AIModel):
    name = "test-echo"
    information = "Test only: answers with its input in capitals."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        return [{"echo": text.upper(), "batch_size": len(inputs)} for text in inputs]


class FailingModel(AIModel):
    name = "test-failing"
    information = "Test only: raises on every batch."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        raise RuntimeError("the test model cannot answer")


class GateModel(AIModel):
    """Holds each batch until the test opens the gate; tells the test when a batch started."""

    name = "test-gate"
    information = "Test only: answers once the test lets it."

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[str]] = []

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        self.batches.append(list(inputs))
        self.started.set()
        self.gate.wait(GATE_TIMEOUT_SECONDS)
        return [{"echo": text.upper()} for text in inputs]


class SlowModel(AIModel):
    """Input: how many seconds to take (e.g. "1.5"); a batch takes as long as its slowest job."""

    name = "test-slow"
    information = "Test only: takes as long as its input says."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        time.sleep(max(float(text) for text in inputs))
        return [{"slept": float(text)} for text in inputs]


class SleepOnceModel(AIModel):
    """Input: a file path. The first run creates the file and then sleeps (long enough to be
    killed mid-job); a later run answers at once."""

    name = "test-sleep-once"
    information = "Test only: hangs on its first run."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        marks = [Path(text) for text in inputs]
        if not all(mark.exists() for mark in marks):
            for mark in marks:
                mark.touch()
            time.sleep(60)
        return [{"runs": "again"} for _ in inputs]


class CrashModel(AIModel):
    """Kills the process that runs it, every time: a job no worker survives."""

    name = "test-crash"
    information = "Test only: kills its own process."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class CountRunsModel(AIModel):
    """Input: "<file> <seconds>". Each run of a job appends this process's id to the file, then,
    on the job's first run only, takes that long: the file tells how many times, and in which
    processes, one job ran (tests/test_ai_leases.py)."""

    name = "test-count-runs"
    information = "Test only: counts its runs in a file."

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        answers: list[Any] = []
        for text in inputs:
            path, seconds = text.rsplit(" ", 1)
            log = Path(path)
            runs = len(log.read_text().split()) if log.exists() else 0
            with log.open("a") as output:
                output.write(f"{os.getpid()}\n")
            if runs == 0:
                time.sleep(float(seconds))
            answers.append({"run": runs + 1})
        return answers
