"""/health says the process is up; /ready says whether it can serve: the database answers, the
AI models it runs can load, and Redis answers where the settings name it (503 with the
problems listed otherwise)."""

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import settings
from main import app, create_app
from ml.base import AIModel
from tests.conftest import TEST_REDIS_URL, Person, free_port, redis_or_skip

API = "/api/v1"
REDIS_URL = TEST_REDIS_URL


class BrokenWeightsModel(AIModel):
    name = "test-broken-weights"
    information = "Test only: its weights never load."

    def load(self) -> None:
        raise OSError("weights file is truncated")

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        raise AssertionError("never reached: loading fails first")


@pytest.fixture
def broken_model() -> AIModel:
    return BrokenWeightsModel()


@pytest.fixture
def model_files_gone(tmp_path: Path) -> Iterator[Path]:
    missing = tmp_path / "no-model-here"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "AI_EMBEDDING_MODEL_PATH", str(missing))
        yield missing


def test_health_answers_while_the_process_is_up(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


@pytest.mark.db
def test_ready_when_the_database_answers_and_the_models_can_load(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "problems": [], "reembedding": None}


def test_ready_names_the_models_whose_files_are_missing(model_files_gone: Path) -> None:
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    reason = f"no multilingual-e5-small model files at {model_files_gone}"
    assert f"model similar-posts cannot load: {reason}" in body["problems"]
    assert f"model board-suggest cannot load: {reason}" in body["problems"]


def test_ready_names_a_model_whose_weights_failed_to_load(broken_model: AIModel, user: Person) -> None:
    with TestClient(create_app(models=[broken_model])) as client:
        assert client.get("/ready").status_code == 200  # nothing was seen missing at start
        job = client.post(
            f"{API}/ai/models/{broken_model.name}/jobs", json={"input": "hello"}, headers=user.headers
        ).json()
        finished = client.get(f"{API}/ai/jobs/{job['id']}?wait=10", headers=user.headers).json()
        assert finished["status"] == "failed"
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["problems"] == [
        "model test-broken-weights cannot load: OSError: weights file is truncated"
    ]


def test_ready_reports_redis_at_a_closed_port_without_its_password(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set after the start, so this app's broker and rate limits keep their embedded defaults.
    monkeypatch.setattr(settings, "REDIS_URL", f"redis://:hunter22@127.0.0.1:{free_port()}/0")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["problems"] == ["redis unreachable"]


def test_ready_reports_a_celery_broker_at_a_closed_port(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "AI_BACKEND", "celery")
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["problems"] == ["celery broker unreachable"]


def test_ready_when_redis_answers(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_or_skip().close()
    monkeypatch.setattr(settings, "REDIS_URL", REDIS_URL)
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["problems"] == []


def test_an_app_started_again_in_the_same_process_leaves_the_garbage_collector_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Start-up's objects are frozen out of the collector's reach once per process. A later
    start must not walk them again: counting the frozen objects alone (gc.get_freeze_count
    walks its list) took ~13 ms of every start, a test's start among them."""
    with TestClient(app):
        pass  # the process's first start, if no test before this one started an app
    calls: list[str] = []

    def recorded(name: str) -> Callable[..., int]:
        def call(*_: object) -> int:
            calls.append(name)
            return 0

        return call

    for name in ("collect", "freeze", "get_freeze_count"):
        monkeypatch.setattr(gc, name, recorded(name))

    with TestClient(app) as client:
        assert client.get("/health").status_code == 200

    assert calls == []
