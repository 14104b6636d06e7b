"""No N+1: a page costs the same SQL statements whether it holds 1 row or 100, and a post
costs the same whether it has no attachment or many."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert

import models
from config import settings
from database import SessionLocal, engine
from tests.conftest import Person

API = settings.API_PREFIX
MakeBoard = Callable[..., models.Board]


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every SQL statement the application sends while the block runs."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def statements_for(client: TestClient, person: Person, url: str, **params: object) -> list[str]:
    with counting_statements() as statements:
        response = client.get(url, params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return statements


def seed_posts(board: models.Board, authors: list[Person], count: int) -> None:
    """`count` posts on the board, the authors taking turns (so authors differ row to row)."""
    rows = [
        {
            "board_id": board.id,
            "user_id": authors[n % len(authors)].id,
            "name": f"post {n}",
            "content": "text",
        }
        for n in range(count)
    ]
    with SessionLocal() as session:
        session.execute(insert(models.Post), rows)
        session.commit()


@pytest.fixture
def authors(make_user: Callable[..., Person]) -> list[Person]:
    return [make_user(f"author{n}") for n in range(10)]


@pytest.mark.parametrize("sort", ["latest", "views", "likes", "comments"])
def test_post_list_costs_the_same_for_1_and_100_rows(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person, sort: str
) -> None:
    small, large = make_board("small"), make_board("large")
    seed_posts(small, authors, 1)
    seed_posts(large, authors, 100)
    client.get(f"{API}/boards/{small.id}/posts", headers=user.headers)  # warm up the connection pool
    one = statements_for(client, user, f"{API}/boards/{small.id}/posts", sort=sort, limit=100)
    hundred = statements_for(client, user, f"{API}/boards/{large.id}/posts", sort=sort, limit=100)
    assert len(one) == len(hundred)


def test_post_list_page_is_one_count_and_one_select_beside_the_access_checks(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person
) -> None:
    board = make_board("board")
    seed_posts(board, authors, 100)
    client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    statements = statements_for(client, user, f"{API}/boards/{board.id}/posts", limit=100)
    post_queries = [s for s in statements if "FROM post" in s]
    assert len(post_queries) == 2
    assert sum("count(" in s.lower() for s in post_queries) == 1


def test_search_costs_the_same_for_1_and_100_rows(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person
) -> None:
    small, large = make_board("small"), make_board("large")
    seed_posts(small, authors, 1)
    seed_posts(large, authors, 100)
    client.get(f"{API}/boards/{small.id}/posts", headers=user.headers)
    one = statements_for(client, user, f"{API}/boards/{small.id}/posts", q="post", limit=100)
    hundred = statements_for(client, user, f"{API}/boards/{large.id}/posts", q="post", limit=100)
    assert len(one) == len(hundred)


def test_comment_list_costs_the_same_for_1_and_100_rows(
    client: TestClient,
    make_board: MakeBoard,
    make_post: Callable[..., models.Post],
    authors: list[Person],
    user: Person,
) -> None:
    board = make_board("board")
    small, large = make_post(board, user), make_post(board, user)
    with SessionLocal() as session:
        rows = [{"post_id": small.id, "user_id": authors[0].id, "content": "only"}]
        rows += [{"post_id": large.id, "user_id": authors[n % 10].id, "content": f"c{n}"} for n in range(100)]
        session.execute(insert(models.Comment), rows)
        session.commit()
    client.get(f"{API}/posts/{small.id}/comments", headers=user.headers)
    one = statements_for(client, user, f"{API}/posts/{small.id}/comments", limit=100)
    hundred = statements_for(client, user, f"{API}/posts/{large.id}/comments", limit=100)
    assert len(one) == len(hundred)


def test_post_detail_costs_the_same_with_no_attachment_or_many(
    client: TestClient, make_board: MakeBoard, make_post: Callable[..., models.Post], user: Person
) -> None:
    board = make_board("board")
    bare, loaded = make_post(board, user), make_post(board, user, is_file_attached=True)
    with SessionLocal() as session:
        session.execute(
            insert(models.Attachment),
            [
                {
                    "post_id": loaded.id,
                    "uploader_id": user.id,
                    "original_name": f"file{n}.png",
                    "storage_key": f"key{n}",
                    "content_type": "image/png",
                    "size": 1,
                    "sha256": "0" * 64,
                }
                for n in range(20)
            ],
        )
        session.commit()
    client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    # The first read of each counts a view (same statements for both); compare like with like.
    first_bare = statements_for(client, user, f"{API}/posts/{bare.id}")
    first_loaded = statements_for(client, user, f"{API}/posts/{loaded.id}")
    again_bare = statements_for(client, user, f"{API}/posts/{bare.id}")
    again_loaded = statements_for(client, user, f"{API}/posts/{loaded.id}")
    assert (len(first_bare), len(again_bare)) == (len(first_loaded), len(again_loaded))
