"""AI_BACKEND=celery with real Celery workers and Redis: an administrator's training job runs on a
worker of the training queue, and users' jobs on the trained model run on a worker of the
inference queue, each writing to the shared database and MODEL_DIR.

The workers run `celery -A ml.celery_app worker -Q <queue>` on this test database; this module
has its own Redis database, broker key prefix and queue names (tests/test_ai_celery.py's pattern).
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from config import BASE_DIR, settings
from main import app
from ml import tabular
from tests.conftest import Person

API = "/api/v1"
BROKER_URL = os.environ.get("TEST_TRAINING_CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
RUN_ID = uuid.uuid4().hex[:8]
KEY_PREFIX = f"madang-test-training-{RUN_ID}:"
INFERENCE_QUEUE = f"madang-test-{RUN_ID}-inference"
TRAINING_QUEUE = f"madang-test-{RUN_ID}-training"
WORKER_READY_SECONDS = 120
SETTINGS: dict[str, Any] = {
    "AI_BACKEND": "celery",
    "CELERY_BROKER_URL": BROKER_URL,
    "CELERY_QUEUE": INFERENCE_QUEUE,
    "CELERY_TRAIN_QUEUE": TRAINING_QUEUE,
    "CELERY_KEY_PREFIX": KEY_PREFIX,
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": 120,
    "AI_JOB_TIMEOUT_SECONDS": 30.0,
    "AI_EVENTS_CHANNEL": f"{KEY_PREFIX}ai-jobs",
}


@pytest.fixture(scope="module")
def broker() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1)
    try:
        connection.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {BROKER_URL}")
    yield connection
    for key in connection.scan_iter(f"{KEY_PREFIX}*"):
        connection.delete(key)
    connection.close()


class Worker:
    """One `celery worker` for one queue, in its own process group."""

    def __init__(self, queue: str, log_path: Path) -> None:
        environment = {key: str(value) for key, value in SETTINGS.items()}
        environment.update(AI_WORKER_PRELOAD="false", AI_TRAIN_NICE="0")
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "ml.celery_app", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "-Q", queue),
                *("-n", f"{queue}@%h", "--without-gossip", "--without-mingle"),
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

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


@pytest.fixture
def workers(broker: redis.Redis, tmp_path: Path) -> Iterator[dict[str, Worker]]:
    """A worker for the training queue and one for the inference queue."""
    started = {
        "training": Worker(TRAINING_QUEUE, tmp_path / "training-worker.log"),
        "inference": Worker(INFERENCE_QUEUE, tmp_path / "inference-worker.log"),
    }
    try:
        for worker in started.values():
            worker.wait_until_ready()
        yield started
    finally:
        for worker in started.values():
            worker.stop()


@pytest.fixture
def api(broker: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    for name, value in SETTINGS.items():
        monkeypatch.setattr(settings, name, value)
    with TestClient(app) as client:
        yield client


def wait_for_end(client: TestClient, person: Person, job_id: int, *, within: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + within
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = dict(client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 30}, headers=person.headers).json())
        if job["is_finished"]:
            return job
    raise AssertionError(f"job {job_id} is still {job.get('status')}")


def small_csv() -> bytes:
    x = np.round(np.random.default_rng(7).uniform(0, 10, size=(300, 2)), 3)
    text = io.StringIO()
    tabular.write_csv(text, ["a", "b", "y"], np.column_stack([x, 2 * x[:, 0] + 3 * x[:, 1] + 1]))
    return text.getvalue().encode()


def test_a_model_trained_on_a_training_worker_serves_jobs_on_an_inference_worker(
    api: TestClient, workers: dict[str, Worker], admin: Person, user: Person
) -> None:
    response = api.post(
        f"{API}/admin/ai/models",
        data={"name": "price", "target": "y", "epochs": "100", "learning_rate": "0.05"},
        files={"file": ("data.csv", small_csv(), "text/csv")},
        headers=admin.headers,
    )
    assert response.status_code == 202, response.text
    training = wait_for_end(api, admin, response.json()["id"])
    assert training["status"] == "succeeded", training
    assert training["result"]["metrics"]["test_rmse"] < 0.01 * training["result"]["metrics"]["target_std"]
    assert b"Task madang.ai.train_model[" in workers["training"].log_path.read_bytes()

    response = api.post(
        f"{API}/ai/models/price/jobs", json={"input": {"a": 1.0, "b": 1.0}}, headers=user.headers
    )
    assert response.status_code == 202, response.text
    job = wait_for_end(api, user, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["prediction"] == pytest.approx(6.0, rel=0.01)
    assert b"Task madang.ai.run_job[" in workers["inference"].log_path.read_bytes()
    assert b"Task madang.ai.run_job[" not in workers["training"].log_path.read_bytes()
