"""AI_BACKEND=celery with real Celery worker processes and Redis: jobs submitted through the API
run on a worker and come back through the shared database, and a job survives its worker
being killed, or, if it kills every worker, ends failed instead of looping.

The worker runs `celery -A services.ai.celery_app worker` on this test database, with the test-only
models of tests/ai_models.py added (AI_MODEL_MODULES=tests.ai_worker_models). Each test has its
own queue, and every broker key carries this run's prefix.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from config import settings
from ml.base import AIModel
from services.ai import jobs as ai_service
from services.ai.backends import CeleryBackend
from tests.ai_models import CrashModel, SleepOnceModel
from tests.celery_support import CeleryWorker, forget_keys
from tests.conftest import Person, app_with, redis_or_skip

API = "/api/v1"
BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
RUN_ID = uuid.uuid4().hex[:8]
KEY_PREFIX = f"madang-test-{RUN_ID}:"
# Short enough that a killed worker's job is handed out again within seconds; the job time
# limit (and its grace period) stays below it, as the settings require.
VISIBILITY_TIMEOUT = 6
JOB_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def broker() -> Iterator[redis.Redis]:
    connection = redis_or_skip(BROKER_URL)
    yield connection
    forget_keys(connection, KEY_PREFIX)


def celery_settings(queue: str) -> dict[str, Any]:
    return {
        "AI_BACKEND": "celery",
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_QUEUE": queue,
        "CELERY_KEY_PREFIX": KEY_PREFIX,
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": VISIBILITY_TIMEOUT,
        "CELERY_RESTORE_INTERVAL_SECONDS": 1,
        "AI_JOB_TIMEOUT_SECONDS": JOB_TIMEOUT,
        "AI_EVENTS_CHANNEL": f"madang-test-{RUN_ID}:ai-jobs",
    }


def worker_environment(queue: str, *, preload: bool) -> dict[str, str]:
    environment = {key: str(value) for key, value in celery_settings(queue).items()}
    environment.update(AI_MODEL_MODULES="tests.ai_worker_models", AI_WORKER_PRELOAD=str(preload).lower())
    return environment


StartWorker = Callable[..., CeleryWorker]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    workers: list[CeleryWorker] = []

    def start(queue: str, *, preload: bool = False) -> CeleryWorker:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        worker = CeleryWorker(queue, log_path, environment=worker_environment(queue, preload=preload))
        workers.append(worker)
        worker.wait_until_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def api(
    broker: redis.Redis, app_settings: dict[str, Any], extra_models: list[AIModel]
) -> Callable[[str], TestClient]:
    """An app on the Celery backend, sending to this queue (with the test's extra_models)."""
    clients: list[TestClient] = []

    def start(queue: str) -> TestClient:
        app_settings.update(celery_settings(queue))
        client = TestClient(app_with(extra_models, app_settings))
        client.__enter__()
        clients.append(client)
        return client

    yield start  # type: ignore[misc]
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def test_models(extra_models: list[AIModel]) -> None:
    """The worker's models (tests.ai_worker_models) the API must know too, for their AI rows."""
    extra_models.extend((SleepOnceModel(), CrashModel()))


def submit(client: TestClient, person: Person, model: str, text: str) -> int:
    response = client.post(f"{API}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def wait_for_end(client: TestClient, person: Person, job_id: int, *, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 30}, headers=person.headers)
        job = dict(response.json())
        if job["is_finished"]:
            return job
    raise AssertionError(f"job {job_id} is still {job['status']}")


def wait_for_file(path: Path, *, within: float = 30) -> None:
    """What happens inside a worker shows only outside it; look until it has."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.usefixtures("sentence_encoder")
def test_a_job_submitted_through_the_api_finishes_on_a_worker(
    api: Callable[[str], TestClient],
    start_worker: StartWorker,
    make_board: Callable[..., Any],
    make_post: Callable[..., Any],
    user: Person,
) -> None:
    queue = f"madang-test-{RUN_ID}-models"
    make_post(make_board("general"), user, name="Sourdough bread tips", content="Feed the starter overnight.")
    ai_service.reindex()
    start_worker(queue, preload=True)
    client = api(queue)
    job = wait_for_end(client, user, submit(client, user, "similar-posts", "how do I bake bread"))
    assert job["status"] == "succeeded", job
    assert [post["title"] for post in job["result"]["posts"]] == ["Sourdough bread tips"]
    assert job["attempts"] == 1


# On MariaDB too: another process claims again the job a dead one held (attempts counted by the
# claim's UPDATE). The other worker tests share that path; they run on SQLite only.
@pytest.mark.db
@pytest.mark.usefixtures("test_models")
def test_a_job_whose_worker_is_killed_ends_on_the_next_worker(
    api: Callable[[str], TestClient], start_worker: StartWorker, user: Person, tmp_path: Path
) -> None:
    queue = f"madang-test-{RUN_ID}-killed"
    client = api(queue)
    first = start_worker(queue)
    first_run = tmp_path / "first-run"
    job_id = submit(client, user, "test-sleep-once", str(first_run))
    wait_for_file(first_run)  # the model is inside its first run
    first.kill()
    start_worker(queue)
    job = wait_for_end(client, user, job_id)
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert job["result"] == {"runs": "again"}


@pytest.mark.usefixtures("test_models")
def test_a_job_that_kills_every_worker_fails_after_its_attempts(
    api: Callable[[str], TestClient], start_worker: StartWorker, user: Person
) -> None:
    queue = f"madang-test-{RUN_ID}-crash"
    client = api(queue)
    start_worker(queue)
    job = wait_for_end(client, user, submit(client, user, "test-crash", "boom"))
    assert job["status"] == "failed"
    assert job["attempts"] == settings.AI_MAX_ATTEMPTS
    assert job["error"].startswith(f"gave up after {settings.AI_MAX_ATTEMPTS} attempts")


def test_a_users_job_goes_ahead_of_queued_post_indexing(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts written in a burst queue an index task each; a user's job sent after them is still
    the next message a worker takes (read here as a worker reads: kombu over the real broker)."""
    queue = f"madang-test-{RUN_ID}-priority"
    for name, value in celery_settings(queue).items():
        monkeypatch.setattr(settings, name, value)
    backend = CeleryBackend(settings)
    try:
        for post_id in (1, 2, 3):
            backend.submit_index([post_id])
        backend.submit_job("similar-posts", 42)
        with backend.celery.connection_for_read() as connection:
            waiting = connection.SimpleQueue(queue, no_ack=True)
            taken = [waiting.get(timeout=5) for _ in range(4)]
            waiting.close()
    finally:
        backend.stop()
    assert [message.headers["task"] for message in taken] == [
        "madang.ai.run_job",
        *["madang.ai.index_posts"] * 3,
    ]
    args = [message.decode()[0] for message in taken]  # protocol 2 body: (args, kwargs, embed)
    assert args == [["similar-posts", 42], [[1]], [[2]], [[3]]]
