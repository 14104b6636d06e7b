"""How much one user may upload: a storage quota (UPLOAD_QUOTA_MB, the bytes of the user's
stored attachments, from the database) and an hourly rate (UPLOAD_LIMIT_PER_HOUR files, through
the rate limiter). Either refusal takes the whole request back: no file under UPLOAD_DIR, no row."""

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

import models
from config import settings
from database import SessionLocal
from main import app
from services import rate_limit
from services.attachments import MIB
from services.rate_limit import RedisRateLimiter
from services.redis_client import connect as connect_to_redis
from tests.conftest import TEST_REDIS_URL, Person, redis_or_skip, stored_objects

# The quota summed in SQL under a row lock, parallel uploads; on each storage backend
# (tests/conftest.storage_backend: the local disk, an S3 bucket).
pytestmark = [pytest.mark.db, pytest.mark.usefixtures("storage_backend")]

API = settings.API_PREFIX
KIB = 1024
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png(size: int) -> bytes:
    """A file of exactly `size` bytes that the upload takes for a PNG (the type is judged by the
    first bytes)."""
    return PNG_HEAD + b"\x00" * (size - len(PNG_HEAD))


def upload(client: TestClient, url: str, person: Person, *sizes: int) -> Response:
    files = [("files", (f"photo{n}.png", png(size), "image/png")) for n, size in enumerate(sizes)]
    return client.post(url, headers=person.headers, files=files)


def stored_files() -> set[str]:
    """The keys of the objects in the backend the test runs on."""
    return set(stored_objects())


def stored_bytes(person: Person) -> int:
    with SessionLocal() as session:
        query = select(func.coalesce(func.sum(models.Attachment.size), 0)).where(
            models.Attachment.uploader_id == person.id
        )
        return int(session.scalar(query) or 0)


def stored_keys() -> set[str]:
    with SessionLocal() as session:
        return set(session.scalars(select(models.Attachment.storage_key)))


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("자유게시판")


@pytest.fixture
def make_post_url(make_post: Callable[..., models.Post], board: models.Board) -> Callable[[Person], str]:
    def make(author: Person) -> str:
        return f"{API}/posts/{make_post(board, author).id}/attachments"

    return make


@pytest.fixture
def post_url(make_post_url: Callable[[Person], str], user: Person) -> str:
    return make_post_url(user)


@pytest.fixture
def quota_of_one_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "UPLOAD_QUOTA_MB", 1)


@pytest.fixture
def nothing_more_written() -> Iterator[Callable[[], None]]:
    """Call it before the refused request: afterwards UPLOAD_DIR and the rows must be as then."""
    before: dict[str, object] = {}

    def mark() -> None:
        before.update(files=stored_files(), keys=stored_keys())

    yield mark
    assert before, "nothing_more_written was never marked"
    assert (stored_files(), stored_keys()) == (before["files"], before["keys"])


# --- the quota -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("quota_of_one_mib")
def test_an_upload_past_the_quota_is_refused_whole_with_nothing_written(
    client: TestClient, user: Person, post_url: str, nothing_more_written: Callable[[], None]
) -> None:
    assert upload(client, post_url, user, 700 * KIB).status_code == 201
    nothing_more_written()

    response = upload(client, post_url, user, 100 * KIB, 300 * KIB)

    assert response.status_code == 413
    assert response.json()["code"] == "quota_exceeded"
    assert "1 MB" in response.json()["detail"]
    assert stored_bytes(user) == 700 * KIB


@pytest.mark.usefixtures("quota_of_one_mib")
def test_an_upload_that_fills_the_quota_exactly_is_accepted(
    client: TestClient, user: Person, post_url: str
) -> None:
    assert upload(client, post_url, user, 700 * KIB).status_code == 201

    assert upload(client, post_url, user, MIB - 700 * KIB).status_code == 201
    assert stored_bytes(user) == MIB


@pytest.mark.usefixtures("quota_of_one_mib")
def test_comment_attachments_count_against_the_same_quota(
    client: TestClient,
    user: Person,
    make_post: Callable[..., models.Post],
    board: models.Board,
    make_comment: Callable[..., models.Comment],
) -> None:
    comment = make_comment(make_post(board, user), user)
    assert upload(client, f"{API}/comments/{comment.id}/attachments", user, 700 * KIB).status_code == 201

    response = upload(client, f"{API}/posts/{comment.post_id}/attachments", user, 400 * KIB)

    assert (response.status_code, response.json()["code"]) == (413, "quota_exceeded")


@pytest.mark.usefixtures("quota_of_one_mib")
def test_deleting_an_attachment_frees_its_bytes(client: TestClient, user: Person, post_url: str) -> None:
    [item] = upload(client, post_url, user, 700 * KIB).json()
    assert upload(client, post_url, user, 400 * KIB).status_code == 413

    assert client.delete(item["url"], headers=user.headers).status_code == 204

    assert upload(client, post_url, user, 400 * KIB).status_code == 201


@pytest.mark.usefixtures("quota_of_one_mib")
def test_attachments_of_a_deleted_post_still_count(
    client: TestClient, user: Person, make_post_url: Callable[[Person], str]
) -> None:
    """Deleting a post hides it (an administrator may restore it); its files stay on disk, so
    they stay counted. Were they not, uploading and deleting posts would fill the disk."""
    first_post = make_post_url(user)
    assert upload(client, first_post, user, 700 * KIB).status_code == 201
    assert client.delete(first_post.removesuffix("/attachments"), headers=user.headers).status_code == 204

    assert upload(client, make_post_url(user), user, 400 * KIB).status_code == 413


