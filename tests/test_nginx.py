"""The production setup of docs/operations.md, run for real: Debian's nginx with
deploy/nginx/madang.conf in front of two API processes, started as deploy/systemd/madang-api@.service
starts them, and a Celery worker as madang-ai-worker.service starts it, all with the settings of
deploy/madang.env.example, on MariaDB and Redis; the administrator made with `cli.py
create-superuser`. Through nginx, over HTTPS with a self-signed certificate made here: sign-up and
sign-in, an upload and its download, uploads too large for the app and for nginx, a chat between a
user and the administrator over /api/v1/ws, an AI job, and the client's address as the app saw it.

The shipped files are read as they are; what the test changes is in plain sight below:
rendered_nginx_site (ports, certificate paths), unit_command (this venv, the instance) and
for_the_test (database, Redis, secret, directories, key prefixes). MariaDB pass only: the
processes share a database of their own, made here, whichever database the rest of the pass uses."""

import http.client
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx2
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from websockets.sync.client import ClientConnection, connect

from config import BASE_DIR
from tests.celery_support import forget_keys
from tests.chat_support import ApiProcess, wait_until_up
from tests.conftest import (
    IS_MARIADB,
    PASSWORD,
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    alembic_config,
    free_port,
    recreate_mariadb_database,
    redis_or_skip,
    skip_unless_ci,
)

pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.skipif(
        not IS_MARIADB, reason="API processes sharing a database server (set TEST_DATABASE_URL)"
    ),
]

DEPLOY = BASE_DIR / "deploy"
API = "/api/v1"
# The client's own address: nginx sees it; the app sees only nginx (127.0.0.1, its
# TRUSTED_PROXIES) and must find the client's in X-Forwarded-For.
CLIENT_ADDRESS = "127.0.0.2"
KEY_PREFIX = f"madang-test-nginx-{uuid.uuid4().hex[:8]}:"
ADMIN = "site_admin"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
MIB = 1024 * 1024
names = (f"nginx_user{n}" for n in count(1))


# --- the shipped files, made to run here ------------------------------------------------------


def rendered_nginx_site(https_port: int, http_port: int, api_ports: list[int], certificate: Path) -> str:
    """deploy/nginx/madang.conf with the test's ports and certificate, and no IPv6 listeners (the
    test listens on the IPv4 loopback). Each replaced text must be in the file exactly once."""
    rendered = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "server 127.0.0.1:8001;": f"server 127.0.0.1:{api_ports[0]};",
        "server 127.0.0.1:8002;": f"server 127.0.0.1:{api_ports[1]};",
        "/etc/letsencrypt/live/madang.example.com/fullchain.pem": str(certificate.with_suffix(".crt")),
        "/etc/letsencrypt/live/madang.example.com/privkey.pem": str(certificate.with_suffix(".key")),
    }
    site = (DEPLOY / "nginx" / "madang.conf").read_text()
    for shipped, here in rendered.items():
        assert site.count(shipped) == 1, f"deploy/nginx/madang.conf no longer has {shipped!r} once"
        site = site.replace(shipped, here)
    return site


