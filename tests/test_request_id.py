"""Every request gets an id (the client's X-Request-ID when it is plain and short, else a new
one), answers with it in X-Request-ID, errors included, and every log record made while
handling it carries it; one access line per request, JSON lines with LOG_FORMAT=json, and
neither the /ws token nor a password ever reaches the log."""

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient

from config import Settings, settings
from logs import configure_logging
from main import app
from services import health as health_service
from tests.chat_support import live_socket, running_api, token_of
from tests.conftest import PASSWORD, Person, free_port

API = "/api/v1"
NEW_ID = re.compile(r"[0-9a-f]{32}")


def records_of(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "request_id", None) == request_id]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "madang.access"]


def wait_for_record(
    caplog: pytest.LogCaptureFixture, matches: Callable[[logging.LogRecord], bool], timeout: float = 5.0
) -> logging.LogRecord:
    """A record made on another thread (mail) or after a socket's end arrives a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [record for record in caplog.records if matches(record)]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no such log record")


# --- the header -------------------------------------------------------------------------------


def test_an_answer_carries_a_new_request_id(client: TestClient) -> None:
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]
    assert NEW_ID.fullmatch(first)
    assert NEW_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("request_id", ["req-42", "A.b_c-9", "x" * 64])
def test_a_plain_incoming_request_id_is_kept(client: TestClient, request_id: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize("request_id", ["x" * 65, "has space", "a/b", "<script>", "id;drop", ""], ids=repr)
def test_an_odd_incoming_request_id_is_replaced(client: TestClient, request_id: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": request_id})
    assert NEW_ID.fullmatch(response.headers["X-Request-ID"])


def test_a_404_carries_the_request_id(client: TestClient) -> None:
    response = client.get(f"{API}/no-such-thing", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "lost-1"


def test_a_422_carries_the_request_id(client: TestClient) -> None:
    response = client.post(f"{API}/auth/signup", json={}, headers={"X-Request-ID": "bad-input-1"})
    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == "bad-input-1"


def test_a_413_carries_the_request_id(client: TestClient) -> None:
    oversized = b'{"name": "' + b"x" * (settings.MAX_JSON_BODY_KB * 1024) + b'"}'
    response = client.post(
        f"{API}/auth/signup",
        content=oversized,
        headers={"content-type": "application/json", "X-Request-ID": "too-big-1"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert response.headers["X-Request-ID"] == "too-big-1"


def test_a_500_carries_the_request_id_and_is_logged_with_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> list[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(health_service, "readiness_problems", broken)
    caplog.set_level(logging.INFO)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/ready", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "code": "internal_error"}
    assert response.headers["X-Request-ID"] == "bug-1"
    [line] = [record for record in records_of(caplog, "bug-1") if record.name == "madang.access"]
    assert line.status == 500  # type: ignore[attr-defined]


# --- the records ------------------------------------------------------------------------------


def test_every_record_of_a_request_carries_its_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A Redis at a closed port makes /ready log a warning from the thread that runs the endpoint.
    monkeypatch.setattr(settings, "REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    caplog.set_level(logging.INFO)
    caplog.clear()
    client.get("/ready", headers={"X-Request-ID": "probe-7"})
    # The test client's own line ("HTTP Request: ...") is the caller's, not the request's.
    made_by_the_app = [record for record in caplog.records if not record.name.startswith("httpx")]
    assert any(record.getMessage().startswith("redis not reachable") for record in made_by_the_app)
    assert [record.status for record in made_by_the_app if record.name == "madang.access"] == [503]  # type: ignore[attr-defined]
    assert all(getattr(record, "request_id", None) == "probe-7" for record in made_by_the_app)


def test_one_access_line_per_request_with_its_facts(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.get(f"{API}/boards?offset=0&limit=5", headers={"X-Request-ID": "list-1"})
    [line] = [record for record in access_lines(caplog) if record.request_id == "list-1"]  # type: ignore[attr-defined]
    assert (line.method, line.path, line.status) == ("GET", f"{API}/boards", 401)  # type: ignore[attr-defined]
    assert isinstance(line.duration_ms, float)  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]


def test_records_after_sign_in_name_the_user(
    client: TestClient, user: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.get(f"{API}/users/me", headers={**user.headers, "X-Request-ID": "me-1"})
    [line] = [record for record in records_of(caplog, "me-1") if record.name == "madang.access"]
    assert line.user_id == user.id  # type: ignore[attr-defined]


def test_a_mail_sent_for_a_request_is_logged_with_its_id(
    client: TestClient, user: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.post(f"{API}/auth/password-reset", json={"email": user.email}, headers={"X-Request-ID": "reset-1"})
    mail = wait_for_record(caplog, lambda record: record.name == "madang.mail")
    assert mail.request_id == "reset-1"  # type: ignore[attr-defined]


def test_a_password_never_reaches_the_log(
    client: TestClient, user: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.post(f"{API}/auth/login", data={"username": user.name, "password": PASSWORD})
    client.post(f"{API}/auth/login", data={"username": user.name, "password": PASSWORD + " wrong"})
    client.post(f"{API}/auth/signup", json={"name": "x", "email": "bad", "password": PASSWORD})
    assert len(access_lines(caplog)) == 3
    assert PASSWORD not in caplog.text


def test_a_socket_gets_an_id_and_its_token_never_reaches_the_log(
    client: TestClient, user: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with live_socket(client, user) as socket:
        accepted_with = dict(socket.session.extra_headers or [])
    request_id = accepted_with[b"x-request-id"].decode()
    assert NEW_ID.fullmatch(request_id)
    line = wait_for_record(caplog, lambda record: record.name == "madang.access")
    assert (line.method, line.path, line.status) == ("WEBSOCKET", f"{API}/ws", 101)  # type: ignore[attr-defined]
    assert line.request_id == request_id  # type: ignore[attr-defined]
    assert line.user_id == user.id  # type: ignore[attr-defined]
    assert token_of(user) not in caplog.text


# --- formats ----------------------------------------------------------------------------------


@pytest.fixture
def json_logs() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "LOG_FORMAT", "json")
        configure_logging()
        yield
    configure_logging()


def test_json_logs_are_one_object_a_line_with_the_fields(
    json_logs: None, client: TestClient, user: Person, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.get(f"{API}/users/me", headers={**user.headers, "X-Request-ID": "json-1"})
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    entries = [json.loads(line) for line in lines]
    [access] = [entry for entry in entries if entry["logger"] == "madang.access"]
    assert access["request_id"] == "json-1"
    assert access["level"] == "INFO"
    assert access["message"].startswith(f"GET {API}/users/me 200 ")
    assert (access["method"], access["path"], access["status"]) == ("GET", f"{API}/users/me", 200)
    assert access["user_id"] == user.id
    assert access["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", access["time"])


def test_production_logs_json_and_development_text() -> None:
    def log_format(**values: object) -> str:
        values.setdefault("LOG_FORMAT", "")  # unset, whatever the environment says
        return Settings(_env_file=None, **values).log_format  # type: ignore[call-arg]

    production = {"ENV": "production", "SECRET_KEY": "k" * 48, "SMTP_HOST": "mail.example.com"}
    assert log_format(**production) == "json"
    assert log_format(ENV="development") == "text"
    assert log_format(**production, LOG_FORMAT="text") == "text"


def test_uvicorn_main_app_logs_json_lines_once_per_request_without_the_token(
    user: Person, tmp_path: os.PathLike[str]
) -> None:
    """The command the README gives, as a process: its own lines are JSON too, its access log
    is ours alone, and the socket's token stays out of it."""
    log = tmp_path / "api.log"  # type: ignore[operator]
    with running_api({**os.environ, "LOG_FORMAT": "json"}, log) as api:
        response = httpx2.get(f"{api.http}{API}/users/me", headers={**user.headers, "X-Request-ID": "live-1"})
        assert response.headers["X-Request-ID"] == "live-1"
        with api.socket(token_of(user)):
            pass
    text = log.read_text()
    entries = [json.loads(line) for line in text.splitlines() if line]
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    [access] = [
        entry for entry in entries if entry["request_id"] == "live-1" and entry["logger"] == "madang.access"
    ]
    assert (access["status"], access["user_id"]) == (200, user.id)
    assert [entry["status"] for entry in entries if entry.get("method") == "WEBSOCKET"] == [101]
    assert token_of(user) not in text
