"""Attachments on posts and comments: upload, download, delete, and every refusal leaving
nothing behind (no file under UPLOAD_DIR, no row)."""

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import models
from config import settings
from database import SessionLocal
from errors import PayloadTooLarge
from services.attachments import MIB, Upload
from services.storage import LocalStorage, get_storage
from tests.conftest import Person, stored_objects

# File rows and their marks on posts and comments; names beyond ASCII stored. Every test runs on
# each storage backend (tests/conftest.storage_backend: the local disk, an S3 bucket).
pytestmark = [pytest.mark.db, pytest.mark.usefixtures("storage_backend")]

API = settings.API_PREFIX
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4
ZIP = b"PK\x05\x06" + b"\x00" * 18  # an empty archive
TEXT = "마당에 오신 것을 환영합니다.\nWelcome to the yard.\n".encode()
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + bytes(range(256)) * 4

FileSpec = tuple[str, bytes]


def stored_files() -> set[str]:
    """The keys of the objects in the backend the test runs on."""
    return set(stored_objects())


def stored_bytes(key: str) -> bytes:
    return b"".join(get_storage().open(key).chunks)


def attachment_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(models.Attachment)) or 0


def stored_attachment(attachment_id: int) -> models.Attachment:
    with SessionLocal() as session:
        attachment = session.get(models.Attachment, attachment_id)
        assert attachment is not None
        return attachment


def file_flag(model: type[models.Post] | type[models.Comment], row_id: int) -> bool:
    with SessionLocal() as session:
        return bool(session.scalar(select(model.is_file_attached).where(model.id == row_id)))


def upload(
    client: TestClient, url: str, person: Person, files: list[FileSpec], *, header_type: str = "image/png"
) -> Response:
    return client.post(
        url, headers=person.headers, files=[("files", (name, data, header_type)) for name, data in files]
    )


def download_name(response: Response) -> str:
    match = re.search(r"filename\*=UTF-8''([^;]+)", response.headers["content-disposition"])
    assert match, response.headers["content-disposition"]
    return unquote(match.group(1), encoding="utf-8", errors="strict")


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("자유게시판")


@pytest.fixture
def post(make_post: Callable[..., models.Post], board: models.Board, user: Person) -> models.Post:
    return make_post(board, user, name="사진 올립니다")


@pytest.fixture
def comment(make_comment: Callable[..., models.Comment], post: models.Post, user: Person) -> models.Comment:
    return make_comment(post, user)


@pytest.fixture
def post_url(post: models.Post) -> str:
    return f"{API}/posts/{post.id}/attachments"


@pytest.fixture
def comment_url(comment: models.Comment) -> str:
    return f"{API}/comments/{comment.id}/attachments"


@pytest.fixture
def uploaded(client: TestClient, user: Person, post_url: str) -> dict[str, object]:
    """One PNG the post's author attached."""
    response = upload(client, post_url, user, [("cat.png", PNG)])
    assert response.status_code == 201, response.text
    return response.json()[0]


@pytest.fixture
def nothing_written() -> Iterator[None]:
    """The test's refused upload must leave the storage (and, on S3, no multipart upload in
    progress) and the attachment table as they were."""
    before = stored_files()
    yield
    assert stored_files() == before
    assert attachment_count() == 0


# --- uploading -------------------------------------------------------------------------------


def test_author_attaches_a_file_to_a_post(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [("cat.png", PNG)])

    assert response.status_code == 201, response.text
    [item] = response.json()
    assert item == {
        "id": item["id"],
        "filename": "cat.png",
        "content_type": "image/png",
        "size": len(PNG),
        "url": f"{API}/attachments/{item['id']}",
    }


def test_upload_records_size_and_sha256_of_the_bytes(client: TestClient, uploaded: dict[str, object]) -> None:
    attachment = stored_attachment(int(str(uploaded["id"])))
    assert (attachment.size, attachment.sha256) == (len(PNG), hashlib.sha256(PNG).hexdigest())


