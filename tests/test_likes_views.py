"""Likes (one per user, idempotent PUT/DELETE) and views (each reader once per
VIEW_DEDUPE_MINUTES), and the counters that follow them."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

import models
from config import settings
from database import SessionLocal, utcnow
from tests.conftest import Person

pytestmark = pytest.mark.db  # counters kept in SQL, insert-or-ignore, view windows in stored dates

API = settings.API_PREFIX


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("free talk")


@pytest.fixture
def post(board: models.Board, make_post: Callable[..., models.Post], user: Person) -> models.Post:
    return make_post(board, user)


def like(client: TestClient, post: models.Post, person: Person) -> dict[str, object]:
    response = client.put(f"{API}/posts/{post.id}/like", headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


def unlike(client: TestClient, post: models.Post, person: Person) -> dict[str, object]:
    response = client.delete(f"{API}/posts/{post.id}/like", headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


def read(client: TestClient, post: models.Post, person: Person) -> dict[str, object]:
    response = client.get(f"{API}/posts/{post.id}", headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


def like_rows(post: models.Post) -> int:
    with SessionLocal() as session:
        query = select(func.count()).select_from(models.PostLike).where(models.PostLike.post_id == post.id)
        return session.scalar(query) or 0


# --- likes --------------------------------------------------------------------------------


def test_like_answers_liked_and_the_new_count(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    assert like(client, post, other_user) == {"liked": True, "number_of_like": 1}


def test_liking_twice_leaves_one_like(client: TestClient, post: models.Post, other_user: Person) -> None:
    like(client, post, other_user)
    assert like(client, post, other_user) == {"liked": True, "number_of_like": 1}
    assert like_rows(post) == 1


def test_likes_of_different_users_add_up(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    like(client, post, user)
    assert like(client, post, other_user)["number_of_like"] == 2


def test_unlike_takes_the_like_back(client: TestClient, post: models.Post, other_user: Person) -> None:
    like(client, post, other_user)
    assert unlike(client, post, other_user) == {"liked": False, "number_of_like": 0}
    assert like_rows(post) == 0


def test_unliking_without_a_like_changes_nothing(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    like(client, post, user)
    assert unlike(client, post, other_user) == {"liked": False, "number_of_like": 1}
    assert unlike(client, post, other_user) == {"liked": False, "number_of_like": 1}


def test_post_shows_whether_i_like_it(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    like(client, post, other_user)
    assert read(client, post, other_user)["liked_by_me"] is True
    assert read(client, post, user)["liked_by_me"] is False


def test_like_count_shows_in_the_list(
    client: TestClient, board: models.Board, post: models.Post, other_user: Person
) -> None:
    like(client, post, other_user)
    page = client.get(f"{API}/boards/{board.id}/posts", headers=other_user.headers).json()
    assert page["items"][0]["number_of_like"] == 1


def test_liking_a_deleted_post_is_404_and_counts_nothing(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    client.delete(f"{API}/posts/{post.id}", headers=user.headers)
    assert client.put(f"{API}/posts/{post.id}/like", headers=other_user.headers).status_code == 404
    assert like_rows(post) == 0


def test_liking_a_missing_post_is_404(client: TestClient, user: Person) -> None:
    assert client.put(f"{API}/posts/999999/like", headers=user.headers).status_code == 404


# --- views --------------------------------------------------------------------------------


def test_first_read_counts_a_view(client: TestClient, post: models.Post, other_user: Person) -> None:
    assert read(client, post, other_user)["number_of_view"] == 1


def test_reading_again_within_the_window_counts_nothing(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    read(client, post, other_user)
    assert read(client, post, other_user)["number_of_view"] == 1


def test_each_reader_counts_once(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    read(client, post, user)
    read(client, post, other_user)
    read(client, post, user)
    assert read(client, post, other_user)["number_of_view"] == 2


def test_reading_again_after_the_window_counts_again(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    read(client, post, other_user)
    long_ago = utcnow() - timedelta(minutes=settings.VIEW_DEDUPE_MINUTES + 1)
    with SessionLocal() as session:
        session.execute(update(models.PostView).values(last_viewed_date=long_ago))
        session.commit()
    assert read(client, post, other_user)["number_of_view"] == 2


def test_reading_just_inside_the_window_counts_nothing(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    read(client, post, other_user)
    recently = utcnow() - timedelta(minutes=settings.VIEW_DEDUPE_MINUTES - 1)
    with SessionLocal() as session:
        session.execute(update(models.PostView).values(last_viewed_date=recently))
        session.commit()
    assert read(client, post, other_user)["number_of_view"] == 1


def test_view_count_shows_in_the_list(
    client: TestClient, board: models.Board, post: models.Post, other_user: Person
) -> None:
    read(client, post, other_user)
    page = client.get(f"{API}/boards/{board.id}/posts", headers=other_user.headers).json()
    assert page["items"][0]["number_of_view"] == 1


def test_listing_writing_and_editing_count_no_view(
    client: TestClient, board: models.Board, user: Person
) -> None:
    created = client.post(
        f"{API}/boards/{board.id}/posts", json={"name": "a", "content": "b"}, headers=user.headers
    ).json()
    client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    edited = client.patch(f"{API}/posts/{created['id']}", json={"content": "c"}, headers=user.headers).json()
    assert (created["number_of_view"], edited["number_of_view"]) == (0, 0)


def test_a_refused_read_counts_no_view(
    client: TestClient, post: models.Post, user: Person, other_user: Person
) -> None:
    client.delete(f"{API}/posts/{post.id}", headers=user.headers)
    assert client.get(f"{API}/posts/{post.id}", headers=other_user.headers).status_code == 404
    with SessionLocal() as session:
        assert session.scalar(select(models.Post.number_of_view).where(models.Post.id == post.id)) == 0
