"""The board decides who reaches its posts and comments, on every path: restricted boards
are 403 to users off their access list, hidden boards, posts and comments are 404 to everyone
but administrators, only authors and administrators change a post or comment, and banned users
reach nothing."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import models
from config import settings
from database import SessionLocal
from tests.conftest import Person

pytestmark = pytest.mark.db  # the access rule's conditions on posts, comments and search

API = settings.API_PREFIX


@dataclass
class World:
    board: models.Board
    post: models.Post
    comment: models.Comment


@pytest.fixture
def make_world(
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    make_comment: Callable[..., models.Comment],
    user: Person,
) -> Callable[..., World]:
    """A board with one post by `user` and one comment by `user` on it."""

    def make(*, is_public: bool = True, board_visible: bool = True, post_visible: bool = True) -> World:
        board = make_board("the board", is_public=is_public, is_visible=board_visible, members=(user,))
        post = make_post(board, user, is_visible=post_visible)
        return World(board, post, make_comment(post, user))

    return make


@pytest.fixture
def outsider(make_user: Callable[..., Person]) -> Person:
    return make_user("outsider")


def every_path(world: World) -> list[tuple[str, str, dict | None]]:
    """Every way into a board's posts and comments: (method, url, JSON body)."""
    post, comment = f"{API}/posts/{world.post.id}", f"{API}/comments/{world.comment.id}"
    return [
        ("GET", f"{API}/boards/{world.board.id}/posts", None),
        ("GET", f"{API}/boards/{world.board.id}/posts?q=post", None),
        ("POST", f"{API}/boards/{world.board.id}/posts", {"name": "n", "content": "c"}),
        ("GET", post, None),
        ("PATCH", post, {"name": "changed"}),
        ("DELETE", post, None),
        ("PUT", f"{post}/like", None),
        ("DELETE", f"{post}/like", None),
        ("GET", f"{post}/comments", None),
        ("POST", f"{post}/comments", {"content": "c"}),
        ("PATCH", comment, {"content": "changed"}),
        ("DELETE", comment, None),
    ]


PATH_NAMES = [
    "list",
    "search",
    "create-post",
    "read-post",
    "edit-post",
    "delete-post",
    "like",
    "unlike",
    "list-comments",
    "create-comment",
    "edit-comment",
    "delete-comment",
]
POST_PATHS = PATH_NAMES[3:]  # the paths that name the post or its comment


def call(client: TestClient, person: Person, method: str, url: str, body: dict | None) -> int:
    return client.request(method, url, json=body, headers=person.headers).status_code


def unchanged(world: World) -> bool:
    """Nothing was written: the post and comment are as made, no post, like or view was added."""
    with SessionLocal() as session:
        post = session.get(models.Post, world.post.id)
        comment = session.get(models.Comment, world.comment.id)
        assert post is not None and comment is not None
        return (
            (post.name, post.is_visible, post.number_of_like, post.number_of_view, post.number_of_comment)
            == (world.post.name, world.post.is_visible, 0, 0, 1)
            and (comment.content, comment.is_visible) == (world.comment.content, True)
            and session.scalar(select(models.Post.id).where(models.Post.id != post.id)) is None
            and session.scalar(select(models.PostLike.user_id)) is None
        )


# --- restricted boards --------------------------------------------------------------------


@pytest.mark.parametrize("path", range(len(PATH_NAMES)), ids=PATH_NAMES)
def test_user_without_access_gets_403_on_every_path_into_a_restricted_board(
    client: TestClient, make_world: Callable[..., World], outsider: Person, path: int
) -> None:
    world = make_world(is_public=False)
    assert call(client, outsider, *every_path(world)[path]) == 403
    assert unchanged(world)


@pytest.mark.parametrize("path", [0, 3, 8], ids=["list", "read-post", "list-comments"])
def test_member_of_a_restricted_board_reads_it(
    client: TestClient, make_world: Callable[..., World], other_user: Person, admin: Person, path: int
) -> None:
    world = make_world(is_public=False)
    client.put(
        f"{API}/admin/users/{other_user.id}/boards",
        json={"board_ids": [world.board.id]},
        headers=admin.headers,
    )
    assert call(client, other_user, *every_path(world)[path]) == 200


@pytest.mark.parametrize("path", [0, 3, 8], ids=["list", "read-post", "list-comments"])
def test_admin_reads_a_restricted_board_without_being_listed(
    client: TestClient, make_world: Callable[..., World], admin: Person, path: int
) -> None:
    world = make_world(is_public=False)
    assert call(client, admin, *every_path(world)[path]) == 200


def test_outsider_post_list_refusal_says_why(
    client: TestClient, make_world: Callable[..., World], outsider: Person
) -> None:
    world = make_world(is_public=False)
    response = client.get(f"{API}/boards/{world.board.id}/posts", headers=outsider.headers)
    assert response.json()["code"] == "no_board_access"


