"""The AI job life cycle through the API, on the embedded runner (AI_BACKEND=thread).

These tests use the small test-only models of tests/ai_models.py, added to the registry of the
apps each test starts: one that answers (test-echo), one that always raises (test-failing) and
one that holds its batch until the test opens a gate (test-gate), so that "queued", "running",
"wait" and "timeout" happen exactly when the test says. The real models are tested in
tests/test_ai_models.py.
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from threadpoolctl import threadpool_info, threadpool_limits

from config import settings
from database import SessionLocal, utcnow
from ml.base import AIModel
from models import AI, AIlog
from services import broker
from services.ai import events as ai_events
from tests.ai_models import EchoModel, FailingModel, GateModel
from tests.chat_support import live_socket
from tests.conftest import Person, StartApp, ended

pytestmark = pytest.mark.db  # jobs stored, claimed and counted in the database; idempotency keys; pool slots

API = "/api/v1"


M = TypeVar("M", bound=AIModel)


def registered(model: M, extra_models: list[AIModel]) -> M:
    """The model, in the apps this test starts (conftest's extra_models)."""
    extra_models.append(model)
    return model


@pytest.fixture
def echo(extra_models: list[AIModel]) -> EchoModel:
    return registered(EchoModel(), extra_models)


@pytest.fixture
def failing(extra_models: list[AIModel]) -> FailingModel:
    return registered(FailingModel(), extra_models)


@pytest.fixture
def gate(extra_models: list[AIModel]) -> Iterator[GateModel]:
    model = registered(GateModel(), extra_models)
    yield model
    model.gate.set()  # let a held batch finish before the app stops


def submit(client: TestClient, person: Person, model: str, text: str = "hello", **headers: str) -> Response:
    return client.post(
        f"{API}/ai/models/{model}/jobs", json={"input": text}, headers={**person.headers, **headers}
    )


def submitted(client: TestClient, person: Person, model: str, text: str = "hello") -> dict[str, Any]:
    response = submit(client, person, model, text)
    assert response.status_code == 202, response.text
    return dict(response.json())


# --- submitting -----------------------------------------------------------------------------


def test_submitting_answers_202_with_the_queued_job_and_its_location(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    response = submit(client, user, "test-echo", "안녕하세요")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"{API}/ai/jobs/{job['id']}"
    assert job["model"] == "test-echo"
    assert job["status"] == "queued"
    assert job["input"] == "안녕하세요"
    assert job["result"] is None and job["finish_date"] is None and job["is_finished"] is False


def test_a_job_ends_with_its_result_and_timestamps(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    job = ended(client, user, submitted(client, user, "test-echo", "madang")["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["echo"] == "MADANG"
    assert job["create_date"] <= job["started_date"] <= job["finish_date"]
    assert job["attempts"] == 1


def test_an_unknown_model_is_not_found(start_app: StartApp, user: Person) -> None:
    client = start_app()
    response = submit(client, user, "no-such-model")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_blank_input_is_refused(start_app: StartApp, echo: EchoModel, user: Person) -> None:
    client = start_app()
    assert submit(client, user, "test-echo", "   ").status_code == 422


def test_models_are_listed_with_their_information(start_app: StartApp, user: Person) -> None:
    client = start_app()
    response = client.get(f"{API}/ai/models", headers=user.headers)
    assert response.status_code == 200
    names = {model["name"] for model in response.json()["items"]}
    assert {"similar-posts", "board-suggest"} <= names
    assert "post-index" not in names  # internal, takes no jobs


# --- waiting --------------------------------------------------------------------------------


def test_waiting_answers_as_soon_as_the_job_ends_without_holding_a_thread(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-gate")["id"]
    assert gate.started.wait(10)
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["response"] = client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 30}, headers=user.headers)
        answer["at"] = time.monotonic()

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the request answered before the job ended"
    # While it waits, the request holds none of the worker threads sync endpoints run on.
    assert client.portal.call(_borrowed_threads) == 0
    opened = time.monotonic()
    gate.gate.set()
    waiter.join(10)
    assert answer["response"].json()["status"] == "succeeded"
    assert answer["at"] - opened < 1.0  # woken by the job's end, not by the 2 s re-check


def test_waiting_requests_leave_the_database_slots_to_other_requests(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app(DATABASE_POOL_SIZE=2)  # two request sessions at once (RequestSlots)
    job_ids = [submitted(client, user, "test-gate", f"job {i}")["id"] for i in range(3)]
    assert gate.started.wait(10)
    answers: list[Response] = []
    waiters = [
        threading.Thread(
            target=lambda job_id=job_id: answers.append(
                client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 8}, headers=user.headers)
            ),
            daemon=True,
        )
        for job_id in job_ids
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.5)
    assert not answers, "a wait answered before its job ended"
    started = time.monotonic()
    assert client.get(f"{API}/ai/jobs", headers=user.headers).status_code == 200
    assert time.monotonic() - started < 3, "the waiting requests kept the others out"
    gate.gate.set()
    for waiter in waiters:
        waiter.join(10)
    assert sorted(answer.json()["status"] for answer in answers) == ["succeeded"] * 3


def test_a_submission_that_prefers_to_wait_is_answered_with_the_ended_job(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    response = submit(client, user, "test-echo", "hi there", Prefer="wait=10")
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["status"], job["is_finished"]) == ("succeeded", True)
    assert job["result"] == ended(client, user, job["id"])["result"]  # the stored ending
    assert response.headers["Location"] == f"{API}/ai/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "wait=10"


def test_a_submission_that_waits_longer_than_preferred_is_accepted_as_it_is(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app()
    started = time.monotonic()
    response = submit(client, user, "test-gate", Prefer="respond-async, wait=0.5")
    assert 0.5 <= time.monotonic() - started < 5
    assert response.status_code == 202
    assert response.json()["is_finished"] is False
    assert response.headers["Preference-Applied"] == "wait=0.5"
    gate.gate.set()
    assert ended(client, user, response.json()["id"])["status"] == "succeeded"


@pytest.mark.parametrize("prefer", ["respond-async", "wait=soon", "wait=-3", "wait=nan", "handling=strict"])
def test_a_preference_that_is_not_a_wait_is_ignored(
    start_app: StartApp, gate: GateModel, user: Person, prefer: str
) -> None:
    client = start_app()
    started = time.monotonic()
    response = submit(client, user, "test-gate", Prefer=prefer)
    assert time.monotonic() - started < 2  # answered at once, the job still held at the gate
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers
    gate.gate.set()


def test_a_preferred_wait_is_capped_at_30_seconds(start_app: StartApp, echo: EchoModel, user: Person) -> None:
    client = start_app()
    response = submit(client, user, "test-echo", Prefer="wait=3600")
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=30"


async def _borrowed_threads() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().borrowed_tokens)


def test_waiting_gives_up_after_the_wait(start_app: StartApp, gate: GateModel, user: Person) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-gate")["id"]
    started = time.monotonic()
    response = client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 0.5}, headers=user.headers)
    assert 0.5 <= time.monotonic() - started < 5
    assert response.json()["is_finished"] is False


def test_wait_is_bounded_to_30_seconds(start_app: StartApp, echo: EchoModel, user: Person) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-echo")["id"]
    assert client.get(f"{API}/ai/jobs/{job_id}", params={"wait": 31}, headers=user.headers).status_code == 422


# --- batching -------------------------------------------------------------------------------


def test_jobs_queued_while_the_worker_is_busy_run_as_one_batch(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app(AI_WORKERS=1)
    first = submitted(client, user, "test-gate", "first")["id"]
    assert gate.started.wait(10)
    waiting = [submitted(client, user, "test-gate", f"next {i}")["id"] for i in range(3)]
    gate.gate.set()
    for job_id in [first, *waiting]:
        assert ended(client, user, job_id)["status"] == "succeeded"
    assert gate.batches == [["first"], ["next 0", "next 1", "next 2"]]


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def limit_blas_threads(limits: int) -> None:
    """From a thread that then ends: threadpoolctl lets one live thread at a time set OpenBLAS's
    process-wide limit, and the app sets it from the thread that runs its startup."""
    setter = threading.Thread(target=threadpool_limits, kwargs={"limits": limits, "user_api": "blas"})
    setter.start()
    setter.join()


def test_the_embedded_runner_computes_numpy_products_on_one_thread(start_app: StartApp) -> None:
    [before] = blas_threads()
    limit_blas_threads(2)  # as a process starts: one per core
    try:
        assert blas_threads() == {2}
        start_app()
        assert blas_threads() == {1}
    finally:
        limit_blas_threads(before)


def test_one_model_process_per_core_by_default() -> None:
    assert settings.AI_WORKERS == 0
    assert settings.ai_workers == len(os.sched_getaffinity(0))


# --- cancel ---------------------------------------------------------------------------------


def test_a_queued_job_can_be_canceled_and_never_runs(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app(AI_WORKERS=1)
    submitted(client, user, "test-gate", "holds the worker")
    assert gate.started.wait(10)
    job_id = submitted(client, user, "test-gate", "waits its turn")["id"]
    response = client.post(f"{API}/ai/jobs/{job_id}/cancel", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "canceled" and response.json()["is_finished"] is True
    gate.gate.set()
    job = ended(client, user, job_id)
    assert job["status"] == "canceled" and job["started_date"] is None
    assert ["waits its turn"] not in gate.batches


def test_a_running_job_cannot_be_canceled(start_app: StartApp, gate: GateModel, user: Person) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-gate")["id"]
    assert gate.started.wait(10)
    response = client.post(f"{API}/ai/jobs/{job_id}/cancel", headers=user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "job_running"


def test_a_finished_job_cannot_be_canceled(start_app: StartApp, echo: EchoModel, user: Person) -> None:
    client = start_app()
    job_id = ended(client, user, submitted(client, user, "test-echo")["id"])["id"]
    response = client.post(f"{API}/ai/jobs/{job_id}/cancel", headers=user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"


# --- idempotency ----------------------------------------------------------------------------


def test_a_retried_submission_with_the_same_key_returns_the_first_job(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    first = submit(client, user, "test-echo", "once", **{"Idempotency-Key": "retry-1"})
    again = submit(client, user, "test-echo", "once", **{"Idempotency-Key": "retry-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert client.get(f"{API}/ai/jobs", headers=user.headers).json()["total"] == 1


def test_a_key_reused_for_another_input_is_a_conflict(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    assert submit(client, user, "test-echo", "one", **{"Idempotency-Key": "k"}).status_code == 202
    response = submit(client, user, "test-echo", "two", **{"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"


def test_idempotency_keys_belong_to_their_user(
    start_app: StartApp, echo: EchoModel, user: Person, other_user: Person
) -> None:
    client = start_app()
    mine = submit(client, user, "test-echo", "same", **{"Idempotency-Key": "k"}).json()
    theirs = submit(client, other_user, "test-echo", "same", **{"Idempotency-Key": "k"}).json()
    assert mine["id"] != theirs["id"]


# --- limits ---------------------------------------------------------------------------------


def test_a_full_queue_answers_429_with_retry_after(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app(AI_QUEUE_MAX=2, AI_WORKERS=1, AI_MAX_JOBS_PER_USER=100)
    submitted(client, user, "test-gate", "running")
    assert gate.started.wait(10)
    submitted(client, user, "test-gate", "queued 1")
    submitted(client, user, "test-gate", "queued 2")
    response = submit(client, user, "test-gate", "one too many")
    assert response.status_code == 429
    assert response.json()["code"] == "queue_full"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_user_with_too_many_jobs_in_flight_gets_429(
    start_app: StartApp, gate: GateModel, user: Person, other_user: Person
) -> None:
    client = start_app(AI_MAX_JOBS_PER_USER=2)
    submitted(client, user, "test-gate")
    submitted(client, user, "test-gate")
    response = submit(client, user, "test-gate")
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_jobs"
    assert "Retry-After" in response.headers
    assert submit(client, other_user, "test-gate").status_code == 202


# --- failures -------------------------------------------------------------------------------


def test_a_model_that_raises_fails_its_job_with_the_error_and_the_runner_goes_on(
    start_app: StartApp, failing: FailingModel, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    job = ended(client, user, submitted(client, user, "test-failing")["id"])
    assert job["status"] == "failed"
    assert job["error"] == "RuntimeError: the test model cannot answer"
    assert job["result"] is None
    assert ended(client, user, submitted(client, user, "test-echo")["id"])["status"] == "succeeded"


def test_a_job_past_its_time_limit_fails_and_the_runner_goes_on(
    start_app: StartApp, gate: GateModel, echo: EchoModel, user: Person
) -> None:
    client = start_app(AI_JOB_TIMEOUT_SECONDS=0.5, AI_WORKERS=1)
    job = ended(client, user, submitted(client, user, "test-gate")["id"])
    assert job["status"] == "failed"
    assert job["error"] == "timed out after 0.5 s"
    # The hung batch still holds its thread; the next job runs beside it.
    assert ended(client, user, submitted(client, user, "test-echo")["id"])["status"] == "succeeded"
    gate.gate.set()


# --- whose jobs -----------------------------------------------------------------------------


def test_someone_elses_job_is_not_found(
    start_app: StartApp, echo: EchoModel, user: Person, other_user: Person
) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-echo")["id"]
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=other_user.headers).status_code == 404
    assert client.post(f"{API}/ai/jobs/{job_id}/cancel", headers=other_user.headers).status_code == 404
    assert client.delete(f"{API}/ai/jobs/{job_id}", headers=other_user.headers).status_code == 404


def test_an_administrator_sees_every_job(
    start_app: StartApp, echo: EchoModel, user: Person, admin: Person
) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-echo")["id"]
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=admin.headers).status_code == 200
    everyone = client.get(f"{API}/admin/ai/jobs", headers=admin.headers).json()
    assert [job["id"] for job in everyone["items"]] == [job_id]


def test_my_jobs_are_listed_newest_first_with_a_status_filter(
    start_app: StartApp, echo: EchoModel, failing: FailingModel, user: Person, other_user: Person
) -> None:
    client = start_app()
    good = ended(client, user, submitted(client, user, "test-echo")["id"])["id"]
    bad = ended(client, user, submitted(client, user, "test-failing")["id"])["id"]
    submitted(client, other_user, "test-echo")
    page = client.get(f"{API}/ai/jobs", params={"limit": 1}, headers=user.headers).json()
    assert (page["total"], [j["id"] for j in page["items"]]) == (2, [bad])
    failed = client.get(f"{API}/ai/jobs", params={"status": "failed"}, headers=user.headers).json()
    assert [j["id"] for j in failed["items"]] == [bad]
    succeeded = client.get(f"{API}/ai/jobs", params={"status": "succeeded"}, headers=user.headers).json()
    assert [j["id"] for j in succeeded["items"]] == [good]


def test_deleting_a_finished_job_hides_it_from_its_owner_only(
    start_app: StartApp, echo: EchoModel, user: Person, admin: Person
) -> None:
    client = start_app()
    job_id = ended(client, user, submitted(client, user, "test-echo")["id"])["id"]
    assert client.delete(f"{API}/ai/jobs/{job_id}", headers=user.headers).status_code == 204
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=user.headers).status_code == 404
    assert client.get(f"{API}/ai/jobs", headers=user.headers).json()["total"] == 0
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=admin.headers).status_code == 200


def test_a_deleted_job_stays_in_the_administrators_list(
    start_app: StartApp, echo: EchoModel, user: Person, admin: Person
) -> None:
    client = start_app()
    job_id = ended(client, user, submitted(client, user, "test-echo")["id"])["id"]
    client.delete(f"{API}/ai/jobs/{job_id}", headers=user.headers)
    everyone = client.get(f"{API}/admin/ai/jobs", headers=admin.headers).json()
    assert [job["id"] for job in everyone["items"]] == [job_id]


def test_a_running_job_cannot_be_deleted(start_app: StartApp, gate: GateModel, user: Person) -> None:
    client = start_app()
    job_id = submitted(client, user, "test-gate")["id"]
    assert gate.started.wait(10)
    response = client.delete(f"{API}/ai/jobs/{job_id}", headers=user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_finished"
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=user.headers).status_code == 200


def test_a_queued_job_cannot_be_deleted(start_app: StartApp, gate: GateModel, user: Person) -> None:
    client = start_app(AI_WORKERS=1)
    submitted(client, user, "test-gate", "holds the worker")
    assert gate.started.wait(10)
    job_id = submitted(client, user, "test-gate", "waits its turn")["id"]
    response = client.delete(f"{API}/ai/jobs/{job_id}", headers=user.headers)
    assert response.status_code == 409
    assert client.get(f"{API}/ai/jobs/{job_id}", headers=user.headers).json()["status"] == "queued"


def test_a_canceled_job_can_be_deleted(start_app: StartApp, gate: GateModel, user: Person) -> None:
    client = start_app(AI_WORKERS=1)
    submitted(client, user, "test-gate", "holds the worker")
    assert gate.started.wait(10)
    job_id = submitted(client, user, "test-gate", "waits its turn")["id"]
    client.post(f"{API}/ai/jobs/{job_id}/cancel", headers=user.headers)
    assert client.delete(f"{API}/ai/jobs/{job_id}", headers=user.headers).status_code == 204


# --- administrators and models --------------------------------------------------------------


def model_id(client: TestClient, person: Person, name: str) -> int:
    models = client.get(f"{API}/ai/models", headers=person.headers).json()["items"]
    return next(m["id"] for m in models if m["name"] == name)


def test_a_hidden_model_is_not_found_for_users_but_administrators_still_use_it(
    start_app: StartApp, echo: EchoModel, user: Person, admin: Person
) -> None:
    client = start_app()
    echo_id = model_id(client, admin, "test-echo")
    response = client.patch(
        f"{API}/admin/ai/models/{echo_id}", json={"is_visible": False}, headers=admin.headers
    )
    assert response.status_code == 200 and response.json()["is_visible"] is False
    listed = client.get(f"{API}/ai/models", headers=user.headers).json()["items"]
    assert "test-echo" not in {m["name"] for m in listed}
    assert submit(client, user, "test-echo").status_code == 404
    assert submit(client, admin, "test-echo").status_code == 202


def test_an_administrator_edits_a_models_information(
    start_app: StartApp, echo: EchoModel, user: Person, admin: Person
) -> None:
    client = start_app()
    echo_id = model_id(client, admin, "test-echo")
    changes = {"information": "대문자로 돌려줍니다"}
    assert (
        client.patch(f"{API}/admin/ai/models/{echo_id}", json=changes, headers=admin.headers).status_code
        == 200
    )
    models = client.get(f"{API}/ai/models", headers=user.headers).json()["items"]
    assert next(m for m in models if m["id"] == echo_id)["information"] == "대문자로 돌려줍니다"


def test_only_administrators_edit_models(start_app: StartApp, echo: EchoModel, user: Person) -> None:
    client = start_app()
    echo_id = model_id(client, user, "test-echo")
    response = client.patch(
        f"{API}/admin/ai/models/{echo_id}", json={"is_visible": False}, headers=user.headers
    )
    assert response.status_code == 403


# --- live updates ---------------------------------------------------------------------------


def test_the_owners_socket_hears_every_step_of_the_job(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    client = start_app()
    with live_socket(client, user) as socket:
        job_id = submitted(client, user, "test-echo")["id"]
        statuses = []
        while not statuses or statuses[-1] != "succeeded":
            event = socket.wait_for("ai.job", timeout=10)
            assert event["job"]["id"] == job_id
            statuses.append(event["job"]["status"])
    assert statuses == ["queued", "running", "succeeded"]


def test_without_a_socket_only_the_ending_is_published_and_to_the_waiters_alone(
    start_app: StartApp, echo: EchoModel, user: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = start_app()
    published: list[str] = []
    ending_published = threading.Event()
    to_sockets: list[dict[str, Any]] = []
    publish = ai_events.JobEvents.publish

    def recorded(events: ai_events.JobEvents, updates: list[ai_events.JobUpdate]) -> None:
        published.extend(u.job["status"] for u in updates)
        publish(events, updates)
        ending_published.set()

    def envelope(_audience: broker.Audience, event: dict[str, Any]) -> str:
        to_sockets.append(event)
        return json.dumps(event)

    monkeypatch.setattr(ai_events.JobEvents, "publish", recorded)
    monkeypatch.setattr(broker, "deliver_envelope", envelope)
    job = ended(client, user, submitted(client, user, "test-echo")["id"])
    assert job["status"] == "succeeded"
    # The ending is stored before it is published, so a poll can read it first.
    assert ending_published.wait(timeout=5)
    # Nobody could hear "queued" or "running"; the ending wakes the long poll.
    assert published == ["succeeded"]
    assert to_sockets == []


@dataclass(eq=False)
class QuietSocket:
    """What the Hub holds of a socket, for a test that delivers nothing."""

    user_id: int
    is_admin: bool = False

    def deliver(self, text: str) -> None:
        return

    def close(self, code: int, reason: str) -> None:
        return


def test_a_broker_shared_between_processes_may_reach_any_socket_and_the_in_process_one_only_its_own() -> None:
    assert broker.RedisBroker("redis://127.0.0.1:1/0", "channel").may_reach(1)
    in_process = broker.InProcessBroker()
    assert not in_process.may_reach(1)
    in_process.hub.register(QuietSocket(user_id=1))
    assert in_process.may_reach(1) and not in_process.may_reach(2)


# --- recovery -------------------------------------------------------------------------------


def test_jobs_a_crash_left_behind_are_run_again_or_failed_at_startup(
    start_app: StartApp, echo: EchoModel, user: Person
) -> None:
    long_ago = utcnow() - timedelta(minutes=5)
    with SessionLocal() as session:
        model = AI(name="test-echo", information=echo.information)
        session.add(model)
        session.flush()
        rows = {
            "never started": AIlog(user_id=user.id, ai_id=model.id, content="a", status="queued"),
            "cut short": AIlog(
                user_id=user.id,
                ai_id=model.id,
                content="b",
                status="running",
                attempts=1,
                started_date=long_ago,
            ),
            "out of attempts": AIlog(
                user_id=user.id,
                ai_id=model.id,
                content="c",
                status="running",
                attempts=3,
                started_date=long_ago,
            ),
        }
        session.add_all(rows.values())
        session.commit()
        ids = {name: row.id for name, row in rows.items()}
    client = start_app()
    never_started = ended(client, user, ids["never started"])
    cut_short = ended(client, user, ids["cut short"])
    out_of_attempts = ended(client, user, ids["out of attempts"])
    assert (never_started["status"], never_started["attempts"]) == ("succeeded", 1)
    assert (cut_short["status"], cut_short["attempts"]) == ("succeeded", 2)
    assert out_of_attempts["status"] == "failed"
    assert out_of_attempts["error"].startswith("gave up after 3 attempts")
