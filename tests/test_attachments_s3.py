"""Attachments in an S3 bucket (STORAGE_BACKEND=s3), against a real S3 API over HTTP: moto's
server on loopback (tests/s3_support.py). What only S3 has: multipart uploads of large files and
what an abort leaves (nothing, no upload in progress), presigned downloads, rows of both
backends served side by side. The behaviour both backends share runs on each in
tests/test_attachments.py and tests/test_upload_limits.py."""

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import models
from config import Settings, settings
from database import SessionLocal
from main import app
from services import storage as storage_module
from services.attachments import MIB
from services.storage import PART_BYTES, LocalStorage, S3Storage, get_storage
from tests.conftest import Person, free_port
from tests.s3_support import S3Server, in_progress_uploads, use_s3

pytestmark = pytest.mark.db  # rows written by the API, a failing commit

API = settings.API_PREFIX
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + bytes(range(256)) * 4


def png(size: int) -> bytes:
    return PNG_HEAD + os.urandom(size - len(PNG_HEAD))


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> S3Storage:
    return use_s3(monkeypatch, s3_server)


@pytest.fixture
def post(
    make_board: Callable[..., models.Board], make_post: Callable[..., models.Post], user: Person
) -> models.Post:
    return make_post(make_board("자료실"), user)


@pytest.fixture
def post_url(post: models.Post) -> str:
    return f"{API}/posts/{post.id}/attachments"


def upload(client: TestClient, url: str, person: Person, files: list[tuple[str, bytes]]) -> Response:
    return client.post(
        url,
        headers=person.headers,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )


def row(attachment_id: int) -> models.Attachment:
    with SessionLocal() as session:
        attachment = session.get(models.Attachment, attachment_id)
        assert attachment is not None
        return attachment


def bucket_keys(s3: S3Storage) -> set[str]:
    return {info.key for info in s3.iter_objects()}


def assert_bucket_empty(s3: S3Storage) -> None:
    assert bucket_keys(s3) == set()
    assert in_progress_uploads(s3.client, s3.bucket) == []


# --- settings ------------------------------------------------------------------------------------


def test_s3_without_a_bucket_refuses_to_start_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="S3_BUCKET"):
        Settings(_env_file=None, STORAGE_BACKEND="s3")  # type: ignore[call-arg]


def test_an_access_key_without_its_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="S3_SECRET_ACCESS_KEY"):
        Settings(_env_file=None, STORAGE_BACKEND="s3", S3_BUCKET="b", S3_ACCESS_KEY_ID="k")  # type: ignore[call-arg]


# --- uploads -------------------------------------------------------------------------------------


def test_a_file_larger_than_one_part_arrives_intact(
    client: TestClient, user: Person, post_url: str, s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 20)
    data = png(12 * MIB)

    response = upload(client, post_url, user, [("big.png", data)])

    assert response.status_code == 201, response.text
    attachment = row(response.json()[0]["id"])
    assert (attachment.storage_backend, attachment.sha256) == ("s3", hashlib.sha256(data).hexdigest())
    head = s3.client.head_object(Bucket=s3.bucket, Key=s3.object_name(attachment.storage_key))
    parts = -(-len(data) // PART_BYTES)
    assert head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart upload's ETag counts its parts
    assert head["ContentLength"] == len(data)
    downloaded = client.get(f"{API}/attachments/{attachment.id}", headers=user.headers)
    assert hashlib.sha256(downloaded.content).hexdigest() == attachment.sha256
    assert in_progress_uploads(s3.client, s3.bucket) == []


def test_a_small_file_goes_up_in_one_request_under_the_prefix(
    client: TestClient, user: Person, post_url: str, s3: S3Storage
) -> None:
    response = upload(client, post_url, user, [("small.png", png(1000))])

    key = row(response.json()[0]["id"]).storage_key
    listed = s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"madang/{key}"]
    assert not listed[0]["ETag"].strip('"').count("-")  # put_object, not a multipart upload


def test_a_bad_file_after_a_large_good_one_leaves_no_object_and_no_upload(
    client: TestClient, user: Person, post_url: str, s3: S3Storage
) -> None:
    response = upload(client, post_url, user, [("good.png", png(7 * MIB)), ("bad.png", ELF)])

    assert response.status_code == 415
    assert_bucket_empty(s3)


