"""Helpers the chat tests share: a socket that waits with a deadline, and small shortcuts."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from websockets.sync.client import ClientConnection, connect

from config import BASE_DIR, settings
from services.security import ACCESS_TOKEN_TYPE, JWT_ALGORITHM
from tests.conftest import free_port

API = "/api/v1"


class SocketClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"socket closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


def token_of(person: Any) -> str:
    return str(person.headers["Authorization"]).removeprefix("Bearer ")


def token_expiring_in(person: Any, seconds: int, *, token_version: int = 0) -> tuple[str, int]:
    """An access token of this person's, built as the app builds them, whose `exp` is `seconds`
    whole seconds from now (a JWT's exp has 1 s resolution, so it runs out within (seconds - 1,
    seconds]), and that exp as a Unix time. A new account has token version 0."""
    now = int(time.time())
    claims = {
        "sub": str(person.id),
        "ver": token_version,
        "type": ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + seconds,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM), now + seconds


def sleep_until(unix_time: float) -> None:
    """Waits for a wall-clock moment (a token's expiry): no event says it has come."""
    time.sleep(max(unix_time - time.time(), 0) + 0.05)


class LiveSocket:
    """A TestClient WebSocket whose reads give up after a timeout instead of hanging."""

    def __init__(self, session: WebSocketTestSession) -> None:
        self.session = session
        self.closed_early: SocketClosed | None = None

    def send(self, event: dict[str, Any]) -> None:
        self.session.send_text(json.dumps(event))

    def send_text(self, text: str) -> None:
        self.session.send_text(text)

    def _receive(self, timeout: float) -> dict[str, Any]:
        async def receive() -> Any:
            with anyio.fail_after(timeout):
                return await self.session._send_rx.receive()

        message = self.session.portal.call(receive)
        if message["type"] == "websocket.close":
            raise SocketClosed(message.get("code", 1000), message.get("reason") or "")
        return dict(json.loads(message["text"]))

    def next_event(self, timeout: float = 3.0, *, skip: tuple[str, ...] = ("ping",)) -> dict[str, Any]:
        """The next event that is not a server ping."""
        while True:
            event = self._receive(timeout)
            if event["type"] not in skip:
                return event

    def wait_for(self, kind: str, timeout: float = 3.0) -> dict[str, Any]:
        """The next event of this type, skipping others (pings, typing, reads...)."""
        while True:
            event = self._receive(timeout)
            if event["type"] == kind:
                return event

    def wait_for_ready(self) -> None:
        """Waits until the server has signed the socket in (or closed it: that is for the
        test to see). Events sent before `ready` may miss the socket."""
        try:
            self.wait_for("ready")
        except SocketClosed as closed:
            self.closed_early = closed

    def expect_close(self, timeout: float = 3.0) -> SocketClosed:
        if self.closed_early is not None:
            return self.closed_early
        try:
            while True:
                self._receive(timeout)
        except SocketClosed as closed:
            return closed

    def assert_quiet(self) -> None:
        """Nothing but pings is waiting for this socket. A ping/pong round trip runs through
        the same queue, so anything sent before it has arrived by the time the pong does."""
        self.send({"type": "ping"})
        event = self.next_event()
        assert event == {"type": "pong"}, f"unexpected event {event}"


@contextmanager
def live_socket(client: TestClient, person: Any = None, *, token: str | None = None) -> Iterator[LiveSocket]:
    token = token if token is not None else token_of(person)
    url = f"{API}/ws?token={token}" if token else f"{API}/ws"
    with client.websocket_connect(url) as session:
        socket = LiveSocket(session)
        if token:
            socket.wait_for_ready()
        yield socket


def open_conversation(client: TestClient, person: Any, name: str = "로그인이 안 돼요") -> dict[str, Any]:
    response = client.post(f"{API}/chat/sessions", json={"name": name}, headers=person.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def post_message(
    client: TestClient, person: Any, session_id: int, content: str = "hello", **extra: Any
) -> dict[str, Any]:
    response = client.post(
        f"{API}/chat/sessions/{session_id}/messages",
        json={"content": content, **extra},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


# --- API processes (uvicorn) for the multi-process and browser tests -------------------------


@dataclass
class ApiProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def socket(self, token: str) -> Iterator[ClientConnection]:
        """A real WebSocket client (the `websockets` library), signed in and ready."""
        with connect(f"ws://127.0.0.1:{self.port}{API}/ws?token={token}", open_timeout=5) as connection:
            assert next_event(connection)["type"] == "ready"
            yield connection


@contextmanager
def running_api(environment: dict[str, str], log: Path) -> Iterator[ApiProcess]:
    """The API on a free port with these settings, started as `make run` starts it (cli.py serve:
    uvicorn without proxy headers, WebSocket messages capped), until the block ends."""
    port = free_port()
    command = [sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=environment, stdout=output, stderr=output)
    api = ApiProcess(port, process, log)
    try:
        wait_until_up(api)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_up(api: ApiProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise RuntimeError(f"API process exited:\n{api.log.read_text()}")
        try:
            if httpx2.get(f"{api.http}/health", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"API process did not come up:\n{api.log.read_text()}")


def next_event(connection: ClientConnection, timeout: float = 1.0) -> dict[str, Any]:
    """The next event on a `websockets` client that is not a server ping, within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(connection.recv(timeout=max(deadline - time.monotonic(), 0.001)))
        if event["type"] != "ping":
            return dict(event)
