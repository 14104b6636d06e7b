"""Several API processes with the embedded runner on one database: a job queued or running in
one process carries that process's lease (lease_owner, renewed until lease_until by its
heartbeat), so another process starting up, or sweeping, takes only the jobs of a process that
stopped renewing (services/ai/leases.py, services/ai/recovery.py).

The last tests start real API processes (`cli.py serve`) on a MariaDB database of their own
(dropped and made anew here; they run in the MariaDB pass of `make test`), with the
test-count-runs model (tests/ai_models.py), which writes a line to a file each time a job runs:
one job, one line."""

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from config import settings
from database import SessionLocal, utcnow
from ml.base import AIModel
from models import AI, AIlog, User
from services import security
from services.ai import backends
from services.ai.events import NOBODY
from services.ai.leases import Leases
from services.ai.recovery import recover
from tests.ai_models import GateModel
from tests.chat_support import ApiProcess, running_api
from tests.conftest import (
    IS_MARIADB,
    Person,
    StartApp,
    ended,
    process_database,
)

pytestmark = pytest.mark.db  # leases taken and compared in the database, by threads and processes

API = "/api/v1"


# --- recovery and the heartbeat, in this process ------------------------------------------


class Runner:
    """What recovery hands jobs to: a backend of the embedded kind that records them."""

    recovers_at_startup = True

    def __init__(self, seconds: float = 30) -> None:
        self.leases = Leases(seconds)
        self.resubmitted: list[int] = []
        self.trained: list[int] = []

    def resubmit_job(self, model_name: str, job_id: int) -> None:
        self.resubmitted.append(job_id)

    def submit_training(self, job_id: int) -> None:
        self.trained.append(job_id)


@pytest.fixture
def model_id() -> int:
    with SessionLocal() as session:
        model = AI(name=f"lease-{uuid.uuid4().hex[:8]}", information="")
        session.add(model)
        session.commit()
        return model.id


def stored_job(user: Person, model_id: int, **columns: Any) -> int:
    with SessionLocal() as session:
        job = AIlog(user_id=user.id, ai_id=model_id, content="x", **columns)
        session.add(job)
        session.commit()
        return job.id


def lease_of(job_id: int) -> tuple[str, int, str | None, datetime | None]:
    """(status, attempts, lease_owner, lease_until) of the job, from the database."""
    with SessionLocal() as session:
        job = session.get(AIlog, job_id)
        assert job is not None
        return job.status, job.attempts, job.lease_owner, job.lease_until


def test_recovery_leaves_the_jobs_another_live_process_holds(user: Person, model_id: int) -> None:
    alive = utcnow() + timedelta(seconds=20)
    running = stored_job(
        user,
        model_id,
        status="running",
        attempts=1,
        started_date=utcnow(),
        lease_owner="a",
        lease_until=alive,
    )
    queued = stored_job(user, model_id, status="queued", lease_owner="a", lease_until=alive)
    runner = Runner()

    assert recover(runner, NOBODY) == (0, 0)

    assert runner.resubmitted == []
    assert lease_of(running)[:3] == ("running", 1, "a")
    assert lease_of(queued)[:3] == ("queued", 0, "a")


def test_recovery_takes_the_jobs_whose_lease_expired_and_those_that_never_had_one(
    user: Person, model_id: int
) -> None:
    expired = utcnow() - timedelta(seconds=1)
    running = stored_job(
        user,
        model_id,
        status="running",
        attempts=1,
        started_date=expired,
        lease_owner="dead",
        lease_until=expired,
    )
    queued = stored_job(user, model_id, status="queued", lease_owner="dead", lease_until=expired)
    unleased = stored_job(user, model_id, status="queued")  # stored by a script, no app running
    exhausted = stored_job(
        user,
        model_id,
        status="running",
        attempts=3,
        started_date=expired,
        lease_owner="dead",
        lease_until=expired,
    )
    runner = Runner()

    assert recover(runner, NOBODY) == (3, 1)

    assert runner.resubmitted == [running, queued, unleased]
    mine = runner.leases.owner
    assert [lease_of(job_id)[:3] for job_id in (running, queued, unleased)] == [
        ("queued", 1, mine),  # the attempt it had stays counted
        ("queued", 0, mine),
        ("queued", 0, mine),
    ]
    assert lease_of(exhausted) == ("failed", 3, None, None)


