"""GET /metrics: Prometheus's text format (METRICS_ENABLED, off by default), served only to the
clients METRICS_ALLOW names (loopback by default), counted right across several server processes.

The apps here are started with a client address of 127.0.0.1, as a Prometheus on the same
machine scrapes them; an outside client is another TestClient on the same running app."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from config import Settings, settings
from ml.base import AIModel
from ml.encoder import get_encoder
from tests.ai_models import EchoModel, FailingModel, GateModel
from tests.chat_support import live_socket, running_api
from tests.conftest import Person, app_with, ended

API = settings.API_PREFIX
LOOPBACK = ("127.0.0.1", 50000)
OUTSIDE = ("203.0.113.7", 50000)  # TEST-NET-3: an address on no machine of ours

T = TypeVar("T")
Serve = Callable[..., TestClient]


@pytest.fixture
def serve(extra_models: list[AIModel]) -> Iterator[Serve]:
    """Starts an app with metrics on (and these settings); its client is on loopback."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> TestClient:
            app = app_with(extra_models, {"METRICS_ENABLED": True, **overrides})
            return stack.enter_context(TestClient(app, client=LOOPBACK))

        yield start


def client_at(local: TestClient, address: tuple[str, int]) -> TestClient:
    """Another client of the same running app, from this address (its lifespan is local's)."""
    return TestClient(local.app, client=address)


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample of this name whose labels include these, if any."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def eventually(read: Callable[[], T], until: Callable[[T], bool], timeout: float = 10.0) -> T:
    """read() once until(it) holds (what a job's end or a socket's close does after the test's
    own call returned), or the last reading when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        reading = read()
        if until(reading) or time.monotonic() > deadline:
            return reading
        time.sleep(0.02)


# --- on and off -----------------------------------------------------------------------------


def test_metrics_are_off_by_default(client: TestClient) -> None:
    assert settings.METRICS_ENABLED is False
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_scrape_is_prometheus_text_naming_every_metric(serve: Serve) -> None:
    client = serve()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "madang_http_requests",
        "madang_http_request_duration_seconds",
        "madang_ai_jobs_ended",
        "madang_ai_jobs",
        "madang_ai_queue_depth",
        "madang_ai_model_processes",
        "madang_chat_sockets_open",
        "madang_db_connections_in_use",
    } <= names


def test_the_scrape_is_not_in_the_api_document(serve: Serve) -> None:
    assert "/metrics" not in serve().get("/openapi.json").json()["paths"]


# --- requests -------------------------------------------------------------------------------


def test_a_request_is_counted_under_its_route_template_and_status(serve: Serve, user: Person) -> None:
    client = serve()
    assert client.get(f"{API}/posts/987654", headers=user.headers).status_code == 404
    assert client.get(f"{API}/posts/987655", headers=user.headers).status_code == 404
    text = scrape(client)
    route = f"{API}/posts/{{post_id}}"
    assert value(text, "madang_http_requests_total", method="GET", route=route, status="404") == 2
    assert value(text, "madang_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert "987654" not in text  # the raw path is never a label


def test_paths_no_route_matches_share_one_label(serve: Serve) -> None:
    client = serve()
    for path in ("/no/such/page", "/wp-login.php", f"{API}/nothing/{time.time()}"):
        assert client.get(path).status_code == 404
    text = scrape(client)
    assert value(text, "madang_http_requests_total", method="GET", route="unmatched", status="404") == 3
    assert "wp-login" not in text


def test_the_docs_page_and_its_files_are_counted_under_their_routes(serve: Serve) -> None:
    client = serve()
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    text = scrape(client)
    assert value(text, "madang_http_requests_total", route="/docs", status="200") == 1
    assert value(text, "madang_http_requests_total", route="/docs/assets/{path}", status="200") == 1


def test_an_unknown_method_is_counted_as_other(serve: Serve) -> None:
    client = serve()
    client.request("BREW", "/health")
    text = scrape(client)
    assert value(text, "madang_http_requests_total", method="other", route="/health") == 1
    assert "BREW" not in text


# --- AI jobs --------------------------------------------------------------------------------


def registered(model: T, extra_models: list[AIModel]) -> T:
    assert isinstance(model, AIModel)
    extra_models.append(model)
    return model


@pytest.mark.db  # jobs stored and ended in the database
def test_an_ai_jobs_ending_is_counted_by_model_and_status(
    serve: Serve, extra_models: list[AIModel], user: Person
) -> None:
    registered(EchoModel(), extra_models)
    registered(FailingModel(), extra_models)
    client = serve()
    for model in ("test-echo", "test-failing"):
        job = client.post(f"{API}/ai/models/{model}/jobs", json={"input": "hello"}, headers=user.headers)
        assert job.status_code == 202, job.text
        ended(client, user, job.json()["id"])

    def endings() -> tuple[float | None, float | None]:
        text = scrape(client)
        return (
            value(text, "madang_ai_jobs_ended_total", model="test-echo", status="succeeded"),
            value(text, "madang_ai_jobs_ended_total", model="test-failing", status="failed"),
        )

    assert eventually(endings, lambda counts: counts == (1, 1)) == (1, 1)


@pytest.mark.db  # jobs counted in the database
def test_jobs_queued_and_running_are_read_from_the_database_and_the_queue(
    serve: Serve, extra_models: list[AIModel], user: Person
) -> None:
    gate = registered(GateModel(), extra_models)
    client = serve(AI_WORKERS=1)
    try:
        for text in ("first", "second"):
            job = client.post(f"{API}/ai/models/test-gate/jobs", json={"input": text}, headers=user.headers)
            assert job.status_code == 202, job.text
            assert gate.started.wait(10)
        text = scrape(client)
        assert value(text, "madang_ai_jobs", model="test-gate", status="running") == 1
        assert value(text, "madang_ai_jobs", model="test-gate", status="queued") == 1
        assert value(text, "madang_ai_queue_depth") == 1
    finally:
        gate.gate.set()


def test_the_encoders_model_processes_alive_are_counted(sentence_encoder: object, serve: Serve) -> None:
    client = serve()
    get_encoder().load()  # started again if a test before set the encoder up otherwise
    alive = get_encoder().child_pids
    assert alive  # the session's encoder runs in model processes (AI_MODEL_PROCESS)
    assert value(scrape(client), "madang_ai_model_processes") == len(alive)
    os.kill(alive[0], signal.SIGKILL)  # the next batch starts it again
    left = eventually(
        lambda: value(scrape(client), "madang_ai_model_processes"), lambda n: n == len(alive) - 1
    )
    assert left == len(alive) - 1


# --- sockets and the database pool ----------------------------------------------------------


def test_an_open_chat_socket_is_counted_until_it_closes(serve: Serve, user: Person) -> None:
    client = serve()
    assert value(scrape(client), "madang_chat_sockets_open") == 0
    with live_socket(client, user):
        assert value(scrape(client), "madang_chat_sockets_open") == 1
    closed = eventually(lambda: value(scrape(client), "madang_chat_sockets_open"), lambda n: n == 0)
    assert closed == 0


def test_the_scrapes_own_database_connection_is_counted_in_use(serve: Serve) -> None:
    # The scrape reads the jobs in flight through its request's session, which holds a connection.
    assert value(scrape(serve()), "madang_db_connections_in_use") == 1


# --- who may scrape -------------------------------------------------------------------------


def test_an_outside_client_is_refused(serve: Serve) -> None:
    response = client_at(serve(), OUTSIDE).get("/metrics")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "metrics are served only to the networks in METRICS_ALLOW",
        "code": "metrics_not_allowed",
    }


def test_a_client_forwarded_by_a_proxy_the_app_does_not_trust_is_refused(serve: Serve) -> None:
    # nginx on the same machine, TRUSTED_PROXIES unset: the peer is loopback, the client is not.
    response = serve().get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 403
    assert response.json()["code"] == "metrics_not_allowed"


def test_behind_a_trusted_proxy_the_forwarded_client_is_judged(serve: Serve) -> None:
    client = serve(TRUSTED_PROXIES="127.0.0.1")
    outside = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.7"})
    assert outside.status_code == 403
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_metrics_allow_names_the_networks_that_may_scrape(serve: Serve) -> None:
    client = serve(METRICS_ALLOW="10.0.0.0/8, 192.0.2.1")
    assert client.get("/metrics").status_code == 403  # loopback is no longer in the list
    assert client_at(client, ("10.1.2.3", 40000)).get("/metrics").status_code == 200
    assert client_at(client, ("192.0.2.1", 40000)).get("/metrics").status_code == 200
    assert client_at(client, ("192.0.2.2", 40000)).get("/metrics").status_code == 403


def test_a_metrics_allow_entry_that_is_no_network_refuses_the_start() -> None:
    with pytest.raises(ValidationError, match="METRICS_ALLOW: 'localhost' is not an IP address"):
        Settings(METRICS_ALLOW="127.0.0.1, localhost")


def test_the_api_itself_is_not_refused_to_outside_clients(serve: Serve) -> None:
    assert client_at(serve(), OUTSIDE).get("/health").status_code == 200


# --- several server processes ---------------------------------------------------------------


def test_two_server_processes_sharing_a_directory_answer_one_sum(tmp_path: Path, user: Person) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    environment = {
        **os.environ,
        "REDIS_URL": "",
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    with (
        running_api(environment, tmp_path / "api-a.log") as api_a,
        running_api(environment, tmp_path / "api-b.log") as api_b,
    ):

        def health_count(api: Any) -> float:
            text = httpx2.get(f"{api.http}/metrics").text
            return value(text, "madang_http_requests_total", route="/health", status="200") or 0

        before = health_count(api_a)
        for api, times in ((api_a, 3), (api_b, 2)):
            for _ in range(times):
                assert httpx2.get(f"{api.http}/health").status_code == 200
        assert health_count(api_a) == health_count(api_b) == before + 5

        with api_b.socket(user.headers["Authorization"].removeprefix("Bearer ")):
            assert value(httpx2.get(f"{api_a.http}/metrics").text, "madang_chat_sockets_open") == 1
            api_b.process.send_signal(signal.SIGKILL)  # a crash: no shutdown of its own
            api_b.process.wait(10)
            # The dead process's socket is no longer open; its requests stay counted.
            text = httpx2.get(f"{api_a.http}/metrics").text
            assert value(text, "madang_chat_sockets_open") == 0
            assert value(text, "madang_http_requests_total", route="/health", status="200") == before + 5