def test_file_is_stored_under_a_random_key_not_its_name(
    client: TestClient, user: Person, post_url: str
) -> None:
    before = stored_files()
    response = upload(client, post_url, user, [("cat.png", PNG)])

    [new_key] = stored_files() - before
    assert new_key == stored_attachment(response.json()[0]["id"]).storage_key
    assert re.fullmatch(r"[0-9a-f]{32}", new_key)
    assert stored_bytes(new_key) == PNG


def test_several_files_are_attached_in_one_request(client: TestClient, user: Person, post_url: str) -> None:
    files = [("a.png", PNG), ("b.pdf", PDF), ("c.jpg", JPEG), ("d.zip", ZIP), ("e.txt", TEXT)]

    response = upload(client, post_url, user, files)

    assert response.status_code == 201, response.text
    assert [(item["filename"], item["content_type"], item["size"]) for item in response.json()] == [
        ("a.png", "image/png", len(PNG)),
        ("b.pdf", "application/pdf", len(PDF)),
        ("c.jpg", "image/jpeg", len(JPEG)),
        ("d.zip", "application/zip", len(ZIP)),
        ("e.txt", "text/plain; charset=utf-8", len(TEXT)),
    ]


def test_type_comes_from_the_content_not_the_header(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [("scan.pdf", PDF)], header_type="image/png")

    assert response.json()[0]["content_type"] == "application/pdf"


