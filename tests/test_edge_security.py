"""The HTTP edge, against a real server process started the way `make run` starts it: the client's
address is the socket's peer unless that peer is a trusted proxy (a forged X-Forwarded-For gets
around no limit), and a WebSocket frame larger than the protocol needs is refused before it is
buffered. Then the address resolution itself (edge.client_ip) case by case."""

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import ClientConnection

from config import IPNetwork, Settings
from edge import client_ip
from tests.chat_support import API, ApiProcess, next_event, running_api, token_of
from tests.conftest import Person

LOGIN_LIMIT_PER_IP = 30  # the default


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """A process on the suite's database, logging JSON, started once for the module (2 s). Only
    the forged-header test signs in: the in-memory login limits it counts on are empty (the
    socket tests come with a token)."""
    environment = {**os.environ, "REDIS_URL": "", "LOG_FORMAT": "json", "RATE_LIMIT_ENABLED": "true"}
    with running_api(environment, tmp_path_factory.mktemp("server") / "api.log") as api:
        yield api


def access_lines(api: ApiProcess) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry["logger"] == "madang.access"]


def get_health(connection: socket.socket) -> bytes:
    """One GET /health on this kept-alive connection; its answer, or b"" if the server closed it."""
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b'{"status":"ok"}' not in answer:
        chunk = connection.recv(4096)
        if not chunk:
            return answer
        answer += chunk
    return answer


