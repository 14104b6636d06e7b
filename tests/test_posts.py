"""Posts on a board: write, read, list (paging, sorting, search), edit, soft delete."""

from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

import models
from config import settings
from database import SessionLocal
from tests.conftest import Person

pytestmark = pytest.mark.db  # paging, sorting, LIKE search and its escaping, lengths, stored dates

API = settings.API_PREFIX
MakePost = Callable[..., models.Post]


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("free talk")


def posts_url(board: models.Board, **params: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{API}/boards/{board.id}/posts" + (f"?{query}" if query else "")


def list_ids(client: TestClient, person: Person, url: str) -> list[int]:
    response = client.get(url, headers=person.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def set_columns(post: models.Post, **values: object) -> None:
    with SessionLocal() as session:
        session.execute(update(models.Post).where(models.Post.id == post.id).values(**values))
        session.commit()


# --- writing ------------------------------------------------------------------------------


def test_user_can_write_a_post_on_a_public_board(
    client: TestClient, user: Person, board: models.Board
) -> None:
    response = client.post(
        posts_url(board),
        json={"name": "질문 있습니다", "content": "마당에 처음 왔어요."},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["content"], body["board_id"]) == (
        "질문 있습니다",
        "마당에 처음 왔어요.",
        board.id,
    )
    assert body["author"] == {"id": user.id, "name": user.name}


def test_new_post_starts_with_no_views_likes_comments_or_files(
    client: TestClient, user: Person, board: models.Board
) -> None:
    body = client.post(
        posts_url(board), json={"name": "hello", "content": "world"}, headers=user.headers
    ).json()
    counts = [body[key] for key in ("number_of_view", "number_of_like", "number_of_comment")]
    assert counts == [0, 0, 0]
    assert (body["is_file_attached"], body["attachments"], body["liked_by_me"]) == (False, [], False)


def test_two_posts_may_share_a_title(
    client: TestClient, user: Person, other_user: Person, board: models.Board
) -> None:
    for person in (user, other_user):
        response = client.post(
            posts_url(board), json={"name": "질문 있습니다", "content": "x"}, headers=person.headers
        )
        assert response.status_code == 201


def test_title_is_stored_without_surrounding_spaces(
    client: TestClient, user: Person, board: models.Board
) -> None:
    body = client.post(
        posts_url(board), json={"name": "  hello  ", "content": "x"}, headers=user.headers
    ).json()
    assert body["name"] == "hello"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 65, "content": "text"},
        {"name": "", "content": "text"},
        {"name": "   ", "content": "text"},
        {"name": "title", "content": ""},
        {"name": "title", "content": " \n "},
        {"name": "title", "content": "x" * (settings.POST_CONTENT_MAX_CHARS + 1)},
        {"name": "title"},
        {"name": "title", "content": "text", "board_id": 1},
    ],
    ids=[
        "title-too-long",
        "title-empty",
        "title-blank",
        "content-empty",
        "content-blank",
        "content-too-long",
        "content-missing",
        "unknown-field",
    ],
)
def test_invalid_post_is_refused_and_nothing_is_written(
    client: TestClient, user: Person, board: models.Board, body: dict[str, object]
) -> None:
    response = client.post(posts_url(board), json=body, headers=user.headers)
    assert response.status_code == 422
    with SessionLocal() as session:
        assert session.scalar(select(models.Post.id)) is None


def test_text_that_is_not_unicode_is_422_not_a_server_error(
    client: TestClient, user: Person, board: models.Board
) -> None:
    # Valid JSON (a lone surrogate escape) that no database column can store.
    raw = '{"name": "title", "content": "\\ud800 lone surrogate"}'
    headers = {**user.headers, "Content-Type": "application/json"}
    assert client.post(posts_url(board), content=raw, headers=headers).status_code == 422


def test_content_of_the_maximum_length_is_accepted(
    client: TestClient, user: Person, board: models.Board
) -> None:
    content = "가" * settings.POST_CONTENT_MAX_CHARS
    response = client.post(posts_url(board), json={"name": "long", "content": content}, headers=user.headers)
    assert response.status_code == 201
    assert response.json()["content"] == content


def test_posting_to_a_missing_board_is_404(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/boards/999999/posts", json={"name": "a", "content": "b"}, headers=user.headers
    )
    assert response.status_code == 404


def test_anonymous_visitor_cannot_post(client: TestClient, board: models.Board) -> None:
    assert client.post(posts_url(board), json={"name": "a", "content": "b"}).status_code == 401


# --- reading ------------------------------------------------------------------------------


def test_reader_gets_the_post_with_content_and_author(
    client: TestClient, user: Person, other_user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, name="title", content="body")
    body = client.get(f"{API}/posts/{post.id}", headers=other_user.headers).json()
    assert (body["id"], body["name"], body["content"]) == (post.id, "title", "body")
    assert body["author"] == {"id": user.id, "name": user.name}
    assert body["liked_by_me"] is False