def test_a_body_cut_off_in_a_large_file_leaves_no_object_and_no_upload(
    client: TestClient, user: Person, post_url: str, s3: S3Storage
) -> None:
    head = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
    headers = {**user.headers, "Content-Type": "multipart/form-data; boundary=xyz"}

    response = client.post(post_url, headers=headers, content=head + png(6 * MIB))

    assert response.status_code == 400
    assert_bucket_empty(s3)


def test_a_failing_commit_deletes_the_completed_objects(
    client: TestClient, user: Person, post_url: str, s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("the database went away"))

    monkeypatch.setattr(Session, "commit", refuse)

    with pytest.raises(OperationalError):
        upload(client, post_url, user, [("a.png", png(6 * MIB)), ("b.png", png(1000))])
    assert_bucket_empty(s3)


# --- presigned downloads -------------------------------------------------------------------------


def test_a_presigned_download_redirects_to_the_bucket_for_60_seconds(
    client: TestClient, user: Person, post_url: str, s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "S3_PRESIGNED_DOWNLOADS", True)
    data = png(3000)
    [item] = upload(client, post_url, user, [("고양이 사진.png", data)]).json()

    response = client.get(item["url"], headers=user.headers, follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == settings.S3_ENDPOINT_URL
    assert parse_qs(location.query)["X-Amz-Expires"] == ["60"]
    fetched = httpx2.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-type"] == "image/png"
    monkeypatch.setattr(settings, "S3_PRESIGNED_DOWNLOADS", False)
    served = client.get(item["url"], headers=user.headers)  # our own answer, streamed
    assert fetched.headers["content-disposition"] == served.headers["content-disposition"]
    assert "filename*=UTF-8''%EA%B3%A0" in fetched.headers["content-disposition"]


def test_a_reader_without_access_gets_no_presigned_url(
    client: TestClient,
    user: Person,
    make_user: Callable[..., Person],
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    s3: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "S3_PRESIGNED_DOWNLOADS", True)
    restricted = make_post(make_board("운영진", is_public=False, members=(user,)), user)
    [item] = upload(client, f"{API}/posts/{restricted.id}/attachments", user, [("a.png", png(100))]).json()

    outsider = client.get(item["url"], headers=make_user("outsider").headers, follow_redirects=False)
    anonymous = client.get(item["url"], follow_redirects=False)

    assert (outsider.status_code, anonymous.status_code) == (403, 401)
    assert "location" not in outsider.headers


def test_a_local_row_is_served_by_the_api_even_with_presigned_downloads(
    client: TestClient, user: Person, post_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "STORAGE_BACKEND", "local")
    data = png(500)
    [item] = upload(client, post_url, user, [("a.png", data)]).json()
    use_s3(monkeypatch, s3_server)
    monkeypatch.setattr(settings, "S3_PRESIGNED_DOWNLOADS", True)

    response = client.get(item["url"], headers=user.headers, follow_redirects=False)

    assert (response.status_code, response.content) == (200, data)


# --- both backends side by side -------------------------------------------------------------------


def test_rows_of_both_backends_are_served_after_switching_to_s3(
    client: TestClient, user: Person, post_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "STORAGE_BACKEND", "local")
    on_disk = png(2000)
    [local_item] = upload(client, post_url, user, [("disk.png", on_disk)]).json()
    s3 = use_s3(monkeypatch, s3_server)  # STORAGE_BACKEND=s3 from here on
    in_bucket = png(3000)
    [s3_item] = upload(client, post_url, user, [("bucket.png", in_bucket)]).json()

    assert (row(local_item["id"]).storage_backend, row(s3_item["id"]).storage_backend) == ("local", "s3")
    assert client.get(local_item["url"], headers=user.headers).content == on_disk
    assert client.get(s3_item["url"], headers=user.headers).content == in_bucket
    ranged = client.get(local_item["url"], headers={**user.headers, "Range": "bytes=-4"})
    assert (ranged.status_code, ranged.content) == (206, on_disk[-4:])
    local_key = row(local_item["id"]).storage_key
    assert bucket_keys(s3) == {row(s3_item["id"]).storage_key}

    assert client.delete(local_item["url"], headers=user.headers).status_code == 204
    assert client.delete(s3_item["url"], headers=user.headers).status_code == 204
    assert not get_storage("local").exists(local_key)
    assert_bucket_empty(s3)


# --- listing (what `cli.py storage ...` builds on) ------------------------------------------------


def test_both_backends_list_committed_objects_only(tmp_path: Path, s3: S3Storage) -> None:
    for storage in (LocalStorage(tmp_path), s3):
        done = storage.create()
        done.write(b"kept")
        done.commit()
        pending = storage.create()
        pending.write(b"x" * (PART_BYTES + 1))  # on S3, a multipart upload in progress

        [info] = list(storage.iter_objects())

        assert (info.key, info.size) == (done.key, 4)
        assert info.last_modified.utcoffset() is not None
        pending.abort()
        done.abort()
        assert list(storage.iter_objects()) == []
    assert in_progress_uploads(s3.client, s3.bucket) == []


# --- when the bucket fails -----------------------------------------------------------------------
# Unreachable, timing out, answering 5xx, missing: an upload or a download answers 503
# storage_unavailable (never a 500) and an upload leaves no row and, as far as the bucket lets
# it, no object; a deletion keeps its rule (the row goes, the object is left for `storage sweep`).


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt and short timeouts: the production ones (3 attempts, 5 s to connect, 30 s to
    read) would make each of these tests take seconds to minutes. Before the S3 fixtures."""
    monkeypatch.setattr(storage_module, "S3_MAX_ATTEMPTS", 1, raising=False)
    monkeypatch.setattr(storage_module, "S3_CONNECT_TIMEOUT_SECONDS", 1.0, raising=False)
    monkeypatch.setattr(storage_module, "S3_READ_TIMEOUT_SECONDS", 0.5, raising=False)


@pytest.fixture
def answering(client: TestClient) -> TestClient:
    """The app as a client sees it: an unhandled error is its 500, not an exception in the test."""
    return TestClient(client.app, raise_server_exceptions=False)


def point_at(monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> None:
    monkeypatch.setattr(settings, "S3_ENDPOINT_URL", endpoint_url)


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def rows_of(post: models.Post) -> list[models.Attachment]:
    with SessionLocal() as session:
        return list(session.scalars(select(models.Attachment).where(models.Attachment.post_id == post.id)))


def assert_storage_unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "storage_unavailable"
    assert set(body) == {"detail", "code"} and body["detail"]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An endpoint that takes connections and never answers (a hung service): reads time out."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)  # the kernel completes the handshakes; nothing ever reads
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


class _Failing(BaseHTTPRequestHandler):
    """Every request answered 503 SlowDown, as a bucket under trouble answers."""

    protocol_version = "HTTP/1.1"  # answers boto's `Expect: 100-continue` at once

    BODY = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.BODY)
        self.close_connection = True

    # http.server's names for the methods it dispatches to.
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _refuse  # noqa: N815

    def log_message(self, *_: object) -> None:  # quiet
        pass


@pytest.fixture
def failing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fail(operation: str, *, after: int = 0) -> Callable[[], None]:
    """Makes the app's S3 client fail `operation` (UploadPart, AbortMultipartUpload, ...) as if the
    endpoint went away, from its `after`+1-th call on; answers the undo."""
    client = storage_module.s3_client(settings)
    calls = 0

    def refuse(request: Any, **_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > after:
            raise EndpointConnectionError(endpoint_url=request.url)

    event = f"before-send.s3.{operation}"
    client.meta.events.register(event, refuse, unique_id=f"madang-test-{operation}")
    return lambda: client.meta.events.unregister(event, unique_id=f"madang-test-{operation}")


@pytest.mark.parametrize("size", [1000, 6 * MIB], ids=["one-request", "multipart"])
def test_an_upload_to_an_unreachable_bucket_is_503_and_leaves_no_row(
    impatient: None,
    answering: TestClient,
    user: Person,
    post: models.Post,
    post_url: str,
    s3: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    point_at(monkeypatch, closed_port_url())

    response = upload(answering, post_url, user, [("a.png", png(size))])

    assert_storage_unavailable(response)
    assert rows_of(post) == []
    monkeypatch.undo()
    assert_bucket_empty(s3)


def break_bucket(
    monkeypatch: pytest.MonkeyPatch, failure: str, *, failing_server: str, silent_server: str
) -> None:
    """Points the app at a bucket that fails as named: unreachable, answering 5xx, missing, or
    taking the connection and never answering (timeout)."""
    if failure == "missing-bucket":
        monkeypatch.setattr(settings, "S3_BUCKET", "madang-no-such-bucket")
    else:
        point_at(
            monkeypatch,
            {"unreachable": closed_port_url(), "5xx": failing_server, "timeout": silent_server}[failure],
        )


@pytest.mark.parametrize("failure", ["5xx", "missing-bucket", "timeout"])
def test_an_upload_to_a_failing_bucket_is_503(
    impatient: None,
    answering: TestClient,
    user: Person,
    post: models.Post,
    post_url: str,
    s3: S3Storage,
    failing_server: str,
    silent_server: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    break_bucket(monkeypatch, failure, failing_server=failing_server, silent_server=silent_server)
    started = time.monotonic()

    response = upload(answering, post_url, user, [("a.png", png(1000))])

    assert_storage_unavailable(response)
    assert time.monotonic() - started < 5  # at most the test's 0.5 s read timeout, once
    assert rows_of(post) == []


def test_a_bucket_lost_midway_through_a_large_upload_leaves_no_object_and_no_upload(
    impatient: None,
    answering: TestClient,
    user: Person,
    post: models.Post,
    post_url: str,
    s3: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 20)
    undo = fail("UploadPart", after=1)  # the first part goes up, the second does not
    try:
        response = upload(answering, post_url, user, [("big.png", png(12 * MIB))])
    finally:
        undo()

    assert_storage_unavailable(response)
    assert rows_of(post) == []
    assert_bucket_empty(s3)  # the service's cleanup aborted the multipart upload


def test_an_abort_that_fails_too_is_logged_and_left_for_the_sweep(
    impatient: None,
    answering: TestClient,
    user: Person,
    post: models.Post,
    post_url: str,
    s3: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 20)
    undo_part, undo_abort = fail("UploadPart", after=1), fail("AbortMultipartUpload")
    try:
        response = upload(answering, post_url, user, [("big.png", png(12 * MIB))])
    finally:
        undo_part()
        undo_abort()

    assert_storage_unavailable(response)
    assert rows_of(post) == []
    assert "could not discard upload object" in caplog.text
    assert bucket_keys(s3) == set()
    assert len(in_progress_uploads(s3.client, s3.bucket)) == 1  # what `cli.py storage sweep` aborts


@pytest.mark.parametrize("failure", ["unreachable", "5xx", "missing-bucket", "timeout"])
def test_a_download_from_a_failing_bucket_is_503(
    impatient: None,
    answering: TestClient,
    user: Person,
    post_url: str,
    s3: S3Storage,
    failing_server: str,
    silent_server: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    [item] = upload(answering, post_url, user, [("a.png", png(1000))]).json()
    break_bucket(monkeypatch, failure, failing_server=failing_server, silent_server=silent_server)

    whole = answering.get(item["url"], headers=user.headers)
    ranged = answering.get(item["url"], headers={**user.headers, "Range": "bytes=0-9"})

    assert_storage_unavailable(whole)
    assert_storage_unavailable(ranged)


def test_a_delete_while_the_bucket_is_unreachable_removes_the_row_and_leaves_the_object(
    impatient: None,
    answering: TestClient,
    user: Person,
    post: models.Post,
    post_url: str,
    s3: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [item] = upload(answering, post_url, user, [("a.png", png(1000))]).json()
    key = row(item["id"]).storage_key
    endpoint_url = settings.S3_ENDPOINT_URL
    point_at(monkeypatch, closed_port_url())

    response = answering.delete(item["url"], headers=user.headers)

    # The deletion asked for happened: nothing serves the file any more.
    assert response.status_code == 204
    assert rows_of(post) == []
    assert f"could not remove object {key}" in caplog.text
    point_at(monkeypatch, endpoint_url)
    assert bucket_keys(s3) == {key}  # an object no row names: `cli.py storage sweep` removes it


def test_the_upload_and_download_documents_list_503_storage_unavailable() -> None:
    paths = app.openapi()["paths"]
    for method, path in [
        ("post", f"{API}/posts/{{post_id}}/attachments"),
        ("post", f"{API}/comments/{{comment_id}}/attachments"),
        ("get", f"{API}/attachments/{{attachment_id}}"),
    ]:
        content = paths[path][method]["responses"]["503"]["content"]["application/json"]
        assert content["schema"]["properties"]["code"]["enum"] == ["storage_unavailable"]
        assert content["examples"]["storage_unavailable"]["value"]["code"] == "storage_unavailable"