def nginx_main_config(directory: Path, site: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf is to the site, with nginx's own files in the test's
    directory, in the foreground, with one worker (which hands requests to the upstreams in turn)."""
    return f"""
daemon off;
worker_processes 1;
{"user root;" if os.geteuid() == 0 else ""}
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""


def unit_command(unit: str, **specifiers: str) -> list[str]:
    """The unit's ExecStart, run from this checkout: this venv for /srv/madang/.venv, and the
    systemd specifiers given (i="8001" for %i)."""
    exec_start = next(
        line.removeprefix("ExecStart=")
        for line in (DEPLOY / "systemd" / unit).read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    command_line = exec_start.replace("/srv/madang/.venv/bin/", f"{Path(sys.executable).parent}/")
    for specifier, value in specifiers.items():
        command_line = command_line.replace(f"%{specifier}", value)
    return shlex.split(command_line)


def environment_file() -> dict[str, str]:
    """deploy/madang.env.example as systemd's EnvironmentFile= reads it: KEY=VALUE lines."""
    lines = (DEPLOY / "madang.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def for_the_test(database_url: str, directory: Path) -> dict[str, str]:
    """What a real deployment fills in (database, Redis, secret, directories, mail), and key
    prefixes that keep this run's Redis keys and channels apart from any other's."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL,
        "CELERY_BROKER_URL": TEST_REDIS_URL,
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "UPLOAD_DIR": str(directory / "uploads"),
        "MODEL_DIR": str(directory / "models"),
        "SMTP_HOST": "127.0.0.1",  # no mail is sent here
        "RATE_LIMIT_KEY_PREFIX": f"{KEY_PREFIX}rl:",
        "BROKER_CHANNEL": f"{KEY_PREFIX}live",
        "AI_EVENTS_CHANNEL": f"{KEY_PREFIX}ai-jobs",
        "CELERY_KEY_PREFIX": KEY_PREFIX,
    }


def self_signed_certificate(path: Path) -> Path:
    """A certificate for 127.0.0.1 and its key (path.crt, path.key), made with openssl."""
    if shutil.which("openssl") is None:
        skip_unless_ci("openssl is not installed (apt-get install openssl)")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(path.with_suffix(".key")), "-out", str(path.with_suffix(".crt"))),
        ],
        check=True,
        capture_output=True,
    )
    return path


# --- processes ----------------------------------------------------------------------------------


@contextmanager
def running(argv: list[str], log: Path, environment: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own (a Celery worker's pool goes with it), stopped with
    SIGTERM as systemd stops a unit, killed if it lingers."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=BASE_DIR, env=environment, stdout=output, stderr=output, start_new_session=True
        )
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition: Callable[[], bool], what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def create_administrator(environment: dict[str, str]) -> None:
    """ADMIN, made as the docs make the administrator: `cli.py create-superuser`."""
    argv = [sys.executable, "cli.py", "create-superuser", "--name", ADMIN, "--password-stdin"]
    argv += ["--email", "admin@example.com"]
    made = subprocess.run(
        argv, input=PASSWORD.encode(), cwd=BASE_DIR, env=environment, capture_output=True, check=False
    )
    assert made.returncode == 0, made.stderr.decode()


@dataclass
class Site:
    """nginx's HTTPS and HTTP ports, the API processes behind it, the client's trust in the
    certificate."""

    https_port: int
    http_port: int
    apis: list[ApiProcess]
    tls: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def client(self) -> httpx2.Client:
        """An HTTPS client connecting from CLIENT_ADDRESS."""
        transport = httpx2.HTTPTransport(verify=self.tls, local_address=CLIENT_ADDRESS)
        return httpx2.Client(base_url=self.url, transport=transport, timeout=40)

    def access_line(self, request_id: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """The app's access line of this request, and which API process (0 or 1) wrote it. The
        line is written as the request ends, a moment after its answer left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, api in enumerate(self.apis):
                for line in api.log.read_text(errors="replace").splitlines():
                    if f'"request_id": "{request_id}"' in line and '"logger": "madang.access"' in line:
                        return index, dict(json.loads(line))
            time.sleep(0.05)
        raise AssertionError(f"no access line for {request_id}")


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of the site's own, migrated as the docs say (alembic upgrade head)."""
    url = make_url(TEST_DATABASE_URL).set(database=f"{make_url(TEST_DATABASE_URL).database}_nginx")
    url_text = url.render_as_string(hide_password=False)
    recreate_mariadb_database(url_text)
    command.upgrade(alembic_config(url_text), "head")
    yield url_text
    server = create_engine(url.set(database=""))
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
    server.dispose()


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    nginx = shutil.which("nginx") or shutil.which("/usr/sbin/nginx") or ""  # /usr/sbin: root's PATH
    if not nginx:
        skip_unless_ci("nginx is not installed (apt-get install nginx)")
    redis = redis_or_skip(TEST_REDIS_URL)
    directory = tmp_path_factory.mktemp("nginx")
    certificate = self_signed_certificate(directory / "site")
    # Beneath the file's settings, the suite's own (tests/conftest.py: cheap password hashes, posts
    # not embedded for similar-posts); over them, what a deployment fills in.
    environment = {**os.environ, **environment_file(), **for_the_test(database_url, directory)}
    api_ports = [free_port(), free_port()]
    https_port, http_port = free_port(), free_port()
    (directory / "madang.conf").write_text(rendered_nginx_site(https_port, http_port, api_ports, certificate))
    (directory / "nginx.conf").write_text(nginx_main_config(directory, directory / "madang.conf"))
    nginx_argv = [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")]
    nginx_argv += ["-e", str(directory / "error.log")]  # nginx's start-up errors too
    with ExitStack() as stack:
        apis = []
        for port in api_ports:
            log = directory / f"api-{port}.log"
            api_unit = unit_command("madang-api@.service", i=str(port))
            apis.append(ApiProcess(port, stack.enter_context(running(api_unit, log, environment)), log))
        worker_log = directory / "ai-worker.log"
        stack.enter_context(
            running(unit_command("madang-ai-worker.service", H="nginx-test"), worker_log, environment)
        )
        stack.enter_context(running(nginx_argv, directory / "nginx.log", environment))
        create_administrator(environment)  # while the processes start
        for api in apis:
            wait_until_up(api)
        wait_for(lambda: b" ready." in worker_log.read_bytes(), "the AI worker's start", worker_log)
        trust = ssl.create_default_context(cafile=certificate.with_suffix(".crt"))
        site = Site(https_port, http_port, apis, trust)
        with site.client() as https:
            wait_for(lambda: answers(https, "/health"), "nginx's start", directory / "error.log", timeout=10)
        yield site
    forget_keys(redis, KEY_PREFIX)


def answers(https: httpx2.Client, path: str) -> bool:
    try:
        return https.get(path).status_code == 200
    except httpx2.HTTPError:
        return False


# --- what a client does, through nginx --------------------------------------------------------


def sign_in(https: httpx2.Client, name: str, request_id: str = "", **headers: str) -> dict[str, str]:
    response = https.post(
        f"{API}/auth/login",
        data={"username": name, "password": PASSWORD},
        headers={"X-Request-ID": request_id or uuid.uuid4().hex, **headers},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_user(https: httpx2.Client) -> tuple[str, dict[str, str]]:
    """A user signed up and signed in: the name, and headers with the access token."""
    name = next(names)
    response = https.post(
        f"{API}/auth/signup", json={"name": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return name, sign_in(https, name)


def new_post(https: httpx2.Client, headers: dict[str, str]) -> int:
    """A post of this user's on a new board (the administrator makes boards)."""
    board = https.post(
        f"{API}/admin/boards", json={"name": f"board {uuid.uuid4().hex[:8]}"}, headers=sign_in(https, ADMIN)
    )
    assert board.status_code == 201, board.text
    post = https.post(
        f"{API}/boards/{board.json()['id']}/posts",
        json={"name": "hello", "content": "a file"},
        headers=headers,
    )
    assert post.status_code == 201, post.text
    return int(post.json()["id"])


def test_a_user_signs_in_uploads_and_downloads_over_https(site: Site) -> None:
    with site.client() as https:
        _, headers = new_user(https)
        post_id = new_post(https, headers)
        uploaded = https.post(
            f"{API}/posts/{post_id}/attachments",
            files=[("files", ("dot.png", PNG, "image/png"))],
            headers=headers,
        )
        assert uploaded.status_code == 201, uploaded.text
        downloaded = https.get(f"{API}/attachments/{uploaded.json()[0]['id']}", headers=headers)
    assert downloaded.status_code == 200
    assert (downloaded.content, downloaded.headers["content-type"]) == (PNG, "image/png")
    assert downloaded.headers["strict-transport-security"].startswith("max-age=31536000")  # HSTS_SECONDS


def test_the_app_sees_the_clients_address_not_nginxs_nor_a_forged_one(site: Site) -> None:
    with site.client() as https:
        sign_in(https, ADMIN, "nginx-forwarded-for", **{"X-Forwarded-For": "203.0.113.7"})
    _, line = site.access_line("nginx-forwarded-for")
    assert (line["path"], line["status"], line["client"]) == (f"{API}/auth/login", 200, CLIENT_ADDRESS)


def test_a_file_over_max_upload_mb_gets_the_apps_413(site: Site) -> None:
    with site.client() as https:
        _, headers = new_user(https)
        post_id = new_post(https, headers)
        too_big = PNG + bytes(10 * MIB)  # over MAX_UPLOAD_MB (10); nginx lets up to 101 MiB through
        response = https.post(
            f"{API}/posts/{post_id}/attachments",
            files=[("files", ("big.png", too_big, "image/png"))],
            headers=headers,
        )
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"


def test_a_body_over_nginxs_limit_gets_413_in_the_apis_shape(site: Site) -> None:
    """nginx refuses it from its Content-Length alone, before any of it is sent: over 101 MiB on
    the upload routes, over 1 MiB elsewhere."""
    for path, length in ((f"{API}/posts/1/attachments", 102 * MIB), (f"{API}/auth/signup", 2 * MIB)):
        connection = http.client.HTTPSConnection("127.0.0.1", site.https_port, context=site.tls, timeout=10)
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert (response.status, response.getheader("Content-Type")) == (413, "application/json"), path
        assert body == {"detail": "request body too large", "code": "payload_too_large"}


def next_chat_message(socket: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next chat.message event on the socket, past pings, acks and the like."""
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(socket.recv(timeout=max(deadline - time.monotonic(), 0.001)))
        if event["type"] == "chat.message":
            return dict(event["message"])


@contextmanager
def chat_socket(site: Site, headers: dict[str, str], request_id: str) -> Iterator[ClientConnection]:
    token = headers["Authorization"].removeprefix("Bearer ")
    url = f"wss://127.0.0.1:{site.https_port}{API}/ws?token={token}"
    with connect(
        url, ssl=site.tls, open_timeout=5, additional_headers={"X-Request-ID": request_id}
    ) as socket:
        while json.loads(socket.recv(timeout=5))["type"] != "ready":
            pass
        yield socket


def test_a_user_and_the_administrator_chat_over_the_socket_across_both_processes(site: Site) -> None:
    with site.client() as https:
        _, user_headers = new_user(https)
        admin_headers = sign_in(https, ADMIN)
        conversation = https.post(
            f"{API}/chat/sessions", json={"name": "through nginx"}, headers=user_headers
        )
    send = {"type": "chat.send", "session_id": conversation.json()["id"]}
    # nginx's one worker hands requests to the upstreams in turn: two sockets opened one after
    # the other are held by different API processes, so every message crosses Redis.
    with (
        chat_socket(site, user_headers, "nginx-ws-user") as user_socket,
        chat_socket(site, admin_headers, "nginx-ws-admin") as admin_socket,
    ):
        user_socket.send(json.dumps({**send, "content": "my login fails", "client_id": "u-1"}))
        assert next_chat_message(admin_socket)["content"] == "my login fails"
        admin_socket.send(json.dumps({**send, "content": "try again now", "client_id": "a-1"}))
        while (message := next_chat_message(user_socket))["content"] != "try again now":
            pass  # the user's own message comes back to its socket first
    assert message["user"]["name"] == ADMIN
    assert {site.access_line("nginx-ws-user")[0], site.access_line("nginx-ws-admin")[0]} == {0, 1}


def test_an_ai_job_submitted_through_nginx_runs_on_the_celery_worker(site: Site) -> None:
    with site.client() as https:
        _, headers = new_user(https)
        submitted = https.post(
            f"{API}/ai/models/similar-posts/jobs", json={"input": "where do I park?"}, headers=headers
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        for _ in range(6):  # long polls of up to 30 s: the worker may still be loading its models
            if job["is_finished"]:
                break
            polled = https.get(submitted.headers["Location"], params={"wait": 30}, headers=headers)
            assert polled.status_code == 200, polled.text
            job = polled.json()
    assert job["status"] == "succeeded", job


def test_plain_http_and_the_apps_own_redirects_lead_to_https(site: Site) -> None:
    plain = httpx2.get(f"http://127.0.0.1:{site.http_port}{API}/boards")
    assert (plain.status_code, plain.headers["location"]) == (301, f"https://127.0.0.1{API}/boards")
    with site.client() as https:
        slash = https.get(f"{API}/boards/")
    assert slash.headers["location"] == f"{site.url}{API}/boards"
