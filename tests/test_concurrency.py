"""Counters stay exact when many requests hit one post at the same moment (MariaDB: real row
locks, real concurrent transactions). Every request must succeed: no deadlock or lock-wait
error may reach a client."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import models
from config import settings
from database import SessionLocal
from tests.conftest import IS_MARIADB, Person

pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.skipif(not IS_MARIADB, reason="needs MariaDB (set TEST_DATABASE_URL)"),
]

API = settings.API_PREFIX
Request = Callable[[], httpx2.Response]


def all_at_once(requests: list[Request]) -> list[httpx2.Response]:
    """Runs the requests on as many threads, released together by a barrier."""
    barrier = threading.Barrier(len(requests))

    def run(request: Request) -> httpx2.Response:
        barrier.wait()
        return request()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(run, requests))


def statuses(responses: list[httpx2.Response]) -> list[int]:
    return sorted({response.status_code for response in responses})


def stored(column: object, post: models.Post) -> int:
    with SessionLocal() as session:
        return session.scalar(select(column).where(models.Post.id == post.id)) or 0


def rows_of(
    model: type[models.PostLike] | type[models.PostView] | type[models.Comment], post: models.Post
) -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.post_id == post.id)) or 0


@pytest.fixture
def post(
    make_board: Callable[..., models.Board], make_post: Callable[..., models.Post], user: Person
) -> models.Post:
    return make_post(make_board("busy"), user)


@pytest.fixture
def crowd(make_user: Callable[..., Person]) -> list[Person]:
    return [make_user(f"reader{n}") for n in range(50)]


def test_fifty_users_liking_at_once_make_fifty_likes(
    client: TestClient, post: models.Post, crowd: list[Person]
) -> None:
    url = f"{API}/posts/{post.id}/like"
    responses = all_at_once([lambda p=person: client.put(url, headers=p.headers) for person in crowd])
    assert statuses(responses) == [200]
    assert (stored(models.Post.number_of_like, post), rows_of(models.PostLike, post)) == (50, 50)


def test_one_user_liking_twenty_times_at_once_makes_one_like(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    url = f"{API}/posts/{post.id}/like"
    responses = all_at_once([lambda: client.put(url, headers=other_user.headers) for _ in range(20)])
    assert statuses(responses) == [200]
    assert {response.json()["number_of_like"] for response in responses} == {1}
    assert (stored(models.Post.number_of_like, post), rows_of(models.PostLike, post)) == (1, 1)


def test_one_user_unliking_twenty_times_at_once_removes_one_like(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    url = f"{API}/posts/{post.id}/like"
    client.put(url, headers=other_user.headers)
    responses = all_at_once([lambda: client.delete(url, headers=other_user.headers) for _ in range(20)])
    assert statuses(responses) == [200]
    assert (stored(models.Post.number_of_like, post), rows_of(models.PostLike, post)) == (0, 0)


def test_likes_and_unlikes_racing_leave_the_count_equal_to_the_likes(
    client: TestClient, post: models.Post, crowd: list[Person]
) -> None:
    url = f"{API}/posts/{post.id}/like"
    for person in crowd[:25]:
        client.put(url, headers=person.headers)
    unlikes = [lambda p=person: client.delete(url, headers=p.headers) for person in crowd[:25]]
    likes = [lambda p=person: client.put(url, headers=p.headers) for person in crowd[25:]]
    assert statuses(all_at_once(unlikes + likes)) == [200]
    assert (stored(models.Post.number_of_like, post), rows_of(models.PostLike, post)) == (25, 25)


def test_fifty_first_views_at_once_count_fifty(
    client: TestClient, post: models.Post, crowd: list[Person]
) -> None:
    url = f"{API}/posts/{post.id}"
    responses = all_at_once([lambda p=person: client.get(url, headers=p.headers) for person in crowd])
    assert statuses(responses) == [200]
    assert (stored(models.Post.number_of_view, post), rows_of(models.PostView, post)) == (50, 50)


def test_first_views_of_different_neighbouring_posts_at_once_all_count(
    client: TestClient,
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    user: Person,
    crowd: list[Person],
) -> None:
    """Each reader opens a different post, the posts made one after another (neighbouring keys
    in post_view's indexes): no reader may wait on, or deadlock with, another's first view."""
    board = make_board("neighbours")
    posts = [make_post(board, user, name=f"post {n}") for n in range(len(crowd))]
    requests = [
        lambda p=person, post=post: client.get(f"{API}/posts/{post.id}", headers=p.headers)
        for person, post in zip(crowd, posts, strict=True)
    ]
    assert statuses(all_at_once(requests)) == [200]
    counted = [(stored(models.Post.number_of_view, post), rows_of(models.PostView, post)) for post in posts]
    assert counted == [(1, 1)] * len(posts)


def test_one_user_reading_twenty_times_at_once_counts_one_view(
    client: TestClient, post: models.Post, other_user: Person
) -> None:
    url = f"{API}/posts/{post.id}"
    responses = all_at_once([lambda: client.get(url, headers=other_user.headers) for _ in range(20)])
    assert statuses(responses) == [200]
    assert stored(models.Post.number_of_view, post) == 1


def test_fifty_comments_at_once_count_fifty(
    client: TestClient, post: models.Post, crowd: list[Person]
) -> None:
    url = f"{API}/posts/{post.id}/comments"
    responses = all_at_once(
        [lambda p=person: client.post(url, json={"content": "동시에"}, headers=p.headers) for person in crowd]
    )
    assert statuses(responses) == [201]
    assert (stored(models.Post.number_of_comment, post), rows_of(models.Comment, post)) == (50, 50)


def test_likes_views_and_comments_racing_on_one_post_all_count(
    client: TestClient, post: models.Post, crowd: list[Person]
) -> None:
    base = f"{API}/posts/{post.id}"
    requests: list[Request] = []
    for person in crowd[:16]:
        requests.append(lambda p=person: client.put(f"{base}/like", headers=p.headers))
    for person in crowd[16:33]:
        requests.append(lambda p=person: client.get(base, headers=p.headers))
    for person in crowd[33:]:
        requests.append(
            lambda p=person: client.post(f"{base}/comments", json={"content": "x"}, headers=p.headers)
        )
    assert statuses(all_at_once(requests)) == [200, 201]
    counts = [stored(column, post) for column in (models.Post.number_of_like, models.Post.number_of_view)]
    assert [*counts, stored(models.Post.number_of_comment, post)] == [16, 17, 17]
