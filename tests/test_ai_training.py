"""Administrators train tabular-regression models from a CSV; users run them through the job API
(issue 7), on the embedded backend. Every run is a real PyTorch training in a child process.

Most tests train on a small CSV (300 rows, y = slope*a + 3b + 1) in a fraction of a second; the
accuracy bar is checked on the sample data set of `cli.py sample-dataset` (10,000 rows).
"""

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select, update

from config import settings
from database import SessionLocal
from main import app
from ml import tabular
from models import AI, AIlog, AIModelVersion
from tests.chat_support import LiveSocket, live_socket
from tests.conftest import Person, StartApp, ended

API = "/api/v1"
SMALL_FIT = {"epochs": 100, "learning_rate": 0.05}  # converges on the small CSV
SAMPLE_FIT = {"epochs": 5, "learning_rate": 0.05}  # converges on the sample data set
SLOW_FIT = {"epochs": 40, "learning_rate": 0.01}  # the sample data set for a few seconds


@pytest.fixture(autouse=True)
def training_at_full_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not niced: on a machine busy with other work a niced run would only slow the suite down."""
    monkeypatch.setattr(settings, "AI_TRAIN_NICE", 0)


def small_csv(*, rows: int = 300, slope: float = 2.0, seed: int = 1) -> bytes:
    x = np.round(np.random.default_rng(seed).uniform(0, 10, size=(rows, 2)), 3)
    y = slope * x[:, 0] + 3 * x[:, 1] + 1
    return csv_bytes(["a", "b", "y"], np.column_stack([x, y]))


def csv_bytes(columns: list[str], values: np.ndarray) -> bytes:
    text = io.StringIO()
    tabular.write_csv(text, columns, values)
    return text.getvalue().encode()


@pytest.fixture(scope="module")
def sample_csv() -> bytes:
    return csv_bytes(*tabular.sample_dataset())


@pytest.fixture
def price_model() -> int:
    """A model trained on the small CSV in this process, as a finished training run leaves it: its
    row, a succeeded version, its files. For tests about using a model (the training path through
    the API is tested on its own); saves starting a training process."""
    rng = np.random.default_rng(1)
    x = np.round(rng.uniform(0, 10, size=(300, 2)), 3)
    spec = tabular.TrainingSpec(features=["a", "b"], target="y", hidden_size=None, **SMALL_FIT)
    result = tabular.train(x, 2 * x[:, 0] + 3 * x[:, 1] + 1, spec)
    key = tabular.new_key()
    tabular.save_model(settings.MODEL_DIR, key, result, spec=spec, version=1)
    with SessionLocal() as session:
        model = AI(name="price", information="what a thing costs", kind=tabular.KIND, is_ready=True)
        session.add(model)
        session.flush()
        parameters = {"target": "y", "features": ["a", "b"], "hidden_size": None, "rows": 300, **SMALL_FIT}
        session.add(
            AIModelVersion(
                ai_id=model.id,
                version=1,
                status="succeeded",
                parameters=json.dumps(parameters),
                metrics=json.dumps(result.metrics),
                file_key=key,
            )
        )
        session.commit()
        return model.id


def train(
    client: TestClient, person: Person, csv: bytes, *, name: str = "price", target: str = "y", **fields: Any
) -> Response:
    data = {"name": name, "information": "what a thing costs", "target": target, **fields}
    return client.post(
        f"{API}/admin/ai/models",
        data={key: str(value) for key, value in data.items()},
        files={"file": ("data.csv", csv, "text/csv")},
        headers=person.headers,
    )


def retrain(client: TestClient, person: Person, model_id: int, csv: bytes, **fields: Any) -> Response:
    data = {"target": "y", **fields}
    return client.post(
        f"{API}/admin/ai/models/{model_id}/train",
        data={key: str(value) for key, value in data.items()},
        files={"file": ("data.csv", csv, "text/csv")},
        headers=person.headers,
    )


def trained(client: TestClient, admin: Person, csv: bytes | None = None, **fields: Any) -> dict[str, Any]:
    response = train(client, admin, small_csv() if csv is None else csv, **(fields or SMALL_FIT))
    assert response.status_code == 202, response.text
    job = ended(client, admin, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def submit(client: TestClient, person: Person, name: str, value: Any) -> Response:
    return client.post(f"{API}/ai/models/{name}/jobs", json={"input": value}, headers=person.headers)


def predicted(client: TestClient, person: Person, name: str, value: Any) -> dict[str, Any]:
    response = submit(client, person, name, value)
    assert response.status_code == 202, response.text
    job = ended(client, person, response.json()["id"])
    assert job["status"] == "succeeded", job
    return dict(job["result"])


def model_id(name: str = "price") -> int:
    with SessionLocal() as session:
        found = session.scalar(select(AI.id).where(AI.name == name))
    assert found is not None
    return found


def versions(client: TestClient, person: Person, name: str = "price") -> list[dict[str, Any]]:
    response = client.get(f"{API}/admin/ai/models/{model_id(name)}/versions", headers=person.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def listed_names(client: TestClient, person: Person) -> set[str]:
    return {model["name"] for model in client.get(f"{API}/ai/models", headers=person.headers).json()["items"]}


def stored_things() -> tuple[int, int, int, list[str]]:
    """Trained model rows, versions, jobs and the files under MODEL_DIR."""
    with SessionLocal() as session:
        models = session.scalar(select(func.count()).select_from(AI).where(AI.kind.is_not(None)))
        versions = session.scalar(select(func.count()).select_from(AIModelVersion))
        jobs = session.scalar(select(func.count()).select_from(AIlog))
    root = Path(settings.MODEL_DIR)
    files = (
        sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
        if root.exists()
        else []
    )
    return int(models or 0), int(versions or 0), int(jobs or 0), files


def version_row(job_id: int) -> AIModelVersion:
    with SessionLocal() as session:
        row = session.scalar(select(AIModelVersion).where(AIModelVersion.training_job_id == job_id))
    assert row is not None
    return row


def progress_event(socket: LiveSocket, job_id: int) -> dict[str, Any]:
    """The first `ai.job` event of this job that carries training progress."""
    while True:
        job = socket.wait_for("ai.job", timeout=60)["job"]
        if job["id"] == job_id and (job["result"] or {}).get("progress"):
            return dict(job)


def training_children() -> list[int]:
    """This process's `python -m ml.train_process` children."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"ml.train_process" in command:
                pids.append(int(pid))
    return pids


