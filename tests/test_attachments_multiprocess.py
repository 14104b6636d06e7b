"""Two API processes (`cli.py serve`) on MariaDB, storing attachments in one S3 bucket (moto's
server, tests/s3_support.py) and counting upload rates in one Redis: one user's concurrent
uploads, spread over both processes, never take more than UPLOAD_QUOTA_MB nor more files than
UPLOAD_LIMIT_PER_HOUR, and the bucket holds exactly the objects of the rows (a refused upload
leaves nothing behind, not even a multipart upload in progress).

The processes use a MariaDB database of their own (dropped and made anew here), whichever
database the rest of the suite runs on."""

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from config import BASE_DIR
from models import Attachment, Board, Post, User
from services import security
from tests.chat_support import ApiProcess, wait_until_up
from tests.conftest import (
    TEST_REDIS_URL,
    free_port,
    process_database,
    redis_or_skip,
)
from tests.s3_support import S3Server, in_progress_uploads

pytestmark = pytest.mark.db  # two API processes sharing the database, concurrent uploads

API = "/api/v1"
KIB = 1024
QUOTA_MB = 1
RATE_PER_HOUR = 10
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.fixture(scope="module")
def database() -> Iterator[Engine]:
    yield from process_database("_s3mp")


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


@pytest.fixture(scope="module")
def processes(
    database: Engine, s3_server: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    redis_or_skip(TEST_REDIS_URL).close()
    environment = {
        **os.environ,
        "DATABASE_URL": database.url.render_as_string(hide_password=False),
        "REDIS_URL": TEST_REDIS_URL,
        "BROKER_CHANNEL": f"madang:test:{uuid.uuid4().hex}",
        # The database is made anew each run, its user ids with it: counts of their own.
        "RATE_LIMIT_KEY_PREFIX": f"madang:test:rl:{uuid.uuid4().hex}:",
        **s3_server.settings(bucket, prefix="mp/"),
        "UPLOAD_QUOTA_MB": str(QUOTA_MB),
        "UPLOAD_LIMIT_PER_HOUR": str(RATE_PER_HOUR),
    }
    logs = tmp_path_factory.mktemp("api-logs")
    # Both start at once (each takes seconds to import the app), then both must answer.
    command = [sys.executable, "cli.py", "serve", "--host", "127.0.0.1"]
    started: list[ApiProcess] = []
    try:
        for name in ("a", "b"):
            port, log = free_port(), logs / f"api-{name}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [*command, "--port", str(port)],
                    cwd=BASE_DIR,
                    env=environment,
                    stdout=output,
                    stderr=output,
                )
            started.append(ApiProcess(port, process, log))
        for api in started:
            wait_until_up(api)
        yield started[0], started[1]
    finally:
        for api in started:
            api.process.terminate()
        for api in started:
            try:
                api.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                api.process.kill()


def make_uploader(engine: Engine, posts: int) -> tuple[dict[str, str], list[int]]:
    """A new user (their headers) and that many posts of theirs."""
    name = f"s3mp_{uuid.uuid4().hex[:12]}"
    with Session(engine) as session:
        user = User(name=name, email=f"{name}@example.com", password_hash=security.unusable_password_hash())
        board = Board(name=f"board {name}", information="uploads", is_public=True, is_visible=True)
        session.add_all([user, board])
        session.flush()
        made = [
            Post(board_id=board.id, user_id=user.id, name=f"post {n}", content="files") for n in range(posts)
        ]
        session.add_all(made)
        session.commit()
        token = security.create_access_token(user.id, user.token_version)
        return {"Authorization": f"Bearer {token}"}, [post.id for post in made]


def upload_all_at_once(
    processes: tuple[ApiProcess, ApiProcess], headers: dict[str, str], post_ids: list[int], size: int
) -> list[httpx2.Response]:
    """One file to each post, all sent at once, alternately to either process."""
    barrier = threading.Barrier(len(post_ids))

    def send(turn: int) -> httpx2.Response:
        api = processes[turn % 2]
        data = PNG_HEAD + os.urandom(size - len(PNG_HEAD))
        barrier.wait()
        return httpx2.post(
            f"{api.http}{API}/posts/{post_ids[turn]}/attachments",
            headers=headers,
            files=[("files", (f"photo{turn}.png", data, "image/png"))],
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=len(post_ids)) as pool:
        return list(pool.map(send, range(len(post_ids))))


def assert_bucket_holds_the_rows(engine: Engine, s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="mp/").get("Contents", [])
    with Session(engine) as session:
        keys = set(session.scalars(select(Attachment.storage_key).where(Attachment.storage_backend == "s3")))
    assert {item["Key"].removeprefix("mp/") for item in listed} == keys
    assert in_progress_uploads(client, bucket) == []


def test_concurrent_uploads_on_two_processes_stop_at_the_quota(
    database: Engine, processes: tuple[ApiProcess, ApiProcess], s3_server: S3Server, bucket: str
) -> None:
    headers, post_ids = make_uploader(database, posts=8)

    responses = upload_all_at_once(processes, headers, post_ids, 300 * KIB)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 3 + [413] * 5, [response.text for response in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 413} == {"quota_exceeded"}
    assert_bucket_holds_the_rows(database, s3_server, bucket)


def test_concurrent_uploads_on_two_processes_stop_at_the_hourly_rate(
    database: Engine, processes: tuple[ApiProcess, ApiProcess], s3_server: S3Server, bucket: str
) -> None:
    headers, post_ids = make_uploader(database, posts=RATE_PER_HOUR + 4)

    responses = upload_all_at_once(processes, headers, post_ids, 2 * KIB)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * RATE_PER_HOUR + [429] * 4, [response.text for response in responses]
    assert_bucket_holds_the_rows(database, s3_server, bucket)