def test_post_detail_lists_its_attachments(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, is_file_attached=True)
    with SessionLocal() as session:
        for index, name in enumerate(["사진.png", "notes.pdf"]):
            session.add(
                models.Attachment(
                    post_id=post.id,
                    uploader_id=user.id,
                    original_name=name,
                    storage_key=f"key{index}",
                    content_type="application/octet-stream",
                    size=10 + index,
                    sha256="0" * 64,
                )
            )
        session.commit()
    attachments = client.get(f"{API}/posts/{post.id}", headers=user.headers).json()["attachments"]
    assert [(a["filename"], a["size"]) for a in attachments] == [("사진.png", 10), ("notes.pdf", 11)]
    assert attachments[0]["url"] == f"{API}/attachments/{attachments[0]['id']}"


def test_missing_post_is_404(client: TestClient, user: Person) -> None:
    assert client.get(f"{API}/posts/999999", headers=user.headers).status_code == 404


def test_post_id_beyond_the_column_range_is_422(client: TestClient, user: Person) -> None:
    assert client.get(f"{API}/posts/{2**63}", headers=user.headers).status_code == 422


def test_deleted_author_is_still_shown_with_id_and_name(
    client: TestClient, user: Person, other_user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, other_user)
    with SessionLocal() as session:
        session.execute(
            update(models.User)
            .where(models.User.id == other_user.id)
            .values(
                name=f"deleted-user-{other_user.id}", email=None, deleted_date=datetime.now().astimezone()
            )
        )
        session.commit()
    expected = {"id": other_user.id, "name": f"deleted-user-{other_user.id}"}
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).json()["author"] == expected
    assert client.get(posts_url(board), headers=user.headers).json()["items"][0]["author"] == expected


# --- listing ------------------------------------------------------------------------------


def test_list_shows_newest_first_with_author_counts_and_no_content(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    older = make_post(board, user, name="older")
    newer = make_post(board, user, name="newer", number_of_view=3, number_of_like=2, number_of_comment=1)
    page = client.get(posts_url(board), headers=user.headers).json()
    assert [item["id"] for item in page["items"]] == [newer.id, older.id]
    first = page["items"][0]
    assert first["author"] == {"id": user.id, "name": user.name}
    assert (first["number_of_view"], first["number_of_like"], first["number_of_comment"]) == (3, 2, 1)
    assert "content" not in first
    assert set(first) >= {"board_id", "create_date", "update_date", "is_file_attached"}


def test_list_shows_only_the_boards_own_posts(
    client: TestClient,
    user: Person,
    board: models.Board,
    make_board: Callable[..., models.Board],
    make_post: MakePost,
) -> None:
    mine = make_post(board, user)
    make_post(make_board("elsewhere"), user)
    assert list_ids(client, user, posts_url(board)) == [mine.id]


def test_list_pages_with_offset_and_limit(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    ids = [make_post(board, user, name=f"post {n}").id for n in range(5)]
    page = client.get(posts_url(board, offset=1, limit=2), headers=user.headers).json()
    assert [item["id"] for item in page["items"]] == [ids[3], ids[2]]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)


def test_page_past_the_end_is_empty_with_the_total(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    make_post(board, user)
    page = client.get(posts_url(board, offset=10), headers=user.headers).json()
    assert (page["items"], page["total"]) == ([], 1)


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"offset": -1}, {"sort": "random"}])
def test_bad_list_parameters_are_422(
    client: TestClient, user: Person, board: models.Board, params: dict
) -> None:
    assert client.get(posts_url(board, **params), headers=user.headers).status_code == 422


@pytest.mark.parametrize(
    ("sort", "column"),
    [("views", "number_of_view"), ("likes", "number_of_like"), ("comments", "number_of_comment")],
)
def test_sort_puts_the_highest_count_first_and_breaks_ties_newest_first(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost, sort: str, column: str
) -> None:
    low = make_post(board, user, **{column: 1})
    high = make_post(board, user, **{column: 9})
    tie_old = make_post(board, user, **{column: 5})
    tie_new = make_post(board, user, **{column: 5})
    expected = [high.id, tie_new.id, tie_old.id, low.id]
    assert list_ids(client, user, posts_url(board, sort=sort)) == expected