def test_a_file_larger_than_the_json_body_limit_is_accepted(
    client: TestClient, user: Person, post_url: str
) -> None:
    big_text = b"0123456789abcdef\n" * (2 * settings.MAX_JSON_BODY_KB * 1024 // 17)

    response = upload(client, post_url, user, [("notes.txt", big_text)], header_type="text/plain")

    assert response.status_code == 201, response.text
    assert response.json()[0]["size"] == len(big_text)


def test_comment_author_attaches_a_file_to_a_comment(
    client: TestClient, user: Person, comment: models.Comment, comment_url: str
) -> None:
    response = upload(client, comment_url, user, [("cat.png", PNG)])

    assert response.status_code == 201, response.text
    assert stored_attachment(response.json()[0]["id"]).comment_id == comment.id


def test_admin_may_attach_to_someone_elses_post(client: TestClient, admin: Person, post_url: str) -> None:
    response = upload(client, post_url, admin, [("cat.png", PNG)])

    assert response.status_code == 201, response.text
    assert stored_attachment(response.json()[0]["id"]).uploader_id == admin.id


def test_non_author_cannot_attach_to_a_post(
    client: TestClient, other_user: Person, post_url: str, nothing_written: None
) -> None:
    assert upload(client, post_url, other_user, [("cat.png", PNG)]).status_code == 403


def test_non_author_cannot_attach_to_a_comment(
    client: TestClient, other_user: Person, comment_url: str, nothing_written: None
) -> None:
    assert upload(client, comment_url, other_user, [("cat.png", PNG)]).status_code == 403


# --- refusals: nothing written -----------------------------------------------------------------


def test_renamed_executable_is_refused_as_unsupported(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [("photo.png", ELF)], header_type="image/png")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_file_type"


def test_text_with_a_nul_byte_is_refused_as_unsupported(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [("notes.txt", b"plain text\x00then binary")])

    assert response.status_code == 415


def test_text_that_is_not_utf8_is_refused_as_unsupported(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [("notes.txt", "마당".encode("euc-kr") * 20)])

    assert response.status_code == 415


def test_empty_file_is_refused(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [("empty.png", b"")])

    assert response.status_code == 422
    assert response.json()["code"] == "empty_file"


def test_path_traversal_filename_is_refused(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [("../../x.sh", b"#!/bin/sh\necho hi\n")])

    assert response.status_code == 422
    assert response.json()["code"] == "unsafe_filename"


def test_oversized_file_is_refused(
    client: TestClient, user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch, nothing_written: None
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)

    response = upload(client, post_url, user, [("big.png", PNG + b"\x00" * MIB)])

    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"


def test_a_file_of_exactly_the_limit_is_accepted(
    client: TestClient, user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)
    exactly = PNG + b"\x00" * (MIB - len(PNG))

    assert upload(client, post_url, user, [("big.png", exactly)]).status_code == 201


def test_a_later_oversized_file_refuses_the_whole_request(
    client: TestClient, user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch, nothing_written: None
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)
    files = [("a.png", PNG), ("b.pdf", PDF), ("big.png", PNG + b"\x00" * MIB)]

    assert upload(client, post_url, user, files).status_code == 413


def test_a_later_unsupported_file_refuses_the_whole_request(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    files = [("a.png", PNG), ("b.pdf", PDF), ("photo.png", ELF)]

    assert upload(client, post_url, user, files).status_code == 415


def test_more_than_ten_files_are_refused(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = upload(client, post_url, user, [(f"{n}.png", PNG) for n in range(11)])

    assert response.status_code == 422
    assert response.json()["code"] == "too_many_files"


def test_request_without_files_is_refused(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = client.post(post_url, headers=user.headers, files=[("note", ("", b"hello", "text/plain"))])

    assert response.status_code == 422


def test_json_body_is_refused_as_unsupported(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    response = client.post(post_url, headers=user.headers, json={"files": ["cat.png"]})

    assert response.status_code == 415
    assert response.json()["code"] == "not_multipart"


def test_truncated_multipart_body_is_refused(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nhello'
    headers = {**user.headers, "Content-Type": "multipart/form-data; boundary=xyz"}

    assert client.post(post_url, headers=headers, content=body).status_code == 400


def test_files_are_removed_when_the_database_refuses_the_rows(
    client: TestClient, user: Person, post_url: str, monkeypatch: pytest.MonkeyPatch, nothing_written: None
) -> None:
    def refuse(_: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("the database went away"))

    monkeypatch.setattr(Session, "commit", refuse)

    with pytest.raises(OperationalError):
        upload(client, post_url, user, [("a.png", PNG), ("b.pdf", PDF)])


# --- names -------------------------------------------------------------------------------------


def test_path_components_are_dropped_from_the_name(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [("C:\\Users\\minji\\photos/cat.png", PNG)])

    assert response.json()[0]["filename"] == "cat.png"


def test_control_and_direction_characters_are_removed_from_the_name(
    client: TestClient, user: Person, post_url: str
) -> None:
    response = upload(client, post_url, user, [("invoice\u202egnp.exe\x1b.txt", TEXT)])

    assert response.json()[0]["filename"] == "invoicegnp.exe.txt"


def test_a_long_name_is_capped_keeping_its_extension(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [("가" * 400 + ".png", PNG)])

    name = response.json()[0]["filename"]
    assert (len(name), name[-4:]) == (255, ".png")


def test_a_missing_name_gets_one_from_the_type(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [("", PDF)])

    assert response.json()[0]["filename"] == "attachment.pdf"


@pytest.mark.parametrize(
    ("name", "data"),
    [("notes.png", TEXT), ("scan.png", PDF), ("cat.jpg", PNG), ("photo.pdf", JPEG), ("doc.zip", TEXT)],
    ids=["text-as-png", "pdf-as-png", "png-as-jpg", "jpeg-as-pdf", "text-as-zip"],
)
def test_a_name_claiming_another_allowed_type_is_refused_as_extension_mismatch(
    client: TestClient, user: Person, post_url: str, nothing_written: None, name: str, data: bytes
) -> None:
    response = upload(client, post_url, user, [(name, data)])

    assert response.status_code == 415
    assert response.json()["code"] == "extension_mismatch"
    assert name in response.json()["detail"]


def test_a_later_mismatched_name_refuses_the_whole_request(
    client: TestClient, user: Person, post_url: str, nothing_written: None
) -> None:
    files = [("a.png", PNG), ("notes.txt", TEXT), ("fake.gif", TEXT)]

    assert upload(client, post_url, user, files).status_code == 415


def test_the_claimed_extension_is_compared_ignoring_case(
    client: TestClient, user: Person, post_url: str
) -> None:
    assert upload(client, post_url, user, [("CAT.PNG", PNG), ("Photo.JPEG", JPEG)]).status_code == 201
    assert upload(client, post_url, user, [("NOTES.PNG", TEXT)]).status_code == 415


@pytest.mark.parametrize("name", ["xss.html", "logo.svg", "app.js", "setup.exe", "page.HTM", "run.sh"])
def test_text_under_a_non_text_extension_is_stored_and_served_with_txt_appended(
    client: TestClient, user: Person, post_url: str, name: str
) -> None:
    [item] = upload(client, post_url, user, [(name, TEXT)], header_type="text/html").json()

    response = client.get(item["url"], headers=user.headers)

    assert (item["filename"], download_name(response)) == (f"{name}.txt", f"{name}.txt")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("name", ["notes.txt", "README.md", "data.csv", "2026 회의록.TXT"])
def test_text_under_a_text_extension_keeps_its_name(
    client: TestClient, user: Person, post_url: str, name: str
) -> None:
    assert upload(client, post_url, user, [(name, TEXT)]).json()[0]["filename"] == name


def test_a_name_without_an_extension_gets_the_one_of_its_type(
    client: TestClient, user: Person, post_url: str
) -> None:
    response = upload(client, post_url, user, [("README", TEXT), ("photo", PNG)])

    assert [item["filename"] for item in response.json()] == ["README.txt", "photo.png"]


def test_a_binary_file_under_a_foreign_extension_gets_its_own_appended(
    client: TestClient, user: Person, post_url: str
) -> None:
    """A PNG can be an HTML polyglot: saved as page.html it would open as a page."""
    response = upload(client, post_url, user, [("page.html", PNG), ("tool.jar", ZIP)])

    assert [item["filename"] for item in response.json()] == ["page.html.png", "tool.jar.zip"]


def test_office_documents_keep_their_names(client: TestClient, user: Person, post_url: str) -> None:
    """.docx, .xlsx, .odt and their kind are ZIP archives inside."""
    names = ["보고서.docx", "budget.xlsx", "slides.pptx", "회의록.odt"]

    response = upload(client, post_url, user, [(name, ZIP) for name in names])

    assert [item["filename"] for item in response.json()] == names


def test_an_appended_extension_keeps_the_name_within_255_characters(
    client: TestClient, user: Person, post_url: str
) -> None:
    response = upload(client, post_url, user, [("가" * 300 + ".html", TEXT)])

    name = response.json()[0]["filename"]
    assert (len(name), name[-4:]) == (255, ".txt")


def test_an_attachment_stored_earlier_under_a_misleading_name_is_served_with_a_fitting_one(
    client: TestClient, post: models.Post, user: Person
) -> None:
    attachment = _attachment_row(post, user, original_name="xss.html", content=TEXT)

    response = client.get(f"{API}/attachments/{attachment.id}", headers=user.headers)

    assert download_name(response) == "xss.html.txt"


def test_a_decomposed_korean_name_is_stored_composed(client: TestClient, user: Person, post_url: str) -> None:
    response = upload(client, post_url, user, [(unicodedata.normalize("NFD", "사진.png"), PNG)])

    assert response.json()[0]["filename"] == "사진.png"


# --- downloading -------------------------------------------------------------------------------


def test_download_returns_the_identical_bytes(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = client.get(str(uploaded["url"]), headers=user.headers)

    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stored_attachment(int(str(uploaded["id"]))).sha256
    assert response.content == PNG


def test_download_serves_the_stored_type_as_an_attachment_without_sniffing(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = client.get(str(uploaded["url"]), headers=user.headers)

    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("attachment;")


def test_another_reader_of_the_board_may_download(
    client: TestClient, other_user: Person, uploaded: dict[str, object]
) -> None:
    assert client.get(str(uploaded["url"]), headers=other_user.headers).status_code == 200


def test_korean_filename_downloads_with_its_name_intact(
    client: TestClient, user: Person, post_url: str
) -> None:
    name = "2026년 마당 보고서 (최종).pdf"
    [item] = upload(client, post_url, user, [(name, PDF)]).json()

    response = client.get(item["url"], headers=user.headers)

    assert download_name(response) == name


def test_download_offers_an_ascii_fallback_name(client: TestClient, user: Person, post_url: str) -> None:
    [item] = upload(client, post_url, user, [("보고서.pdf", PDF)]).json()

    response = client.get(item["url"], headers=user.headers)

    assert 'filename="attachment.pdf"' in response.headers["content-disposition"]


def test_quotes_in_a_name_survive_the_round_trip(client: TestClient, user: Person, post_url: str) -> None:
    [item] = upload(client, post_url, user, [('say "hi".txt', TEXT)]).json()

    response = client.get(item["url"], headers=user.headers)

    assert (item["filename"], download_name(response)) == ('say "hi".txt', 'say "hi".txt')


def test_comment_attachment_downloads(client: TestClient, user: Person, comment_url: str) -> None:
    [item] = upload(client, comment_url, user, [("notes.txt", TEXT)]).json()

    response = client.get(item["url"], headers=user.headers)

    assert (response.content, response.headers["content-type"]) == (TEXT, "text/plain; charset=utf-8")


def test_user_without_access_gets_403_on_a_restricted_boards_attachment(
    client: TestClient,
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    user: Person,
    other_user: Person,
) -> None:
    restricted = make_board("운영진", is_public=False, members=(user,))
    post = make_post(restricted, user)
    [item] = upload(client, f"{API}/posts/{post.id}/attachments", user, [("cat.png", PNG)]).json()

    assert client.get(item["url"], headers=other_user.headers).status_code == 403


def test_hidden_posts_attachment_is_404_to_readers(
    client: TestClient,
    make_post: Callable[..., models.Post],
    board: models.Board,
    user: Person,
    other_user: Person,
) -> None:
    hidden = make_post(board, user, is_visible=False)
    attachment = _attachment_row(hidden, user)

    assert client.get(f"{API}/attachments/{attachment.id}", headers=other_user.headers).status_code == 404


def test_hidden_posts_attachment_is_404_to_its_author_too(
    client: TestClient, make_post: Callable[..., models.Post], board: models.Board, user: Person
) -> None:
    hidden = make_post(board, user, is_visible=False)
    attachment = _attachment_row(hidden, user)

    assert client.get(f"{API}/attachments/{attachment.id}", headers=user.headers).status_code == 404


def test_admin_downloads_a_hidden_posts_attachment(
    client: TestClient,
    make_post: Callable[..., models.Post],
    board: models.Board,
    user: Person,
    admin: Person,
) -> None:
    hidden = make_post(board, user, is_visible=False)
    attachment = _attachment_row(hidden, user)

    assert client.get(f"{API}/attachments/{attachment.id}", headers=admin.headers).content == PNG


def test_hidden_comments_attachment_is_404_to_readers(
    client: TestClient,
    make_comment: Callable[..., models.Comment],
    post: models.Post,
    user: Person,
    other_user: Person,
) -> None:
    hidden = make_comment(post, user, is_visible=False)
    attachment = _attachment_row(hidden, user)

    assert client.get(f"{API}/attachments/{attachment.id}", headers=other_user.headers).status_code == 404


def test_unknown_attachment_is_404(client: TestClient, user: Person) -> None:
    assert client.get(f"{API}/attachments/999999", headers=user.headers).status_code == 404


def test_out_of_range_attachment_id_is_422(client: TestClient, user: Person) -> None:
    assert client.get(f"{API}/attachments/{2**63}", headers=user.headers).status_code == 422


def test_download_needs_a_signed_in_user(client: TestClient, uploaded: dict[str, object]) -> None:
    assert client.get(str(uploaded["url"])).status_code == 401


def _attachment_row(
    owner: models.Post | models.Comment,
    uploader: Person,
    *,
    original_name: str = "cat.png",
    content: bytes = PNG,
) -> models.Attachment:
    """An attachment stored as the API would, for owners the API no longer lets anyone upload to
    (or as an older version of it did)."""
    storage = get_storage()
    writer = storage.create()
    writer.write(content)
    writer.commit()
    with SessionLocal() as session:
        attachment = models.Attachment(
            post_id=owner.id if isinstance(owner, models.Post) else None,
            comment_id=owner.id if isinstance(owner, models.Comment) else None,
            uploader_id=uploader.id,
            original_name=original_name,
            storage_key=writer.key,
            content_type="image/png" if content == PNG else "text/plain; charset=utf-8",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            storage_backend=storage.name,
        )
        session.add(attachment)
        session.commit()
        return attachment


# --- deleting --------------------------------------------------------------------------------


def test_uploader_deletes_an_attachment_and_its_file(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    key = stored_attachment(int(str(uploaded["id"]))).storage_key
    assert get_storage().exists(key)

    response = client.delete(str(uploaded["url"]), headers=user.headers)

    assert response.status_code == 204
    assert not get_storage().exists(key)


def test_deleted_attachment_is_404(client: TestClient, user: Person, uploaded: dict[str, object]) -> None:
    client.delete(str(uploaded["url"]), headers=user.headers)

    assert client.get(str(uploaded["url"]), headers=user.headers).status_code == 404


def test_non_uploader_cannot_delete_an_attachment(
    client: TestClient, other_user: Person, uploaded: dict[str, object]
) -> None:
    before = stored_files()

    response = client.delete(str(uploaded["url"]), headers=other_user.headers)

    assert response.status_code == 403
    assert (stored_files(), attachment_count()) == (before, 1)


def test_admin_deletes_any_attachment(client: TestClient, admin: Person, uploaded: dict[str, object]) -> None:
    before = stored_files()

    response = client.delete(str(uploaded["url"]), headers=admin.headers)

    assert response.status_code == 204
    assert (len(before - stored_files()), attachment_count()) == (1, 0)


# --- is_file_attached ----------------------------------------------------------------------------


def test_post_is_marked_as_having_files_after_an_upload(
    client: TestClient, post: models.Post, uploaded: dict[str, object]
) -> None:
    assert file_flag(models.Post, post.id) is True


def test_post_keeps_its_mark_while_an_attachment_remains(
    client: TestClient, user: Person, post: models.Post, post_url: str
) -> None:
    first, _second = upload(client, post_url, user, [("a.png", PNG), ("b.png", PNG)]).json()

    client.delete(first["url"], headers=user.headers)

    assert file_flag(models.Post, post.id) is True


def test_post_loses_its_mark_when_the_last_attachment_goes(
    client: TestClient, user: Person, post: models.Post, post_url: str
) -> None:
    first, second = upload(client, post_url, user, [("a.png", PNG), ("b.png", PNG)]).json()

    client.delete(first["url"], headers=user.headers)
    client.delete(second["url"], headers=user.headers)

    assert file_flag(models.Post, post.id) is False


def test_a_refused_upload_leaves_the_post_unmarked(
    client: TestClient, user: Person, post: models.Post, post_url: str
) -> None:
    upload(client, post_url, user, [("a.png", PNG), ("photo.png", ELF)])

    assert file_flag(models.Post, post.id) is False


def test_comment_attachment_marks_the_comment_not_the_post(
    client: TestClient, user: Person, post: models.Post, comment: models.Comment, comment_url: str
) -> None:
    upload(client, comment_url, user, [("cat.png", PNG)])

    assert (file_flag(models.Comment, comment.id), file_flag(models.Post, post.id)) == (True, False)


def test_comment_loses_its_mark_when_its_attachment_goes(
    client: TestClient, user: Person, comment: models.Comment, comment_url: str
) -> None:
    [item] = upload(client, comment_url, user, [("cat.png", PNG)]).json()

    client.delete(item["url"], headers=user.headers)

    assert file_flag(models.Comment, comment.id) is False


# --- streaming -------------------------------------------------------------------------------


def multipart(files: list[FileSpec], boundary: str = "madang-boundary") -> tuple[bytes, str]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_an_oversized_file_is_refused_as_it_streams_in_never_written_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)
    storage = LocalStorage(tmp_path)
    body, content_type = multipart([("big.txt", b"a" * (4 * MIB))])
    received = Upload(content_type, storage=storage)
    chunk = 64 * 1024
    fed = 0

    with pytest.raises(PayloadTooLarge):
        for start in range(0, len(body), chunk):
            fed += chunk
            received.feed(body[start : start + chunk])
    on_disk = max(path.stat().st_size for path in tmp_path.rglob("*") if path.is_file())
    received.close()

    assert fed <= MIB + 2 * chunk  # stopped reading at the limit, not after 4 MB
    assert on_disk <= MIB
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


# --- byte ranges (Range, RFC 9110), on each backend --------------------------------------------


def ranged(
    client: TestClient, user: Person, uploaded: dict[str, object], value: str, **headers: str
) -> Response:
    return client.get(str(uploaded["url"]), headers={**user.headers, "Range": value, **headers})


def test_a_download_advertises_byte_ranges(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = client.get(str(uploaded["url"]), headers=user.headers)

    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{hashlib.sha256(PNG).hexdigest()}"'
    assert "content-range" not in response.headers


def test_the_first_bytes_are_answered_206(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = ranged(client, user, uploaded, "bytes=0-15")

    assert response.status_code == 206
    assert response.content == PNG[:16]
    assert response.headers["content-range"] == f"bytes 0-15/{len(PNG)}"
    assert response.headers["content-length"] == "16"
    assert response.headers["content-type"] == "image/png"
    assert download_name(response) == "cat.png"


def test_a_middle_range_is_answered(client: TestClient, user: Person, uploaded: dict[str, object]) -> None:
    response = ranged(client, user, uploaded, "bytes=100-199")

    assert (response.status_code, response.content) == (206, PNG[100:200])
    assert response.headers["content-range"] == f"bytes 100-199/{len(PNG)}"


def test_a_suffix_range_is_the_last_bytes(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = ranged(client, user, uploaded, "bytes=-10")

    assert (response.status_code, response.content) == (206, PNG[-10:])
    assert response.headers["content-range"] == f"bytes {len(PNG) - 10}-{len(PNG) - 1}/{len(PNG)}"


def test_an_open_ended_range_runs_to_the_end(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = ranged(client, user, uploaded, "bytes=2000-")

    assert (response.status_code, response.content) == (206, PNG[2000:])
    assert response.headers["content-length"] == str(len(PNG) - 2000)


def test_a_range_past_the_end_is_cut_at_the_end(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    response = ranged(client, user, uploaded, f"bytes={len(PNG) - 5}-{len(PNG) + 500}")

    assert (response.status_code, response.content) == (206, PNG[-5:])
    assert response.headers["content-range"] == f"bytes {len(PNG) - 5}-{len(PNG) - 1}/{len(PNG)}"


@pytest.mark.parametrize("value", ["bytes=999999-", "bytes=-0"])
def test_a_range_outside_the_file_is_416(
    client: TestClient, user: Person, uploaded: dict[str, object], value: str
) -> None:
    response = ranged(client, user, uploaded, value)

    assert response.status_code == 416
    assert response.json()["code"] == "range_not_satisfiable"
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"


@pytest.mark.parametrize(
    "value", ["bytes=0-1,5-6", "bytes=10-5", "items=0-1", "bytes=abc", "bytes=-", "bytes=" + "9" * 30 + "-"]
)
def test_several_ranges_or_an_unreadable_header_get_the_whole_file(
    client: TestClient, user: Person, uploaded: dict[str, object], value: str
) -> None:
    response = ranged(client, user, uploaded, value)

    assert (response.status_code, response.content) == (200, PNG)
    assert "content-range" not in response.headers


def test_if_range_with_another_etag_gets_the_whole_file(
    client: TestClient, user: Person, uploaded: dict[str, object]
) -> None:
    stale = ranged(client, user, uploaded, "bytes=0-9", **{"If-Range": '"an-older-version"'})
    current = ranged(
        client, user, uploaded, "bytes=0-9", **{"If-Range": f'"{hashlib.sha256(PNG).hexdigest()}"'}
    )

    assert (stale.status_code, stale.content) == (200, PNG)
    assert (current.status_code, current.content) == (206, PNG[:10])


def test_a_range_is_asked_for_only_after_the_access_check(
    client: TestClient,
    make_user: Callable[..., Person],
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    user: Person,
) -> None:
    restricted = make_board("비밀게시판", is_public=False, members=(user,))
    post = make_post(restricted, user)
    [item] = upload(client, f"{API}/posts/{post.id}/attachments", user, [("cat.png", PNG)]).json()
    outsider = make_user("outsider")

    response = ranged(client, outsider, item, "bytes=0-9")

    assert response.status_code == 403