# --- hidden boards, posts, comments -------------------------------------------------------


@pytest.mark.parametrize("path", range(len(PATH_NAMES)), ids=PATH_NAMES)
def test_hidden_board_is_404_on_every_path_even_to_its_members(
    client: TestClient, make_world: Callable[..., World], user: Person, path: int
) -> None:
    world = make_world(is_public=False, board_visible=False)
    assert call(client, user, *every_path(world)[path]) == 404
    assert unchanged(world)


@pytest.mark.parametrize("path", range(len(POST_PATHS)), ids=POST_PATHS)
def test_hidden_post_is_404_to_its_boards_readers_on_every_path(
    client: TestClient, make_world: Callable[..., World], other_user: Person, path: int
) -> None:
    world = make_world(post_visible=False)
    assert call(client, other_user, *every_path(world)[3 + path]) == 404
    assert unchanged(world)


@pytest.mark.parametrize("path", range(len(POST_PATHS)), ids=POST_PATHS)
def test_hidden_post_is_404_even_to_its_author(
    client: TestClient, make_world: Callable[..., World], user: Person, path: int
) -> None:
    world = make_world(post_visible=False)
    assert call(client, user, *every_path(world)[3 + path]) == 404


def test_hidden_post_is_missing_from_the_list_and_its_total(
    client: TestClient, make_world: Callable[..., World], other_user: Person
) -> None:
    world = make_world(post_visible=False)
    page = client.get(f"{API}/boards/{world.board.id}/posts", headers=other_user.headers).json()
    assert (page["items"], page["total"]) == ([], 0)


def test_hidden_post_is_missing_from_search(
    client: TestClient, make_world: Callable[..., World], other_user: Person
) -> None:
    world = make_world(post_visible=False)
    page = client.get(
        f"{API}/boards/{world.board.id}/posts", params={"q": world.post.name}, headers=other_user.headers
    ).json()
    assert page["total"] == 0


@pytest.mark.parametrize("path", [3, 8], ids=["read-post", "list-comments"])
def test_admin_reads_a_hidden_post(
    client: TestClient, make_world: Callable[..., World], admin: Person, path: int
) -> None:
    world = make_world(post_visible=False)
    assert call(client, admin, *every_path(world)[path]) == 200


def test_admin_reads_posts_on_a_hidden_board(
    client: TestClient, make_world: Callable[..., World], admin: Person
) -> None:
    world = make_world(board_visible=False)
    page = client.get(f"{API}/boards/{world.board.id}/posts", headers=admin.headers).json()
    assert [item["id"] for item in page["items"]] == [world.post.id]


def test_hidden_comment_is_404_to_readers(
    client: TestClient, make_world: Callable[..., World], user: Person, other_user: Person
) -> None:
    world = make_world()
    client.delete(f"{API}/comments/{world.comment.id}", headers=user.headers)
    response = client.patch(
        f"{API}/comments/{world.comment.id}", json={"content": "x"}, headers=other_user.headers
    )
    assert response.status_code == 404


# --- authors and administrators -----------------------------------------------------------


@pytest.mark.parametrize(
    "path", [4, 5, 10, 11], ids=["edit-post", "delete-post", "edit-comment", "delete-comment"]
)
def test_reader_who_is_not_the_author_cannot_change_or_delete(
    client: TestClient, make_world: Callable[..., World], other_user: Person, path: int
) -> None:
    world = make_world()
    assert call(client, other_user, *every_path(world)[path]) == 403
    assert unchanged(world)


@pytest.mark.parametrize(
    ("path", "status"),
    [(4, 200), (5, 204), (10, 200), (11, 204)],
    ids=["edit-post", "delete-post", "edit-comment", "delete-comment"],
)
def test_admin_can_change_and_delete_other_peoples_posts_and_comments(
    client: TestClient, make_world: Callable[..., World], admin: Person, path: int, status: int
) -> None:
    world = make_world()
    assert call(client, admin, *every_path(world)[path]) == status
    assert not unchanged(world)


def test_author_edit_is_refused_once_the_author_loses_board_access(
    client: TestClient, make_world: Callable[..., World], user: Person, admin: Person
) -> None:
    world = make_world(is_public=False)
    client.put(f"{API}/admin/users/{user.id}/boards", json={"board_ids": []}, headers=admin.headers)
    assert call(client, user, *every_path(world)[4]) == 403


# --- banned users -------------------------------------------------------------------------


@pytest.mark.parametrize("path", range(len(PATH_NAMES)), ids=PATH_NAMES)
def test_banned_user_can_neither_read_nor_write(
    client: TestClient, make_world: Callable[..., World], user: Person, admin: Person, path: int
) -> None:
    world = make_world()
    client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
    response = client.request(
        *every_path(world)[path][:2], json=every_path(world)[path][2], headers=user.headers
    )
    assert (response.status_code, response.json()["code"]) == (403, "banned")
    assert unchanged(world)