KNOWN_ROW = {"x0": 1.0, "x1": 2.0, "x2": 3.0, "x3": 4.0, "x4": 5.0, "x5": 6.0, "x6": 7.0, "x7": 8.0}
KNOWN_Y = sum(c * KNOWN_ROW[f"x{i}"] for i, c in enumerate(tabular.SAMPLE_COEFFICIENTS))  # 146.85


# --- the sample data set ---------------------------------------------------------------------


def test_the_sample_data_set_command_writes_rows_of_the_formula() -> None:
    from typer.testing import CliRunner

    from cli import app as cli_app

    result = CliRunner().invoke(cli_app, ["sample-dataset", "--rows", "50"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "x0,x1,x2,x3,x4,x5,x6,x7,y"
    rows = np.array([[float(cell) for cell in line.split(",")] for line in lines[1:]])
    assert rows.shape == (50, 9)
    assert rows[:, 8] == pytest.approx(rows[:, :8] @ np.array(tabular.SAMPLE_COEFFICIENTS), abs=1e-6)


def test_the_sample_data_set_is_the_same_every_time(sample_csv: bytes) -> None:
    assert csv_bytes(*tabular.sample_dataset()) == sample_csv
    assert len(sample_csv.splitlines()) == 10_001


# --- training and using a model -------------------------------------------------------------


def test_training_answers_202_with_the_training_job_and_its_location(
    client: TestClient, admin: Person
) -> None:
    response = train(client, admin, small_csv(), **SMALL_FIT)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"{API}/ai/jobs/{job['id']}"
    assert (job["model"], job["status"]) == ("price", "queued")
    assert job["input"]["train"] == {
        "version": 1,
        "target": "y",
        "features": ["a", "b"],
        "epochs": 100,
        "learning_rate": 0.05,
        "hidden_size": None,
        "rows": 300,
    }


def test_training_on_the_sample_data_reaches_a_test_rmse_under_one_percent_of_the_target_std(
    client: TestClient, admin: Person, sample_csv: bytes
) -> None:
    metrics = trained(client, admin, sample_csv, **SAMPLE_FIT)["result"]["metrics"]
    assert (metrics["rows"], metrics["train_rows"], metrics["test_rows"]) == (10_000, 7_000, 3_000)
    assert metrics["test_rmse"] < 0.01 * metrics["target_std"]
    assert metrics["test_r2"] > 0.999
    assert metrics["seconds"] > 0


def test_a_model_trained_on_the_sample_data_predicts_a_known_row_within_one_percent(
    client: TestClient, admin: Person, user: Person, sample_csv: bytes
) -> None:
    trained(client, admin, sample_csv, **SAMPLE_FIT)
    result = predicted(client, user, "price", KNOWN_ROW)
    assert result["prediction"] == pytest.approx(KNOWN_Y, rel=0.01)
    assert (result["version"], result["target"]) == (1, "y")


def test_a_model_with_a_hidden_layer_learns_too(client: TestClient, admin: Person, user: Person) -> None:
    trained(client, admin, hidden_size=16, epochs=150, learning_rate=0.02)
    assert predicted(client, user, "price", {"a": 4.0, "b": 5.0})["prediction"] == pytest.approx(
        24.0, rel=0.05
    )


def test_a_list_of_rows_gets_a_list_of_predictions(
    client: TestClient, user: Person, price_model: int
) -> None:
    result = predicted(client, user, "price", [{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 0.0}])
    assert result["predictions"] == pytest.approx([6.0, 5.0], rel=0.01)


def test_the_features_may_be_chosen_and_other_columns_are_ignored(
    client: TestClient, admin: Person, user: Person
) -> None:
    csv = "a,note,y\n" + "".join(f"{i % 17},item {i},{2 * (i % 17) + 1}\n" for i in range(300))
    trained(client, admin, csv.encode(), features="a", **SMALL_FIT)
    assert predicted(client, user, "price", {"a": 3.0})["prediction"] == pytest.approx(7.0, rel=0.01)


def test_the_model_is_listed_for_users_once_its_first_version_succeeded(
    client: TestClient, admin: Person, user: Person
) -> None:
    trained(client, admin)
    models = client.get(f"{API}/ai/models", headers=user.headers).json()["items"]
    listed = {model["name"]: model for model in models}
    assert listed["price"]["kind"] == "tabular-regression"
    assert listed["price"]["is_ready"] is True


def test_progress_is_on_the_job_and_pushed_to_the_administrators_socket(
    client: TestClient, admin: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "AI_TRAIN_PROGRESS_SECONDS", 0.0)
    with live_socket(client, admin) as socket:
        job_id = train(client, admin, small_csv(), epochs=5, learning_rate=0.05).json()["id"]
        seen = []
        while not seen or not seen[-1]["is_finished"]:
            job = socket.wait_for("ai.job", timeout=60)["job"]
            if job["id"] == job_id:
                seen.append(job)
    epochs = [
        job["result"]["progress"]["epoch"] for job in seen if job["status"] == "running" and job["result"]
    ]
    assert epochs == [1, 2, 3, 4, 5]
    assert seen[-1]["status"] == "succeeded"
    assert seen[-1]["result"]["progress"]["epochs"] == 5
    assert isinstance(seen[-1]["result"]["progress"]["loss"], float)


def test_the_weights_are_safetensors_with_json_metadata_named_by_a_random_key(
    client: TestClient, admin: Person
) -> None:
    from safetensors.torch import load_file

    job = trained(client, admin)
    key = version_row(job["id"]).file_key
    metadata = json.loads(tabular.metadata_path(settings.MODEL_DIR, key).read_text())
    assert (metadata["features"], metadata["target"], metadata["version"]) == (["a", "b"], "y", 1)
    assert set(metadata["scaler"]) == {"x_mean", "x_std", "y_mean", "y_std"}
    assert metadata["metrics"]["test_rmse"] == job["result"]["metrics"]["test_rmse"]
    assert set(load_file(tabular.weights_path(settings.MODEL_DIR, key))) == {
        "network.0.weight",
        "network.0.bias",
        "scaler.x_mean",
        "scaler.x_std",
        "scaler.y",
    }
    assert not tabular.dataset_path(settings.MODEL_DIR, key).exists()  # the upload went with the run


# --- versions -------------------------------------------------------------------------------


def test_a_new_version_replaces_the_old_for_inference(
    client: TestClient, admin: Person, user: Person, price_model: int
) -> None:
    response = retrain(client, admin, model_id(), small_csv(slope=5.0), **SMALL_FIT)
    assert response.status_code == 202, response.text
    assert ended(client, admin, response.json()["id"])["status"] == "succeeded"
    result = predicted(client, user, "price", {"a": 1.0, "b": 1.0})
    assert result["version"] == 2
    assert result["prediction"] == pytest.approx(9.0, rel=0.01)


@pytest.mark.db
def test_the_old_version_stays_listed_and_on_disk(client: TestClient, admin: Person) -> None:
    first = trained(client, admin)
    second = ended(
        client, admin, retrain(client, admin, model_id(), small_csv(slope=5.0), **SMALL_FIT).json()["id"]
    )
    listed = versions(client, admin)
    assert [(v["version"], v["status"], v["is_current"]) for v in listed] == [
        (2, "succeeded", True),
        (1, "succeeded", False),
    ]
    assert [v["metrics"]["test_rmse"] for v in listed] == [
        second["result"]["metrics"]["test_rmse"],
        first["result"]["metrics"]["test_rmse"],
    ]
    assert tabular.weights_path(settings.MODEL_DIR, version_row(first["id"]).file_key).exists()


def test_a_failed_new_version_leaves_the_current_one_serving(
    client: TestClient, admin: Person, user: Person, price_model: int
) -> None:
    job_id = retrain(client, admin, model_id(), small_csv(), epochs=100, learning_rate=10).json()["id"]
    assert ended(client, admin, job_id)["status"] == "failed"
    assert predicted(client, user, "price", {"a": 1.0, "b": 1.0})["version"] == 1


def test_a_built_in_model_cannot_be_trained(client: TestClient, admin: Person) -> None:
    response = retrain(client, admin, model_id("similar-posts"), small_csv(), **SMALL_FIT)
    assert response.status_code == 409
    assert response.json()["code"] == "not_trainable"


@pytest.mark.db
def test_a_taken_name_is_refused_with_nothing_written(client: TestClient, admin: Person) -> None:
    before = stored_things()
    response = train(client, admin, small_csv(), name="similar-posts")
    assert response.status_code == 409
    assert stored_things() == before


# --- who may ---------------------------------------------------------------------------------


def test_a_normal_user_cannot_train_a_model(client: TestClient, user: Person) -> None:
    before = stored_things()
    assert train(client, user, small_csv()).status_code == 403
    assert stored_things() == before


def test_an_anonymous_client_cannot_train_a_model(client: TestClient) -> None:
    response = client.post(
        f"{API}/admin/ai/models",
        data={"name": "price", "target": "y"},
        files={"file": ("d.csv", small_csv())},
    )
    assert response.status_code == 401


def test_a_normal_user_cannot_train_a_new_version(client: TestClient, user: Person, price_model: int) -> None:
    assert retrain(client, user, model_id(), small_csv()).status_code == 403


def test_a_normal_user_cannot_list_versions(client: TestClient, user: Person, price_model: int) -> None:
    assert client.get(f"{API}/admin/ai/models/{model_id()}/versions", headers=user.headers).status_code == 403


# --- refused data: a clear 4xx, nothing stored -----------------------------------------------

BAD_FILES = {
    "empty": (b"", {}, "the file is empty"),
    "only a header": (b"a,b,y\n", {}, "no data rows"),
    "a non-numeric cell": (b"a,b,y\n1,2,3\n1,abc,2\n" + b"1,2,3\n" * 12, {}, "row 2 (line 3), column 'b'"),
    "an empty cell": (b"a,b,y\n" + b"1,2,3\n" * 12 + b"1,,3\n", {}, "row 13 (line 14), column 'b' is empty"),
    "no target column": (small_csv(), {"target": "price"}, "the target column 'price' is not in the file"),
    "duplicate column names": (
        b"a,a,y\n" + b"1,2,3\n" * 20,
        {},
        "duplicate column name(s) in the header: 'a'",
    ),
    "features not in the file": (
        small_csv(),
        {"features": "a,c,d"},
        "feature column(s) not in the file: c, d",
    ),
    "too few rows": (b"a,b,y\n" + b"1,2,3\n" * 5, {}, "training needs at least 10"),
    "not UTF-8": (b"a,b,y\n\xff\xfe,1,2\n", {}, "not UTF-8"),
    "a short row": (b"a,b,y\n" + b"1,2,3\n" * 12 + b"1,2\n", {}, "row 13 (line 14) has 2 cells"),
}


@pytest.mark.parametrize("bad", BAD_FILES.values(), ids=list(BAD_FILES))
def test_a_bad_file_is_refused_naming_the_problem_with_nothing_written(
    client: TestClient, admin: Person, bad: tuple[bytes, dict[str, str], str]
) -> None:
    csv, fields, expected = bad
    before = stored_things()
    response = train(client, admin, csv, **fields)
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]
    assert stored_things() == before


def test_a_non_numeric_cell_is_named_by_row_and_column(client: TestClient, admin: Person) -> None:
    csv = b"a,b,y\n" + b"1,2,3\n" * 40 + b"1,2,three\n"
    response = train(client, admin, csv)
    assert response.json()["detail"] == "row 41 (line 42), column 'y' is not a number: 'three'"
    assert response.json()["code"] == "non_numeric_cell"


def test_more_rows_than_allowed_are_refused_with_nothing_written(
    client: TestClient, admin: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "AI_TRAIN_MAX_ROWS", 100)
    before = stored_things()
    response = train(client, admin, small_csv(rows=101))
    assert response.status_code == 422
    assert response.json()["detail"] == "the file has more than 100 data rows (AI_TRAIN_MAX_ROWS)"
    assert stored_things() == before


def test_a_file_over_the_upload_limit_is_refused_with_nothing_written(
    client: TestClient, admin: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)
    before = stored_things()
    response = train(client, admin, small_csv(rows=60_000))  # about 1.2 MB
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert stored_things() == before


def test_a_body_over_the_route_limit_is_refused(client: TestClient, admin: Person) -> None:
    too_large = b"a,y\n" + b"1,2\n" * ((settings.MAX_UPLOAD_MB * 1024 * 1024) // 4 + 20_000)
    before = stored_things()
    assert train(client, admin, too_large).status_code == 413
    assert stored_things() == before


# --- inference input --------------------------------------------------------------------------


def test_a_row_missing_a_column_is_refused_naming_it(
    client: TestClient, user: Person, price_model: int
) -> None:
    response = submit(client, user, "price", {"a": 1.0})
    assert response.status_code == 422
    assert response.json()["detail"] == "input: missing column(s): b (version 1 reads a, b)"


def test_a_row_with_an_unknown_column_is_refused_naming_it(
    client: TestClient, user: Person, price_model: int
) -> None:
    response = submit(client, user, "price", [{"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0, "c": 3.0}])
    assert response.status_code == 422
    assert response.json()["detail"] == "input: row 2: unknown column(s): c (version 1 reads a, b)"


def test_text_for_a_trained_model_is_refused(client: TestClient, user: Person, price_model: int) -> None:
    assert submit(client, user, "price", "a=1, b=2").status_code == 422


def test_a_non_number_in_a_row_is_refused(client: TestClient, user: Person, price_model: int) -> None:
    assert submit(client, user, "price", {"a": "1", "b": 2.0}).status_code == 422


def test_rows_for_a_text_model_are_refused(client: TestClient, user: Person) -> None:
    response = submit(client, user, "similar-posts", {"a": 1.0})
    assert response.status_code == 422
    assert response.json()["detail"] == "input: similar-posts reads text: give `input` as a string"


# --- unusable models ---------------------------------------------------------------------------


def test_a_model_whose_training_diverged_fails_with_the_reason(client: TestClient, admin: Person) -> None:
    job_id = train(client, admin, small_csv(), epochs=100, learning_rate=10).json()["id"]
    job = ended(client, admin, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("the loss became inf at epoch ")
    assert job["error"].endswith("try a smaller learning_rate")


def test_a_failed_training_leaves_no_usable_version(client: TestClient, admin: Person, user: Person) -> None:
    job_id = train(client, admin, small_csv(), epochs=100, learning_rate=10).json()["id"]
    ended(client, admin, job_id)
    key = version_row(job_id).file_key
    assert [v["status"] for v in versions(client, admin)] == ["failed"]
    assert not tabular.weights_path(settings.MODEL_DIR, key).exists()
    assert not tabular.dataset_path(settings.MODEL_DIR, key).exists()
    assert submit(client, admin, "price", {"a": 1.0, "b": 1.0}).status_code == 404


def test_an_untrained_model_is_not_listed_for_users(client: TestClient, admin: Person, user: Person) -> None:
    ended(client, admin, train(client, admin, small_csv(), epochs=100, learning_rate=10).json()["id"])
    assert "price" not in listed_names(client, user)
    assert submit(client, user, "price", {"a": 1.0, "b": 1.0}).status_code == 404


def test_administrators_see_an_untrained_model_as_not_ready(client: TestClient, admin: Person) -> None:
    ended(client, admin, train(client, admin, small_csv(), epochs=100, learning_rate=10).json()["id"])
    models = client.get(f"{API}/ai/models", headers=admin.headers).json()["items"]
    listed = {model["name"]: model for model in models}
    assert listed["price"]["is_ready"] is False


def test_a_model_still_training_cannot_be_used(
    client: TestClient, admin: Person, user: Person, sample_csv: bytes
) -> None:
    with live_socket(client, admin) as socket:
        job_id = train(client, admin, sample_csv, **SLOW_FIT).json()["id"]
        progress_event(socket, job_id)
        assert submit(client, user, "price", KNOWN_ROW).status_code == 404
        assert "price" not in listed_names(client, user)


def test_a_hidden_trained_model_cannot_be_used_by_users(
    client: TestClient, admin: Person, user: Person, price_model: int
) -> None:
    hidden = client.patch(
        f"{API}/admin/ai/models/{model_id()}", json={"is_visible": False}, headers=admin.headers
    )
    assert hidden.status_code == 200
    assert submit(client, user, "price", {"a": 1.0, "b": 1.0}).status_code == 404
    assert "price" not in listed_names(client, user)


def test_a_crashed_training_process_fails_the_job_with_the_reason(
    client: TestClient, admin: Person, sample_csv: bytes
) -> None:
    with live_socket(client, admin) as socket:
        job_id = train(client, admin, sample_csv, **SLOW_FIT).json()["id"]
        progress_event(socket, job_id)
        (child,) = training_children()
        os.kill(child, signal.SIGKILL)
    job = ended(client, admin, job_id)
    assert (job["status"], job["error"]) == ("failed", "the training process stopped (exit code -9)")
    assert [v["status"] for v in versions(client, admin)] == ["failed"]


def test_a_training_past_its_time_limit_fails(
    client: TestClient, admin: Person, sample_csv: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "AI_TRAIN_TIMEOUT_SECONDS", 0.5)
    job = ended(client, admin, train(client, admin, sample_csv, **SLOW_FIT).json()["id"])
    assert (job["status"], job["error"]) == ("failed", "timed out after 0.5 s")


@pytest.mark.db
def test_training_jobs_beyond_the_training_queue_limit_are_refused_with_nothing_written(
    client: TestClient, admin: Person, sample_csv: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "AI_TRAIN_QUEUE_MAX", 1)
    assert train(client, admin, sample_csv, **SLOW_FIT).status_code == 202
    before = stored_things()
    response = train(client, admin, small_csv(), name="other")
    assert response.status_code == 429
    assert response.json()["code"] == "training_queue_full"
    assert stored_things() == before


@pytest.mark.db
def test_a_training_canceled_while_queued_leaves_a_canceled_version_and_no_data(
    client: TestClient, admin: Person, sample_csv: bytes
) -> None:
    # Holds the one training thread: its process takes seconds to start before its 5 epochs.
    first = train(client, admin, sample_csv, **SAMPLE_FIT).json()["id"]
    second = train(client, admin, small_csv(), name="other", **SMALL_FIT).json()["id"]
    assert client.post(f"{API}/ai/jobs/{second}/cancel", headers=admin.headers).json()["status"] == "canceled"
    ended(client, admin, first)
    third = train(client, admin, small_csv(), name="third", **SMALL_FIT).json()["id"]
    ended(client, admin, third)  # the queue passed the canceled job on its way
    assert [v["status"] for v in versions(client, admin, "other")] == ["canceled"]
    assert not tabular.dataset_path(settings.MODEL_DIR, version_row(second).file_key).exists()


# --- restarts ----------------------------------------------------------------------------------


def stop_during_training(admin: Person, csv: bytes) -> int:
    """Starts the app, starts a training, stops the app once the run is under way."""
    with TestClient(app) as client, live_socket(client, admin) as socket:
        job_id = int(train(client, admin, csv, **SLOW_FIT).json()["id"])
        progress_event(socket, job_id)
    return job_id


@pytest.mark.db
def test_a_training_stopped_by_a_restart_runs_again_at_the_next_start(
    start_app: StartApp, admin: Person, sample_csv: bytes
) -> None:
    job_id = stop_during_training(admin, sample_csv)
    with SessionLocal() as session:
        assert session.scalar(select(AIlog.status).where(AIlog.id == job_id)) == "running"
    client = start_app()
    job = ended(client, admin, job_id)
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert [v["status"] for v in versions(client, admin)] == ["succeeded"]


def test_a_training_out_of_attempts_fails_at_the_next_start(
    start_app: StartApp, admin: Person, sample_csv: bytes
) -> None:
    job_id = stop_during_training(admin, sample_csv)
    with SessionLocal() as session:
        session.execute(update(AIlog).where(AIlog.id == job_id).values(attempts=settings.AI_MAX_ATTEMPTS))
        session.commit()
    client = start_app()
    job = ended(client, admin, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith(f"gave up after {settings.AI_MAX_ATTEMPTS} attempts")
    assert [v["status"] for v in versions(client, admin)] == ["failed"]
    assert not tabular.dataset_path(settings.MODEL_DIR, version_row(job_id).file_key).exists()