def test_a_kept_alive_connection_outlives_a_clients_idle_timeout(server: ApiProcess) -> None:
    """A client (httpx's pool, a proxy's upstream connections) keeps an idle connection ~5 s and
    then reuses it: a server closing it at the same moment answered a soak's request with nothing
    (RemoteProtocolError). The server keeps idle connections longer than such clients."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        assert get_health(connection).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # past httpx's 5 s keep-alive expiry (and uvicorn's default of 5 s)
        assert get_health(connection).startswith(b"HTTP/1.1 200")


def test_a_forged_x_forwarded_for_gets_around_no_login_limit(server: ApiProcess) -> None:
    # Each attempt names another account and claims another address: only the per-IP limit
    # can stop them, and the address is the socket's peer, 127.0.0.1, whatever the header says.
    statuses = []
    with httpx2.Client(base_url=server.http) as http:
        for attempt in range(LOGIN_LIMIT_PER_IP + 10):
            response = http.post(
                f"{API}/auth/login",
                data={"username": f"nobody-{attempt}", "password": "a wrong password"},
                headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
            )
            statuses.append(response.status_code)
    assert statuses[:LOGIN_LIMIT_PER_IP] == [401] * LOGIN_LIMIT_PER_IP
    assert statuses[LOGIN_LIMIT_PER_IP:] == [429] * 10
    clients = {entry["client"] for entry in access_lines(server) if entry["path"] == f"{API}/auth/login"}
    assert clients == {"127.0.0.1"}


# The largest frame the chat protocol accepts is MAX_FRAME_CHARS (4096) characters, 16 KiB at
# most in UTF-8; the server refuses a frame past 64 KiB before buffering it.
WS_MAX_BYTES = 64 * 1024


def test_a_websocket_frame_past_the_cap_closes_the_socket_with_1009(server: ApiProcess, user: Person) -> None:
    with server.socket(token_of(user)) as connection:
        connection.send(json.dumps({"type": "ping", "padding": "x" * WS_MAX_BYTES}))
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                next_event(connection, timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big


@pytest.mark.db
def test_the_largest_legal_chat_frame_still_works(server: ApiProcess, user: Person) -> None:
    conversation = httpx2.post(
        f"{server.http}{API}/chat/sessions", json={"name": "크기 확인"}, headers=user.headers
    ).json()
    content = "한" * 256  # the longest message, in 3-byte characters
    with server.socket(token_of(user)) as connection:
        send = {"type": "chat.send", "session_id": conversation["id"], "content": content, "client_id": "c1"}
        connection.send(json.dumps(send))  # \\uXXXX escapes: 6 bytes a character
        ack = next_of_type(connection, "chat.ack")
        assert ack["message"]["content"] == content
        # A frame of the app's own largest size, 4096 characters of 4-byte UTF-8, is read by the
        # app (and refused by it as an event), not cut off by the server.
        connection.send("😀" * 4096)
        assert next_of_type(connection, "error")["code"] == "invalid_json"
        connection.send(json.dumps({"type": "ping"}))
        assert next_of_type(connection, "pong") == {"type": "pong"}


def next_of_type(connection: ClientConnection, kind: str) -> dict[str, Any]:
    """The next event of this type, skipping others (the sender's own chat.message...)."""
    while (event := next_event(connection, timeout=5))["type"] != kind:
        pass
    return event


@pytest.fixture
def server_behind_a_proxy(tmp_path: Path) -> Iterator[ApiProcess]:
    """As `server`, believing X-Forwarded-For from a proxy on the loopback."""
    environment = {
        **os.environ,
        "REDIS_URL": "",
        "LOG_FORMAT": "json",
        "RATE_LIMIT_ENABLED": "true",
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    with running_api(environment, tmp_path / "api.log") as api:
        yield api


def test_behind_a_trusted_proxy_each_forwarded_client_has_a_limit_of_its_own(
    server_behind_a_proxy: ApiProcess,
) -> None:
    def login(http: httpx2.Client, attempt: int, forwarded_for: str) -> int:
        response = http.post(
            f"{API}/auth/login",
            data={"username": f"nobody-{attempt}", "password": "a wrong password"},
            headers={"X-Forwarded-For": forwarded_for},
        )
        return response.status_code

    with httpx2.Client(base_url=server_behind_a_proxy.http) as http:
        # The proxy appends the address it saw; what the client wrote to the left is not believed.
        spread = [
            login(http, n, f"198.51.100.{n}, 203.0.113.{n + 1}") for n in range(LOGIN_LIMIT_PER_IP + 10)
        ]
        one_client = [login(http, n, "203.0.113.200") for n in range(LOGIN_LIMIT_PER_IP + 1)]
    assert spread == [401] * (LOGIN_LIMIT_PER_IP + 10)
    assert one_client == [401] * LOGIN_LIMIT_PER_IP + [429]
    clients = [
        entry["client"] for entry in access_lines(server_behind_a_proxy) if entry["path"].endswith("/login")
    ]
    assert clients[0] == "203.0.113.1"
    assert clients[-1] == "203.0.113.200"


# --- whom the client address names (edge.client_ip) ---------------------------------------------

LOOPBACK = (ip_network("127.0.0.1/32"),)
PRIVATE = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def resolved(peer: str | None, *forwarded_for: str, trusted: tuple[IPNetwork, ...] = LOOPBACK) -> str | None:
    scope = {
        "type": "http",
        "client": (peer, 5000) if peer is not None else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded_for],
    }
    return client_ip(scope, trusted)


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert resolved("127.0.0.1", "203.0.113.9", trusted=()) == "127.0.0.1"


def test_a_peer_that_is_not_a_trusted_proxy_is_the_client() -> None:
    assert resolved("198.51.100.4", "203.0.113.9") == "198.51.100.4"


def test_a_trusted_proxy_forwards_the_address_it_saw() -> None:
    assert resolved("127.0.0.1", "203.0.113.9") == "203.0.113.9"


def test_what_the_client_wrote_left_of_the_proxys_entry_is_not_believed() -> None:
    assert resolved("127.0.0.1", "1.1.1.1, 203.0.113.9") == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    # client -> 10.0.0.5 -> 10.0.0.7 -> the app
    assert resolved("10.0.0.7", "8.8.8.8, 203.0.113.9, 10.0.0.5", trusted=PRIVATE) == "203.0.113.9"


def test_headers_on_several_lines_read_as_one_list() -> None:
    assert resolved("10.0.0.7", "203.0.113.9", "10.0.0.5", trusted=PRIVATE) == "203.0.113.9"


def test_a_peer_inside_a_trusted_network_is_trusted() -> None:
    assert resolved("10.200.3.4", "203.0.113.9", trusted=PRIVATE) == "203.0.113.9"
    assert resolved("11.0.0.1", "203.0.113.9", trusted=PRIVATE) == "11.0.0.1"


def test_ipv6_proxies_and_clients_in_one_spelling() -> None:
    assert resolved("fd00::1", "2001:DB8:0:0::7", trusted=PRIVATE) == "2001:db8::7"
    assert resolved("fd00::1", "::ffff:203.0.113.9", trusted=PRIVATE) == "203.0.113.9"
    assert resolved("::ffff:10.0.0.1", "203.0.113.9", trusted=PRIVATE) == "203.0.113.9"


def test_garbage_stops_the_walk_at_the_last_trusted_hop() -> None:
    # Whatever the sender garbles, it is counted as an address no one but the proxy chose.
    assert resolved("127.0.0.1", "203.0.113.9, not-an-address") == "127.0.0.1"
    assert resolved("10.0.0.7", "203.0.113.9, unknown, 10.0.0.5", trusted=PRIVATE) == "10.0.0.5"
    assert resolved("127.0.0.1", "203.0.113.9,") == "127.0.0.1"
    assert resolved("127.0.0.1", "203.0.113.9:4711") == "127.0.0.1"
    assert resolved("127.0.0.1", "") == "127.0.0.1"


def test_a_client_that_is_itself_a_trusted_proxy_is_the_left_most_address() -> None:
    assert resolved("10.0.0.7", "10.0.0.5, 10.0.0.6", trusted=PRIVATE) == "10.0.0.5"


def test_a_trusted_proxy_without_the_header_is_the_client() -> None:
    assert resolved("127.0.0.1") == "127.0.0.1"


def test_an_unknown_peer_stays_unknown() -> None:
    assert resolved(None, "203.0.113.9") is None


def test_trusted_proxies_are_read_as_addresses_and_networks() -> None:
    settings = Settings(_env_file=None, TRUSTED_PROXIES=" 10.0.0.0/8, 127.0.0.1 ,fd00::/8,")  # type: ignore[call-arg]
    assert settings.trusted_proxy_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("127.0.0.1/32"),
        ip_network("fd00::/8"),
    )


@pytest.mark.parametrize("entry", ["nginx", "10.0.0.1/8", "*", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_refuses_to_start(entry: str) -> None:
    with pytest.raises(ValidationError, match=f"TRUSTED_PROXIES: '{re.escape(entry)}' is not an IP address"):
        Settings(_env_file=None, TRUSTED_PROXIES=f"127.0.0.1, {entry}")  # type: ignore[call-arg]
