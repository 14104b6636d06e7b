"""The soak test (bench/soak.py) in small: two API processes and a Celery worker on MariaDB and
Redis, attachments in an S3 bucket (moto's server), under ten seconds of mixed load, then every
check of the database against the writes the load generator saw acknowledged, and of the bucket
against the attachment rows. It runs in its own MariaDB database, whichever database
the rest of the suite uses."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

import search_text
from bench import soak
from config import BASE_DIR
from crud.search import post_term_weights
from tests.conftest import skip_unless_ci

# On MariaDB whatever the pass: `make test-sqlite` leaves the module out, the MariaDB pass runs it.
pytestmark = pytest.mark.mariadb

Row = SimpleNamespace  # a database row as the checks read it: attributes by column name

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Its own database per test process, so two runs at once never share one.
DATABASE_URL = f"mysql+pymysql://root@127.0.0.1:3306/madang_soak_test_{os.getpid()}?charset=utf8mb4"
SOAK_SECONDS = 10
RUN_TIMEOUT_SECONDS = 240  # far above the ~60 s it takes; a hang must not stall the suite


@pytest.fixture
def services() -> Iterator[None]:
    """MariaDB and Redis reachable (or the test is skipped, outside CI); the soak's database
    is dropped afterwards."""
    server = create_engine(make_url(DATABASE_URL).set(database=""))
    try:
        with server.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        skip_unless_ci(f"MariaDB is not reachable: {exc.orig}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        skip_unless_ci(f"Redis is not reachable: {exc}")
    yield
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{make_url(DATABASE_URL).database}`"))
    server.dispose()


@pytest.mark.usefixtures("services")
def test_a_short_soak_loses_no_write_and_answers_no_5xx(tmp_path: Path) -> None:
    results = tmp_path / "soak.json"
    command = [sys.executable, "-m", "bench.soak", "--seconds", str(SOAK_SECONDS), "--users", "6"]
    command += ["--chatters", "2", "--posts", "100", "--drain-seconds", "60"]
    command += ["--database-url", DATABASE_URL, "--redis-url", REDIS_URL, "--json", str(results)]
    completed = subprocess.run(
        command, cwd=BASE_DIR, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    report = json.loads(results.read_text())
    failed = [check["name"] for check in report["checks"] if not check["ok"]]
    assert failed == []
    names = " / ".join(check["name"] for check in report["checks"])
    checked_names = (
        "no 5xx",
        "every post as last written",
        "every object its row",
        "chat message reached",
        "AI job",
    )
    for checked in checked_names:
        assert checked in names
    assert report["server_errors"] == {}
    assert report["requests"] > 0
    assert report["chat"]["deliveries_across_processes"] > 0
    assert report["storage"] == "s3"  # the API processes stored their uploads in moto's bucket


# The checks themselves: each must fail when the database lacks what was acknowledged.


def test_the_soak_flags_an_acknowledged_post_that_is_not_in_the_database() -> None:
    stored = {1: Row(board_id=1, user_id=2, name="hello", content="first", is_visible=True)}
    written = {
        "1": {"board_id": 1, "user_id": 2, "name": "hello", "content": "first"},
        "2": {"board_id": 1, "user_id": 2, "name": "lost", "content": "never stored"},
    }
    check = soak.check_posts(stored, written)
    assert not check.ok
    assert "post 2: missing" in check.detail


def test_the_soak_flags_a_like_counter_that_disagrees_with_its_rows() -> None:
    likes = {(7, 1)}
    check = soak.check_likes(likes, {"7:1": True, "8:1": True})
    assert not check.ok
    assert "user 8 post 1: missing" in check.detail


def test_the_soak_flags_a_view_counter_that_disagrees_with_the_view_rows() -> None:
    posts = {1: Row(number_of_view=12), 2: Row(number_of_view=1)}
    check = soak.check_view_counters(posts, {(5, 1), (6, 1)}, seeded={1: 10})
    assert not check.ok  # post 2 counts a view nobody recorded
    assert "post 2: 1 != 0 + 0" in check.detail


def test_the_soak_flags_an_orphaned_object_and_a_row_without_its_object() -> None:
    kept, orphan, lost, local = "a" * 32, "b" * 32, "c" * 32, "d" * 32
    rows = {
        1: Row(storage_backend="s3", storage_key=kept),
        2: Row(storage_backend="s3", storage_key=lost),
        3: Row(storage_backend="local", storage_key=local),
    }
    listed = {"s3": {kept, orphan}, "local": {local}}
    check = soak.check_stored_objects(rows, listed, unfinished=[])
    assert not check.ok
    assert check.detail.startswith(
        "1 objects without a row, 1 rows without their object, 0 uploads left unfinished"
    )
    assert "s3 object bbbb" in check.detail
    assert "attachment 2" in check.detail

    rows.pop(2)
    listed["s3"].discard(orphan)
    check = soak.check_stored_objects(rows, listed, unfinished=[])
    assert check.ok
    assert check.detail == "local: 1 objects = 1 rows; s3: 1 objects = 1 rows"


def test_the_soak_flags_an_object_under_another_backend_than_its_row_names() -> None:
    key = "e" * 32
    check = soak.check_stored_objects(
        {1: Row(storage_backend="s3", storage_key=key)}, {"local": {key}, "s3": set()}, unfinished=[]
    )
    assert not check.ok


def test_the_soak_flags_an_upload_left_unfinished() -> None:
    check = soak.check_stored_objects({}, {"s3": set()}, unfinished=["s3 multipart upload of f00"])
    assert not check.ok
    assert "0 objects without a row, 0 rows without their object, 1 uploads left unfinished" in check.detail


def test_the_soak_flags_a_job_left_queued() -> None:
    jobs = {1: Row(status="succeeded"), 2: Row(status="queued")}
    check = soak.check_jobs(jobs, {"1": {}, "2": {}})
    assert not check.ok
    assert "1 rows still queued or running" in check.detail


def test_the_soak_flags_a_search_index_that_kept_an_edits_old_words() -> None:
    post = Row(id=1, name="김치찌개", content="돼지고기")
    comment = Row(id=5, content="맛있어요")
    title, content = search_text.terms(post.name), search_text.terms(post.content)
    index = {
        "post_search": [Row(post_id=1, title_terms=title, content_terms=content)],
        "comment_search": [Row(comment_id=5, terms=search_text.terms(comment.content))],
        "fts_post_term": [
            Row(post_id=1, term=term, weight=weight)
            for term, weight in post_term_weights(title, content).items()
        ],
        "fts_comment_term": [
            Row(comment_id=5, term=term) for term in search_text.terms(comment.content).split()
        ],
    }
    assert soak.check_search_index({1: post}, {5: comment}, index).ok

    index["fts_comment_term"].append(Row(comment_id=5, term="qw없던"))  # an edit's old word left behind
    check = soak.check_search_index({1: post}, {5: comment}, index)
    assert not check.ok
    assert "comment 5: posting rows differ from its terms" in check.detail

    index["fts_comment_term"].pop()
    edited = Row(id=1, name="김치찌개", content="참치")  # the post changed, its terms did not
    check = soak.check_search_index({1: edited}, {5: comment}, index)
    assert "post 1: stale terms" in check.detail