@pytest.mark.usefixtures("quota_of_one_mib")
def test_the_quota_is_each_users_own(
    client: TestClient, user: Person, other_user: Person, make_post_url: Callable[[Person], str]
) -> None:
    assert upload(client, make_post_url(user), user, 900 * KIB).status_code == 201

    assert upload(client, make_post_url(other_user), other_user, 900 * KIB).status_code == 201


@pytest.mark.usefixtures("quota_of_one_mib")
def test_parallel_uploads_by_one_user_never_take_more_than_the_quota(
    client: TestClient, user: Person, make_post_url: Callable[[Person], str]
) -> None:
    """Eight 300 KiB uploads at once, each to a post of its own, against a 1 MiB quota: three
    fit, five are refused, and the files on disk are exactly those of the rows (on MariaDB: real
    concurrent transactions)."""
    urls = [make_post_url(user) for _ in range(8)]
    barrier = threading.Barrier(len(urls))
    before = stored_files()

    def send(url: str) -> Response:
        barrier.wait()
        return upload(client, url, user, 300 * KIB)

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        responses = list(pool.map(send, urls))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 3 + [413] * 5, [response.text for response in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 413} == {"quota_exceeded"}
    assert stored_bytes(user) == 3 * 300 * KIB
    assert stored_files() - before == stored_keys()


def test_parallel_uploads_by_several_users_to_one_post_all_succeed(
    client: TestClient, user: Person, admin: Person, post_url: str
) -> None:
    """The author and an administrator attaching to one post at once: each upload locks its
    uploader and then the post, so they queue; none fails on a deadlock (MariaDB)."""
    senders = [user, admin] * 4
    barrier = threading.Barrier(len(senders))

    def send(person: Person) -> Response:
        barrier.wait()
        return upload(client, post_url, person, KIB)

    with ThreadPoolExecutor(max_workers=len(senders)) as pool:
        responses = list(pool.map(send, senders))

    assert [response.status_code for response in responses] == [201] * len(senders)
    assert len(stored_keys()) == len(senders)


# --- the hourly rate -------------------------------------------------------------------------------


@pytest.fixture
def three_files_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "UPLOAD_LIMIT_PER_HOUR", 3)


@pytest.mark.usefixtures("three_files_an_hour")
def test_uploads_past_the_hourly_rate_get_429_with_retry_after(
    client: TestClient, user: Person, post_url: str, nothing_more_written: Callable[[], None]
) -> None:
    assert upload(client, post_url, user, KIB, KIB).status_code == 201
    assert upload(client, post_url, user, KIB).status_code == 201
    nothing_more_written()

    response = upload(client, post_url, user, KIB)

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


@pytest.mark.usefixtures("three_files_an_hour")
def test_the_hourly_rate_counts_files_not_requests(
    client: TestClient, user: Person, post_url: str, nothing_more_written: Callable[[], None]
) -> None:
    nothing_more_written()

    response = upload(client, post_url, user, KIB, KIB, KIB, KIB)

    assert response.status_code == 429


@pytest.mark.usefixtures("three_files_an_hour")
def test_the_hourly_rate_is_each_users_own(
    client: TestClient, user: Person, other_user: Person, make_post_url: Callable[[Person], str]
) -> None:
    assert upload(client, make_post_url(user), user, KIB, KIB, KIB).status_code == 201

    assert upload(client, make_post_url(other_user), other_user, KIB, KIB, KIB).status_code == 201


@pytest.mark.usefixtures("three_files_an_hour")
def test_rate_limit_enabled_false_lifts_the_hourly_rate(
    client: TestClient, user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)

    assert upload(client, post_url, user, *[KIB] * 5).status_code == 201


@pytest.mark.usefixtures("three_files_an_hour")
def test_the_hourly_rate_on_redis_is_shared_by_two_processes(
    user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API processes, each with its own limiter on one Redis, count one total per user."""
    connection = redis_or_skip()
    prefix = f"madang-test:{uuid.uuid4().hex}:rl:"
    process_a, process_b = (
        RedisRateLimiter(connect_to_redis(TEST_REDIS_URL), prefix=prefix) for _ in range(2)
    )
    limiters = iter([process_a, process_b, process_a])
    monkeypatch.setattr(rate_limit, "get_rate_limiter", lambda: next(limiters))
    try:
        with TestClient(app) as client:
            assert upload(client, post_url, user, KIB, KIB).status_code == 201  # on process A
            assert upload(client, post_url, user, KIB).status_code == 201  # on process B
            response = upload(client, post_url, user, KIB)  # on process A again
        assert response.status_code == 429
        [counter] = connection.keys(f"{prefix}*")
        assert 0 < connection.ttl(counter) <= 3600
    finally:
        RedisRateLimiter(connection, prefix=prefix).reset()
        connection.close()


# --- the contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["posts/{post_id}", "comments/{comment_id}"])
def test_upload_routes_declare_the_quota_the_type_checks_and_the_rate(owner: str) -> None:
    responses = app.openapi()["paths"][f"{API}/{owner}/attachments"]["post"]["responses"]

    assert "quota_exceeded" in responses["413"]["description"]
    assert "extension_mismatch" in responses["415"]["description"]
    assert "Retry-After" in responses["429"]["headers"]
