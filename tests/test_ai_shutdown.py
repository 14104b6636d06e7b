"""Stopping the API process with the embedded runner (AI_BACKEND=thread): the batch running
finishes within AI_SHUTDOWN_GRACE_SECONDS, jobs still queued stay queued, a batch still running
after the grace goes back to the queue without its attempt counted, nothing is left `running`,
and the next start runs what was left.

The app is started and stopped in-process (TestClient; its exit runs the lifespan's shutdown)
with the test-gate model, so the test decides when the running batch ends; and once as a real
`uvicorn` process stopped with SIGTERM, with the test-slow model (AI_MODEL_MODULES).
"""

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from config import settings
from database import SessionLocal
from main import create_app
from models import AIlog
from tests.ai_models import GateModel
from tests.chat_support import running_api
from tests.conftest import Person, ended

pytestmark = pytest.mark.db  # jobs handed back to the queue in the database across a restart

API = "/api/v1"


@pytest.fixture
def gate() -> Iterator[GateModel]:
    model = GateModel()
    yield model
    model.gate.set()  # a batch still held lets its runner thread go


@pytest.fixture
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def apply(**overrides: Any) -> None:
        for name, value in overrides.items():
            monkeypatch.setattr(settings, name, value)

    return apply


def submitted(client: TestClient, person: Person, model: str, text: str) -> int:
    response = client.post(f"{API}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def stored(job_ids: list[int]) -> list[tuple[str, int, bool]]:
    """(status, attempts, has a started_date) of each job, from the database."""
    with SessionLocal() as session:
        rows = {row.id: row for row in session.query(AIlog).filter(AIlog.id.in_(job_ids))}
        return [(rows[i].status, rows[i].attempts, rows[i].started_date is not None) for i in job_ids]


def stop_in_background(client: TestClient) -> threading.Thread:
    """Runs the app's shutdown (the TestClient's exit) on another thread, and returns once the
    AI side has begun stopping."""
    stopper = threading.Thread(target=client.__exit__, args=(None, None, None))
    stopper.start()
    deadline = time.monotonic() + 10
    while getattr(client.app.state, "runtime", None) is not None:
        assert time.monotonic() < deadline, "the app did not begin to stop"
        time.sleep(0.01)
    return stopper


def join_runner_threads() -> None:
    """Waits for the stopped runner's threads (a batch given up on still ends its run)."""
    for thread in threading.enumerate():
        if thread.name.startswith("ai-runner"):
            thread.join(10)


def test_stopping_finishes_the_running_job_and_leaves_the_queued_ones_queued(
    app_settings: Callable[..., None], gate: GateModel, user: Person
) -> None:
    app_settings(AI_WORKERS=1, AI_SHUTDOWN_GRACE_SECONDS=10)
    client = TestClient(create_app(models=[gate])).__enter__()
    running = submitted(client, user, "test-gate", "running")
    assert gate.started.wait(10)
    queued = [submitted(client, user, "test-gate", f"queued {i}") for i in range(2)]

    stopper = stop_in_background(client)
    time.sleep(0.2)
    assert stopper.is_alive(), "the shutdown did not wait for the running batch"
    gate.gate.set()  # the running batch ends within the grace
    stopper.join(10)
    assert not stopper.is_alive()

    assert stored([running, *queued]) == [("succeeded", 1, True), ("queued", 0, False), ("queued", 0, False)]
    assert gate.batches == [["running"]]
    with TestClient(create_app(models=[gate])) as restarted:  # the next start's recovery runs what was left
        assert [ended(restarted, user, job_id)["status"] for job_id in queued] == ["succeeded"] * 2
    assert stored(queued) == [("succeeded", 1, True)] * 2


def test_a_batch_running_past_the_grace_goes_back_to_the_queue_with_its_attempt_uncounted(
    app_settings: Callable[..., None], gate: GateModel, user: Person
) -> None:
    app_settings(AI_WORKERS=1, AI_SHUTDOWN_GRACE_SECONDS=0.3)
    client = TestClient(create_app(models=[gate])).__enter__()
    cut_short = submitted(client, user, "test-gate", "cut short")
    assert gate.started.wait(10)
    queued = submitted(client, user, "test-gate", "queued")

    started = time.monotonic()
    client.__exit__(None, None, None)
    assert time.monotonic() - started < 5  # the grace, not the batch, bounds the shutdown

    assert stored([cut_short, queued]) == [("queued", 0, False), ("queued", 0, False)]
    gate.gate.set()  # the given-up batch now ends on its thread: its result must not count
    join_runner_threads()
    assert stored([cut_short]) == [("queued", 0, False)]
    with TestClient(create_app(models=[gate])) as restarted:
        finished = [ended(restarted, user, job_id) for job_id in (cut_short, queued)]
    assert [(job["status"], job["attempts"]) for job in finished] == [("succeeded", 1)] * 2


def test_sigterm_lets_the_running_job_finish_and_the_next_process_runs_the_queued_ones(
    user: Person, tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "AI_MODEL_MODULES": "tests.ai_worker_models",  # test-slow, in the API process
        "AI_WORKERS": "1",
        "AI_SHUTDOWN_GRACE_SECONDS": "20",
        "RATE_LIMIT_ENABLED": "false",
    }
    with running_api(environment, tmp_path / "first.log") as api:

        def submit(seconds: str) -> int:
            response = httpx2.post(
                f"{api.http}{API}/ai/models/test-slow/jobs", json={"input": seconds}, headers=user.headers
            )
            assert response.status_code == 202, response.text
            return int(response.json()["id"])

        running = submit("1.5")
        deadline = time.monotonic() + 10
        while stored([running])[0][0] != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.02)
        queued = [submit("0"), submit("0")]
        api.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down cleanly
        assert api.process.wait(30) in (0, -signal.SIGTERM), api.log.read_text()
        assert "Application shutdown complete" in api.log.read_text()

    assert stored([running, *queued]) == [("succeeded", 1, True), ("queued", 0, False), ("queued", 0, False)]
    with running_api(environment, tmp_path / "second.log") as api:
        for job_id in queued:
            response = httpx2.get(
                f"{api.http}{API}/ai/jobs/{job_id}?wait=30", headers=user.headers, timeout=40
            )
            assert (response.json()["status"], response.json()["attempts"]) == ("succeeded", 1)
