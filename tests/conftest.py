"""The world every test starts from: a migrated database emptied after each test, a client,
and users made to order.

The database is SQLite unless TEST_DATABASE_URL names another (the MariaDB pass of
`make test` sets it). Settings are fixed here, before the app is imported.
"""

import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

_tmp = Path(tempfile.mkdtemp(prefix="madang-test-"))
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_tmp / 'test.sqlite3'}"
os.environ.update(
    {
        "ENV": "development",
        "DATABASE_URL": TEST_DATABASE_URL,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "PASSWORD_HASH_PARALLELISM": "1",
        "UPLOAD_DIR": str(_tmp / "uploads"),
        "MODEL_DIR": str(_tmp / "models"),
        "REDIS_URL": "",
        "SMTP_HOST": "",
        # Posts are embedded for similar-posts only where a test asks for it (tests/test_ai_*.py):
        # elsewhere it would load torch in the background of tests that never look.
        "AI_INDEX_POSTS": "false",
        # Likewise the models load on first use, not at every app's start (tests/test_health.py
        # tests the loading at start).
        "AI_LOAD_AT_START": "false",
    }
)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine, create_engine, delete, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

import models  # noqa: E402
from config import BASE_DIR, settings  # noqa: E402
from crud import search as search_crud  # noqa: E402
from database import SessionLocal, engine  # noqa: E402
from main import app, create_app  # noqa: E402
from ml.base import AIModel  # noqa: E402
from services import rate_limit, security  # noqa: E402
from services.storage import ObjectInfo, S3Storage, get_storage  # noqa: E402
from tests.s3_support import S3Server, in_progress_uploads, s3_server, use_s3  # noqa: E402, F401

# The page tests' `browser` fixture.
pytest_plugins = ["tests.browser_support"]

IS_MARIADB = TEST_DATABASE_URL.startswith("mysql")
# The Redis of the tests that need one (live events across processes, rate limits, Celery).
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def skip_unless_ci(reason: str) -> None:
    """For a service the test needs: CI starts every one, so there a missing one fails."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def redis_or_skip(url: str = TEST_REDIS_URL) -> redis.Redis:
    """A connection to that Redis, or skip_unless_ci."""
    connection = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        connection.ping()
    except redis.RedisError as exc:
        connection.close()
        skip_unless_ci(f"Redis is not reachable at {url}: {exc}")
    return connection


PASSWORD = "correct horse battery"


def alembic_config(url: str) -> Config:
    config = Config(str(BASE_DIR / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def process_database(suffix: str) -> Iterator[Engine]:
    """A MariaDB database of a module's own for the API processes it starts (they need a server
    database whichever the suite uses): `<suite database><suffix>`, created empty, migrated to
    head, dropped afterwards. Skips (fails on CI) without MariaDB."""
    suite_url = os.environ.get("TEST_DATABASE_URL", "")
    # The SQLite pass's own name: `make test` runs it beside the MariaDB pass (on madang_test), and
    # one pass dropping the database the other's processes use would fail them.
    base = make_url(suite_url).database if suite_url.startswith("mysql") else "madang_test_sqlite_pass"
    name = f"{base}{suffix}"
    url = make_url(f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4")
    server = create_engine(url.set(database=""))
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except OperationalError as exc:
        server.dispose()
        skip_unless_ci(f"MariaDB is not reachable: {exc.orig}")
    url_text = url.render_as_string(hide_password=False)
    command.upgrade(alembic_config(url_text), "head")
    engine = create_engine(url_text)
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


def recreate_mariadb_database(url: str) -> None:
    """Drops and creates the test database, so each run starts from nothing."""
    parsed = make_url(url)
    server = create_engine(parsed.set(database=""))
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
            conn.execute(
                text(
                    f"CREATE DATABASE `{parsed.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"
                )
            )
    except OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.exit(f"MariaDB is not reachable at {parsed.host}: {exc.orig}", returncode=0)
    finally:
        server.dispose()


@pytest.fixture(scope="session", autouse=True)
def database_schema() -> Iterator[None]:
    if IS_MARIADB:
        recreate_mariadb_database(TEST_DATABASE_URL)
    command.upgrade(alembic_config(TEST_DATABASE_URL), "head")
    yield
    engine.dispose()


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Every test starts from empty tables and fresh rate-limit counters."""
    rate_limit.get_rate_limiter().reset()
    yield
    empty_tables()
    rate_limit.get_rate_limiter().reset()


