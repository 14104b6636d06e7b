"""AI_BACKEND=celery with real Celery workers and Redis: an administrator's training job runs on a
worker of the training queue, and users' jobs on the trained model run on a worker of the
inference queue, each writing to the shared database and MODEL_DIR.

The workers run `celery -A services.ai.celery_app worker -Q <queue>` on this test database; this module
has its own Redis database, broker key prefix and queue names (tests/test_ai_celery.py's pattern).
"""

import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from config import settings
from main import app
from ml import tabular
from tests.celery_support import CeleryWorker, forget_keys
from tests.conftest import Person, redis_or_skip

pytestmark = pytest.mark.db  # worker processes sharing the database

API = "/api/v1"
BROKER_URL = os.environ.get("TEST_TRAINING_CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
RUN_ID = uuid.uuid4().hex[:8]
KEY_PREFIX = f"madang-test-training-{RUN_ID}:"
INFERENCE_QUEUE = f"madang-test-{RUN_ID}-inference"
TRAINING_QUEUE = f"madang-test-{RUN_ID}-training"
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
    connection = redis_or_skip(BROKER_URL)
    yield connection
    forget_keys(connection, KEY_PREFIX)


WORKER_ENVIRONMENT = {
    **{key: str(value) for key, value in SETTINGS.items()},
    "AI_WORKER_PRELOAD": "false",
    "AI_TRAIN_NICE": "0",
}


@pytest.fixture
def workers(broker: redis.Redis, tmp_path: Path) -> Iterator[dict[str, CeleryWorker]]:
    """A worker for the training queue and one for the inference queue."""
    started = {
        role: CeleryWorker(queue, tmp_path / f"{role}.log", environment=WORKER_ENVIRONMENT)
        for role, queue in (("training", TRAINING_QUEUE), ("inference", INFERENCE_QUEUE))
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
    api: TestClient, workers: dict[str, CeleryWorker], admin: Person, user: Person
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