def test_sorted_pages_do_not_repeat_or_skip_posts_with_equal_counts(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    ids = {make_post(board, user, number_of_like=7).id for _ in range(7)}
    seen = [
        post_id
        for offset in range(0, 7, 2)
        for post_id in list_ids(client, user, posts_url(board, sort="likes", offset=offset, limit=2))
    ]
    assert sorted(seen) == sorted(ids)


def test_search_matches_title_or_content_ignoring_case(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    in_title = make_post(board, user, name="FastAPI tips", content="nothing")
    in_content = make_post(board, user, name="other", content="I like fastapi a lot")
    make_post(board, user, name="unrelated", content="django")
    assert list_ids(client, user, posts_url(board, q="fAsTaPi")) == [in_content.id, in_title.id]


def test_search_finds_korean_text(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    hit = make_post(board, user, name="주말 모임", content="마당에서 만나요")
    make_post(board, user, name="평일", content="회의")
    response = client.get(f"{API}/boards/{board.id}/posts", params={"q": "마당"}, headers=user.headers)
    assert [item["id"] for item in response.json()["items"]] == [hit.id]


@pytest.mark.parametrize("q", ["%", "_", "\\"])
def test_search_treats_like_wildcards_as_plain_characters(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost, q: str
) -> None:
    hit = make_post(board, user, name=f"100{q} sure")
    make_post(board, user, name="plain title")
    response = client.get(f"{API}/boards/{board.id}/posts", params={"q": q}, headers=user.headers)
    assert [item["id"] for item in response.json()["items"]] == [hit.id]


def test_search_total_counts_only_matches(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    for n in range(3):
        make_post(board, user, name=f"apple {n}")
    make_post(board, user, name="banana")
    assert client.get(posts_url(board, q="apple", limit=1), headers=user.headers).json()["total"] == 3


def test_blank_search_lists_everything(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    make_post(board, user)
    response = client.get(f"{API}/boards/{board.id}/posts", params={"q": "   "}, headers=user.headers)
    assert response.json()["total"] == 1


def test_search_longer_than_100_characters_is_422(
    client: TestClient, user: Person, board: models.Board
) -> None:
    response = client.get(f"{API}/boards/{board.id}/posts", params={"q": "x" * 101}, headers=user.headers)
    assert response.status_code == 422


# --- editing and deleting -----------------------------------------------------------------


def test_author_can_edit_title_and_content(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, name="old", content="old text")
    response = client.patch(
        f"{API}/posts/{post.id}", json={"name": "new", "content": "new text"}, headers=user.headers
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["content"]) == ("new", "new text")


def test_edit_moves_the_update_date_but_not_the_create_date(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user)
    body = client.patch(f"{API}/posts/{post.id}", json={"content": "changed"}, headers=user.headers).json()
    assert body["update_date"] > body["create_date"]
    assert datetime.fromisoformat(body["create_date"]) == post.create_date


def test_edit_with_an_invalid_title_is_422_and_changes_nothing(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, name="kept")
    assert (
        client.patch(f"{API}/posts/{post.id}", json={"name": "x" * 65}, headers=user.headers).status_code
        == 422
    )
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).json()["name"] == "kept"


def test_title_cannot_be_set_to_null(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user)
    assert (
        client.patch(f"{API}/posts/{post.id}", json={"name": None}, headers=user.headers).status_code == 422
    )


def test_author_can_delete_a_post_and_then_nobody_but_admins_sees_it(
    client: TestClient,
    user: Person,
    other_user: Person,
    admin: Person,
    board: models.Board,
    make_post: MakePost,
) -> None:
    post = make_post(board, user)
    assert client.delete(f"{API}/posts/{post.id}", headers=user.headers).status_code == 204
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).status_code == 404
    assert client.get(f"{API}/posts/{post.id}", headers=other_user.headers).status_code == 404
    assert client.get(f"{API}/posts/{post.id}", headers=admin.headers).status_code == 200


def test_deleted_post_keeps_its_row(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user)
    client.delete(f"{API}/posts/{post.id}", headers=user.headers)
    with SessionLocal() as session:
        assert session.scalar(select(models.Post.is_visible).where(models.Post.id == post.id)) is False


def test_deleted_post_leaves_the_list_and_its_total(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    kept = make_post(board, user)
    gone = make_post(board, user)
    client.delete(f"{API}/posts/{gone.id}", headers=user.headers)
    page = client.get(posts_url(board), headers=user.headers).json()
    assert ([item["id"] for item in page["items"]], page["total"]) == ([kept.id], 1)


def test_admin_list_includes_deleted_posts_marked_invisible(
    client: TestClient, user: Person, admin: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, is_visible=False)
    page = client.get(posts_url(board), headers=admin.headers).json()
    assert [(item["id"], item["is_visible"]) for item in page["items"]] == [(post.id, False)]


def test_admin_can_restore_a_deleted_post(
    client: TestClient, user: Person, admin: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, is_visible=False)
    response = client.patch(f"{API}/posts/{post.id}", json={"is_visible": True}, headers=admin.headers)
    assert response.status_code == 200
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).status_code == 200


def test_author_cannot_hide_or_restore_through_patch(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user)
    response = client.patch(f"{API}/posts/{post.id}", json={"is_visible": False}, headers=user.headers)
    assert response.status_code == 403
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).status_code == 200
