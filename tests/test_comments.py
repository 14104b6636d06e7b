"""Comments on a post: write, list, edit, soft delete; the post's comment count follows."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

import models
from config import settings
from database import SessionLocal
from tests.conftest import Person

pytestmark = pytest.mark.db  # counters kept in SQL, paging

API = settings.API_PREFIX
MakeComment = Callable[..., models.Comment]


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("free talk")


@pytest.fixture
def post(board: models.Board, make_post: Callable[..., models.Post], user: Person) -> models.Post:
    return make_post(board, user)


def comments_url(post: models.Post) -> str:
    return f"{API}/posts/{post.id}/comments"


def comment_count(client: TestClient, post: models.Post, person: Person) -> int:
    response = client.get(f"{API}/posts/{post.id}", headers=person.headers)
    assert response.status_code == 200
    return response.json()["number_of_comment"]


def stored_comment_count(post: models.Post) -> int:
    with SessionLocal() as session:
        return session.scalar(select(models.Post.number_of_comment).where(models.Post.id == post.id)) or 0


def test_reader_can_comment_on_a_post(client: TestClient, post: models.Post, other_user: Person) -> None:
    response = client.post(comments_url(post), json={"content": "좋은 글이네요"}, headers=other_user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["post_id"], body["content"], body["is_file_attached"]) == (post.id, "좋은 글이네요", False)
    assert body["author"] == {"id": other_user.id, "name": other_user.name}


def test_a_new_comment_adds_one_to_the_posts_count(
    client: TestClient, post: models.Post, user: Person
) -> None:
    client.post(comments_url(post), json={"content": "first"}, headers=user.headers)
    client.post(comments_url(post), json={"content": "second"}, headers=user.headers)
    assert comment_count(client, post, user) == 2


@pytest.mark.parametrize(
    "body",
    [{"content": "x" * 257}, {"content": ""}, {"content": "   "}, {}, {"content": "hi", "post_id": 1}],
    ids=["too-long", "empty", "blank", "missing", "unknown-field"],
)
def test_invalid_comment_is_refused_and_the_count_stays(
    client: TestClient, post: models.Post, user: Person, body: dict[str, object]
) -> None:
    assert client.post(comments_url(post), json=body, headers=user.headers).status_code == 422
    assert stored_comment_count(post) == 0


def test_comment_of_256_characters_is_accepted(client: TestClient, post: models.Post, user: Person) -> None:
    response = client.post(comments_url(post), json={"content": "댓" * 256}, headers=user.headers)
    assert response.status_code == 201


def test_comments_on_a_missing_post_are_404(client: TestClient, user: Person) -> None:
    assert client.get(f"{API}/posts/999999/comments", headers=user.headers).status_code == 404
    response = client.post(f"{API}/posts/999999/comments", json={"content": "x"}, headers=user.headers)
    assert response.status_code == 404


def test_comments_are_listed_oldest_first_with_their_authors(
    client: TestClient, post: models.Post, user: Person, other_user: Person, make_comment: MakeComment
) -> None:
    first = make_comment(post, other_user, content="first")
    second = make_comment(post, user, content="second")
    page = client.get(comments_url(post), headers=user.headers).json()
    assert [(c["id"], c["content"]) for c in page["items"]] == [(first.id, "first"), (second.id, "second")]
    assert page["items"][0]["author"] == {"id": other_user.id, "name": other_user.name}
    assert page["total"] == 2


def test_comments_page_with_offset_and_limit(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    ids = [make_comment(post, user, content=f"c{n}").id for n in range(5)]
    page = client.get(comments_url(post), params={"offset": 2, "limit": 2}, headers=user.headers).json()
    assert ([c["id"] for c in page["items"]], page["total"]) == (ids[2:4], 5)


def test_comments_list_shows_only_that_posts_comments(
    client: TestClient,
    board: models.Board,
    post: models.Post,
    user: Person,
    make_post: Callable[..., models.Post],
    make_comment: MakeComment,
) -> None:
    other_post = make_post(board, user)
    mine = make_comment(post, user)
    make_comment(other_post, user)
    assert [c["id"] for c in client.get(comments_url(post), headers=user.headers).json()["items"]] == [
        mine.id
    ]


def test_author_can_edit_a_comment(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user, content="typo")
    response = client.patch(f"{API}/comments/{comment.id}", json={"content": "fixed"}, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["content"] == "fixed"
    assert response.json()["update_date"] > response.json()["create_date"]


def test_editing_a_comment_leaves_the_count_alone(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    client.patch(f"{API}/comments/{comment.id}", json={"content": "edited"}, headers=user.headers)
    assert stored_comment_count(post) == 1


def test_author_can_delete_a_comment_and_the_count_follows(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    make_comment(post, user)
    assert client.delete(f"{API}/comments/{comment.id}", headers=user.headers).status_code == 204
    assert comment_count(client, post, user) == 1


def test_deleted_comment_leaves_the_list_and_its_total(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    kept = make_comment(post, user)
    gone = make_comment(post, user)
    client.delete(f"{API}/comments/{gone.id}", headers=user.headers)
    page = client.get(comments_url(post), headers=user.headers).json()
    assert ([c["id"] for c in page["items"]], page["total"]) == ([kept.id], 1)


def test_deleted_comment_is_404_to_its_author(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    client.delete(f"{API}/comments/{comment.id}", headers=user.headers)
    assert (
        client.patch(f"{API}/comments/{comment.id}", json={"content": "x"}, headers=user.headers).status_code
        == 404
    )
    assert client.delete(f"{API}/comments/{comment.id}", headers=user.headers).status_code == 404


def test_deleting_a_comment_twice_counts_once(
    client: TestClient, post: models.Post, user: Person, admin: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    make_comment(post, user)
    client.delete(f"{API}/comments/{comment.id}", headers=user.headers)
    # An administrator still sees the deleted comment and may "delete" it again.
    assert client.delete(f"{API}/comments/{comment.id}", headers=admin.headers).status_code == 204
    assert stored_comment_count(post) == 1


def test_admin_sees_deleted_comments_marked_invisible(
    client: TestClient, post: models.Post, user: Person, admin: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user, is_visible=False)
    page = client.get(comments_url(post), headers=admin.headers).json()
    assert [(c["id"], c["is_visible"]) for c in page["items"]] == [(comment.id, False)]


def test_admin_can_restore_a_comment_and_the_count_follows(
    client: TestClient, post: models.Post, user: Person, admin: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user, is_visible=False)
    response = client.patch(f"{API}/comments/{comment.id}", json={"is_visible": True}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["is_visible"] is True
    assert stored_comment_count(post) == 1


def test_restoring_a_visible_comment_counts_nothing(
    client: TestClient, post: models.Post, user: Person, admin: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    client.patch(f"{API}/comments/{comment.id}", json={"is_visible": True}, headers=admin.headers)
    assert stored_comment_count(post) == 1


def test_admin_can_hide_a_comment_through_patch(
    client: TestClient, post: models.Post, user: Person, admin: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    client.patch(f"{API}/comments/{comment.id}", json={"is_visible": False}, headers=admin.headers)
    assert stored_comment_count(post) == 0
    assert client.get(comments_url(post), headers=user.headers).json()["total"] == 0


def test_author_cannot_hide_or_restore_through_patch(
    client: TestClient, post: models.Post, user: Person, make_comment: MakeComment
) -> None:
    comment = make_comment(post, user)
    response = client.patch(f"{API}/comments/{comment.id}", json={"is_visible": False}, headers=user.headers)
    assert response.status_code == 403
    assert stored_comment_count(post) == 1


def test_comment_by_a_deleted_account_shows_its_author(
    client: TestClient, post: models.Post, user: Person, other_user: Person, make_comment: MakeComment
) -> None:
    make_comment(post, other_user)
    with SessionLocal() as session:
        session.execute(
            update(models.User)
            .where(models.User.id == other_user.id)
            .values(name=f"deleted-user-{other_user.id}", email=None, deleted_date=datetime.now(UTC))
        )
        session.commit()
    author = client.get(comments_url(post), headers=user.headers).json()["items"][0]["author"]
    assert author == {"id": other_user.id, "name": f"deleted-user-{other_user.id}"}
