"""No cold first job: the embedded runner loads its models in the background when the app starts
(AI_LOAD_AT_START), and /ready says "models loading" until they are loaded; loading one prints no
progress bar of a library's on stderr."""

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.base import AIModel
from tests.ai_models import GATE_TIMEOUT_SECONDS
from tests.conftest import StartApp

REPO = Path(__file__).resolve().parent.parent


class SlowLoadingModel(AIModel):
    """Loads only once the test lets it; counts its loads."""

    name = "test-slow-loading"
    information = "Test only: its load waits for the test."

    def __init__(self) -> None:
        self.release = threading.Event()
        self.loads = 0

    def load(self) -> None:
        self.release.wait(GATE_TIMEOUT_SECONDS)
        self.loads += 1

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        return [text.upper() for text in inputs]


@pytest.fixture
def slow_model(extra_models: list[AIModel]) -> Iterator[SlowLoadingModel]:
    model = SlowLoadingModel()
    extra_models.append(model)
    yield model
    model.release.set()


def problems(client: Any) -> tuple[int, list[str]]:
    response = client.get("/ready")
    return response.status_code, response.json()["problems"]


def test_ready_says_models_loading_until_they_have_loaded_at_start(start_app: StartApp, slow_model):
    client = start_app(AI_LOAD_AT_START=True)
    assert problems(client) == (503, ["models loading"])
    assert slow_model.loads == 0

    slow_model.release.set()
    backend = client.app.state.runtime.ai.backend
    backend._loader.join(60)  # the start-up loader, joined to end the wait without a sleep
    assert problems(client) == (200, [])
    assert slow_model.loads == 1  # loaded without any job asking for it


def test_without_loading_at_start_a_model_waits_for_its_first_job(start_app: StartApp, slow_model):
    client = start_app(AI_LOAD_AT_START=False)
    assert problems(client) == (200, [])
    assert slow_model.loads == 0


def test_loading_the_sentence_encoder_prints_no_progress_bar():
    """The weights' loader of the transformers library draws "Loading weights: 100%|...|" on
    stderr unless told not to; the model processes' stderr is the server's log."""
    script = "from ml.encoder import SentenceEncoder\nSentenceEncoder().load()\nprint('loaded')"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"
    assert "Loading weights" not in done.stderr
    assert "%|" not in done.stderr