def test_two_recoveries_at_once_take_each_job_once(user: Person, model_id: int) -> None:
    expired = utcnow() - timedelta(seconds=1)
    jobs = [
        stored_job(user, model_id, status="running", attempts=1, lease_owner="dead", lease_until=expired)
        for _ in range(5)
    ]
    runners = [Runner(), Runner()]
    together = threading.Barrier(2)

    def recover_with(runner: Runner) -> None:
        together.wait()
        recover(runner, NOBODY)

    threads = [threading.Thread(target=recover_with, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(runners[0].resubmitted + runners[1].resubmitted) == jobs
    owners = {runner.leases.owner: runner.resubmitted for runner in runners}
    for job_id in jobs:
        status, attempts, owner, _ = lease_of(job_id)
        assert (status, attempts) == ("queued", 1)
        assert owner is not None and job_id in owners[owner]


def test_the_heartbeat_renews_only_its_own_leases_of_jobs_in_flight(user: Person, model_id: int) -> None:
    runner = Runner(seconds=30)
    soon = utcnow() + timedelta(seconds=2)
    mine = [
        stored_job(user, model_id, status=status, lease_owner=runner.leases.owner, lease_until=soon)
        for status in ("queued", "running")
    ]
    theirs = stored_job(user, model_id, status="running", lease_owner="other", lease_until=soon)

    assert runner.leases.renew() == 2

    for job_id in mine:
        assert lease_of(job_id)[3] > utcnow() + timedelta(seconds=25)
    until = lease_of(theirs)[3]
    assert until is not None and until <= soon  # as it was (to the second, where the column keeps no more)


def test_a_live_process_sweeps_up_the_jobs_of_one_that_stopped_renewing(user: Person, model_id: int) -> None:
    runner = Runner(seconds=0.3)
    lost = stored_job(
        user,
        model_id,
        status="running",
        attempts=1,
        lease_owner="dead",
        lease_until=utcnow() + timedelta(seconds=0.2),
    )
    swept = threading.Event()

    def sweep() -> None:
        if recover(runner, NOBODY, at_start=False)[0]:
            swept.set()

    runner.leases.keep(sweep)
    try:
        assert swept.wait(5)
    finally:
        runner.leases.stop()
    assert runner.resubmitted == [lost]
    # Stopped: its leases went with it, for the next process to take at once.
    assert lease_of(lost) == ("queued", 1, None, None)


# --- the app's own jobs ---------------------------------------------------------------------


@pytest.fixture
def gate(extra_models: list[AIModel]) -> Iterator[GateModel]:
    model = GateModel()
    extra_models.append(model)
    yield model
    model.gate.set()


def submitted(client: TestClient, person: Person, model: str, text: str) -> int:
    response = client.post(f"{API}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def test_a_job_carries_its_processs_lease_from_submission_until_it_ends(
    start_app: StartApp, gate: GateModel, user: Person
) -> None:
    client = start_app(AI_WORKERS=1)
    owner = client.app.state.runtime.ai.backend.leases.owner
    running = submitted(client, user, "test-gate", "running")
    assert gate.started.wait(10)
    queued = submitted(client, user, "test-gate", "queued")
    before = utcnow()

    for job_id, status in ((running, "running"), (queued, "queued")):
        stored_status, _, stored_owner, until = lease_of(job_id)
        assert (stored_status, stored_owner) == (status, owner)
        assert until is not None and until > before + timedelta(seconds=settings.AI_LEASE_SECONDS - 5)

    gate.gate.set()
    assert ended(client, user, queued)["status"] == "succeeded"
    assert lease_of(running) == ("succeeded", 1, None, None)
    assert lease_of(queued) == ("succeeded", 1, None, None)


# --- two API processes on MariaDB -----------------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[Engine]:
    yield from process_database("_leases")


LEASE_SECONDS = 2  # a dead process's jobs are taken over this long after its last renewal
# The API processes use a MariaDB database of their own whichever the suite's is: they run once,
# in the MariaDB pass of `make test`.
in_the_mariadb_pass = pytest.mark.skipif(not IS_MARIADB, reason="runs in the MariaDB pass")


@pytest.fixture
def serve(database: Engine, tmp_path: Path) -> Iterator[Callable[[str], ApiProcess]]:
    """Starts an API process on the test's database with the embedded runner; stops them all
    at the end."""
    environment = {
        **os.environ,
        "DATABASE_URL": database.url.render_as_string(hide_password=False),
        "REDIS_URL": "",
        "AI_BACKEND": "thread",
        "AI_MODEL_MODULES": "tests.ai_worker_models",  # test-count-runs, in the API process
        "AI_WORKERS": "1",
        "AI_LOAD_AT_START": "false",
        "AI_INDEX_POSTS": "false",
        "AI_LEASE_SECONDS": str(LEASE_SECONDS),
        "RATE_LIMIT_ENABLED": "false",
    }
    started: list[Any] = []

    def start(name: str) -> ApiProcess:
        context = running_api(environment, tmp_path / f"{name}.log")
        started.append(context)
        return context.__enter__()

    yield start
    for context in reversed(started):
        context.__exit__(None, None, None)


def account(engine: Engine) -> dict[str, str]:
    name = f"lease_{uuid.uuid4().hex[:12]}"
    with Session(engine) as session:
        user = User(name=name, email=f"{name}@example.com", password_hash=security.unusable_password_hash())
        session.add(user)
        session.commit()
        return {"Authorization": f"Bearer {security.create_access_token(user.id, user.token_version)}"}


def submit_counted(api: ApiProcess, headers: dict[str, str], runs: Path, seconds: float) -> int:
    response = httpx2.post(
        f"{api.http}{API}/ai/models/test-count-runs/jobs",
        json={"input": f"{runs} {seconds}"},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def runs_of(runs: Path) -> list[str]:
    """The process ids that ran the job, one per run."""
    return runs.read_text().split() if runs.exists() else []


def wait_for_runs(runs: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(runs_of(runs)) < count:
        assert time.monotonic() < deadline, f"the job ran {len(runs_of(runs))} times, not {count}"
        time.sleep(0.05)


def ended_on(api: ApiProcess, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = httpx2.get(f"{api.http}{API}/ai/jobs/{job_id}?wait=10", headers=headers, timeout=20).json()
        if job["is_finished"] or time.monotonic() > deadline:
            return dict(job)


def stored_status(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(AIlog.status).where(AIlog.id == job_id)).scalar_one())


def stored_lease(engine: Engine, job_id: int) -> tuple[str | None, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(AIlog.lease_owner, AIlog.lease_until).where(AIlog.id == job_id)).one()
        return row.lease_owner, row.lease_until


@in_the_mariadb_pass
def test_a_process_starting_leaves_the_job_another_one_runs(
    database: Engine, serve: Callable[[str], ApiProcess], tmp_path: Path
) -> None:
    headers = account(database)
    runs = tmp_path / "runs"
    process_a = serve("a")
    job_id = submit_counted(process_a, headers, runs, seconds=LEASE_SECONDS * 4)
    wait_for_runs(runs, 1)

    process_b = serve("b")  # its start-up recovery runs while the job runs in process a
    assert stored_status(database, job_id) == "running", "process b took longer to start than the job ran"

    job = ended_on(process_a, headers, job_id)
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 1, {"run": 1})
    assert runs_of(runs) == [str(process_a.process.pid)]
    assert ended_on(process_b, headers, job_id)["status"] == "succeeded"
    assert stored_lease(database, job_id) == (None, None)


@in_the_mariadb_pass
def test_the_job_of_a_killed_process_is_run_again_by_a_live_one_once_its_lease_expires(
    database: Engine, serve: Callable[[str], ApiProcess], tmp_path: Path
) -> None:
    headers = account(database)
    runs = tmp_path / "runs"
    process_a, process_b = serve("a"), serve("b")
    job_id = submit_counted(process_a, headers, runs, seconds=60)
    wait_for_runs(runs, 1)

    process_a.process.send_signal(signal.SIGKILL)  # a crash: no shutdown, its lease stays
    process_a.process.wait(10)
    killed_at = time.monotonic()

    job = ended_on(process_b, headers, job_id)
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"run": 2})
    assert runs_of(runs) == [str(process_a.process.pid), str(process_b.process.pid)]
    # Not before the lease ran out, and soon after (the sweep comes once per lease period).
    assert LEASE_SECONDS * 0.5 < time.monotonic() - killed_at < LEASE_SECONDS * 6


def test_a_training_job_runs_only_where_its_lease_is_held(
    user: Person, model_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    monkeypatch.setattr(backends, "run_training", lambda job_id, processes, *, events: ran.append(job_id))
    leases = Leases(30)
    alive = utcnow() + timedelta(seconds=20)
    theirs = stored_job(user, model_id, status="queued", lease_owner="other", lease_until=alive)
    free = stored_job(user, model_id, status="queued")

    for job_id in (theirs, free):
        backends._run_leased_training(leases, job_id, processes=None, events=NOBODY)

    assert ran == [free]
    assert lease_of(theirs)[2] == "other"
    assert lease_of(free)[2] == leases.owner