def empty_tables() -> None:
    with engine.begin() as conn:
        for table in reversed(models.Base.metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture
def extra_models() -> list[AIModel]:
    """Test-only models the apps of this test run besides the shipped ones (`client`,
    `start_app`): a fixture adds its model here before the app starts, whose registry then has it
    (and the AI table its row)."""
    return []


@pytest.fixture
def app_settings() -> dict[str, Any]:
    """Settings the apps of this test are built with, over the process's (`client`,
    `start_app`): what the app's runtime is built from (main.create_app's config: the AI
    backend, the broker, the request slots), e.g. a fixture asking for one AI worker. What
    requests read as they come (sizes, limits) stays the process's settings, monkeypatched."""
    return {}


def app_with(models: list[AIModel], overrides: dict[str, Any]) -> FastAPI:
    """The app, or one of its own with these models and settings (an app is cheap to make:
    ~0.2 ms); the process's settings object is never changed."""
    if not models and not overrides:
        return app
    return create_app(settings.model_copy(update=overrides), models=models)


@pytest.fixture
def client(extra_models: list[AIModel], app_settings: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(app_with(extra_models, app_settings)) as test_client:
        yield test_client


StartApp = Callable[..., TestClient]


@pytest.fixture
def start_app(extra_models: list[AIModel], app_settings: dict[str, Any]) -> Iterator[StartApp]:
    """Starts an app built with these settings (and those given before in this test) and the
    test's extra_models; a test may start it again, as a restart after a crash."""
    stack = ExitStack()

    def start(**overrides: Any) -> TestClient:
        app_settings.update(overrides)
        return stack.enter_context(TestClient(app_with(extra_models, app_settings)))

    with stack:
        yield start


@dataclass
class Person:
    """A user as a test sees them: the row's id and name, a password and ready headers."""

    id: int
    name: str
    email: str
    password: str = PASSWORD
    headers: dict[str, str] = field(default_factory=dict)


MakeUser = Callable[..., Person]


@pytest.fixture
def make_user() -> MakeUser:
    counter = iter(range(1, 10_000))

    def make(
        name: str | None = None,
        *,
        email: str | None = None,
        is_superuser: bool = False,
        is_banned: bool = False,
        password: str = PASSWORD,
    ) -> Person:
        name = name or f"user{next(counter)}"
        email = email or f"{name.lower()}@example.com"
        with SessionLocal() as session:
            user = models.User(
                name=name,
                email=email,
                password_hash=security.hash_password(password),
                is_superuser=is_superuser,
                is_banned=is_banned,
            )
            session.add(user)
            session.commit()
            token = security.create_access_token(user.id, user.token_version)
            return Person(user.id, name, email, password, {"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture
def user(make_user: MakeUser) -> Person:
    return make_user("minji")


@pytest.fixture
def other_user(make_user: MakeUser) -> Person:
    return make_user("jisoo")


@pytest.fixture
def admin(make_user: MakeUser) -> Person:
    return make_user("root_admin", is_superuser=True)


@pytest.fixture
def make_board() -> Callable[..., models.Board]:
    def make(
        name: str, *, is_public: bool = True, is_visible: bool = True, members: tuple[Person, ...] = ()
    ) -> models.Board:
        with SessionLocal() as session:
            board = models.Board(
                name=name, information=f"about {name}", is_public=is_public, is_visible=is_visible
            )
            session.add(board)
            session.flush()
            for person in members:
                session.execute(models.board_access.insert().values(user_id=person.id, board_id=board.id))
            session.commit()
            return board

    return make


def job_result(client: TestClient, person: Person, model: str, text: str) -> Any:
    """Runs a job of this model on this text as the person, and its result once it succeeded."""
    response = client.post(
        f"{settings.API_PREFIX}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers
    )
    assert response.status_code == 202, response.text
    job = ended(client, person, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job["result"]


def ended(client: TestClient, person: Person, job_id: int) -> dict[str, Any]:
    """The AI job once it has ended, long-polled as a client would (up to 30 s a poll)."""
    job: dict[str, Any] = {"is_finished": False}
    for _ in range(10):
        response = client.get(
            f"{settings.API_PREFIX}/ai/jobs/{job_id}", params={"wait": 30}, headers=person.headers
        )
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["is_finished"]:
            return job
    raise AssertionError(f"job {job_id} is still {job['status']}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["local", "s3"])
def storage_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The attachment tests run on each backend (STORAGE_BACKEND): "local" under UPLOAD_DIR,
    "s3" in a new bucket of the session's S3 server (tests/s3_support.py), so each test
    starts with an empty one."""
    backend = str(request.param)
    if backend == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        use_s3(monkeypatch, server)
    else:
        monkeypatch.setattr(settings, "STORAGE_BACKEND", "local")
    return backend


def stored_objects() -> dict[str, ObjectInfo]:
    """The committed objects of the configured backend, by key (whichever backend the test runs
    on); for S3 it also checks that no multipart upload was left in progress."""
    storage = get_storage()
    if isinstance(storage, S3Storage):
        assert in_progress_uploads(storage.client, storage.bucket) == []
    return {info.key: info for info in storage.iter_objects()}


@dataclass
class Mailbox:
    """Messages a real SMTP server (aiosmtpd) received during the test."""

    messages: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        assert len(self.messages) >= count, f"expected {count} mail(s), got {len(self.messages)}"
        return self.messages


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            with mailbox.arrived:
                mailbox.messages.append(envelope.content.decode())  # type: ignore[attr-defined]
                mailbox.arrived.notify_all()
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "SMTP_PORT", port)
    yield mailbox
    controller.stop()


@pytest.fixture
def make_post() -> Callable[..., models.Post]:
    """A post written straight to the database (counters and visibility as the test needs), with
    its search terms, as the posts service writes them."""

    def make(
        board: models.Board,
        author: Person,
        *,
        name: str = "a post",
        content: str = "some text",
        **columns: object,
    ) -> models.Post:
        with SessionLocal() as session:
            post = models.Post(board_id=board.id, user_id=author.id, name=name, content=content, **columns)
            session.add(post)
            session.flush()
            search_crud.index_post(session, post_id=post.id, title=name, content=content)
            session.commit()
            return post

    return make


@pytest.fixture
def make_comment() -> Callable[..., models.Comment]:
    """A comment written straight to the database, with its search terms; a visible one also
    counts on its post, as the API would count it."""

    def make(
        post: models.Post, author: Person, *, content: str = "a comment", is_visible: bool = True
    ) -> models.Comment:
        with SessionLocal() as session:
            comment = models.Comment(
                post_id=post.id, user_id=author.id, content=content, is_visible=is_visible
            )
            session.add(comment)
            session.flush()
            search_crud.index_comment(session, comment_id=comment.id, content=content)
            if is_visible:
                session.execute(
                    update(models.Post)
                    .where(models.Post.id == post.id)
                    .values(number_of_comment=models.Post.number_of_comment + 1)
                )
            session.commit()
            return comment

    return make


@pytest.fixture(scope="session")
def sentence_encoder() -> object:
    """all-MiniLM-L6-v2, loaded once for the whole session (a few seconds), for the tests that
    run the real AI models: in the model process the app uses (AI_MODEL_PROCESS), which then
    serves every test."""
    from services.ai import registry

    registry.start_model_processes()
    encoder = registry.encoder()
    encoder.load()
    return encoder
