"""No N+1: a page costs the same SQL statements whether it holds 1 row or 100, and a post
costs the same whether it has no attachment or many. An AI job's requests load their user with
what they read, in one statement; the posts and boards a job's results list are checked against
the access rule in one more, however many jobs and rows."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, select

import models
from config import settings
from database import SessionLocal, engine
from ml.base import AIModel
from tests.ai_models import EchoModel
from tests.conftest import Person

pytestmark = pytest.mark.db  # statements counted

API = settings.API_PREFIX
MakeBoard = Callable[..., models.Board]


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every SQL statement the application sends while the block runs, but those of the AI
    runner's threads, which work beside the requests."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not threading.current_thread().name.startswith("ai-"):
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
    # Full pages both (limit = rows), so each needs its COUNT: only the row count differs.
    one = statements_for(client, user, f"{API}/boards/{small.id}/posts", sort=sort, limit=1)
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


def test_a_page_shorter_than_its_limit_needs_no_count(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person
) -> None:
    board = make_board("board")
    seed_posts(board, authors, 30)
    client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    last = statements_for(client, user, f"{API}/boards/{board.id}/posts", offset=20, limit=20)
    response = client.get(f"{API}/boards/{board.id}/posts?offset=20&limit=20", headers=user.headers)
    assert [s for s in last if "FROM post" in s and "count(" in s.lower()] == []
    assert response.json()["total"] == 30 and len(response.json()["items"]) == 10


def test_a_full_page_or_one_past_the_end_counts_the_total(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person
) -> None:
    board = make_board("board")
    seed_posts(board, authors, 30)
    for offset, items in ((0, 20), (40, 0)):
        statements = statements_for(client, user, f"{API}/boards/{board.id}/posts", offset=offset, limit=20)
        body = client.get(
            f"{API}/boards/{board.id}/posts?offset={offset}&limit=20", headers=user.headers
        ).json()
        assert sum("FROM post" in s and "count(" in s.lower() for s in statements) == 1
        assert (body["total"], len(body["items"])) == (30, items)


def test_search_costs_the_same_for_1_and_100_rows(
    client: TestClient, make_board: MakeBoard, authors: list[Person], user: Person
) -> None:
    small, large = make_board("small"), make_board("large")
    seed_posts(small, authors, 1)
    seed_posts(large, authors, 100)
    client.get(f"{API}/boards/{small.id}/posts", headers=user.headers)
    one = statements_for(client, user, f"{API}/boards/{small.id}/posts", q="post", limit=1)
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
    one = statements_for(client, user, f"{API}/posts/{small.id}/comments", limit=1)
    hundred = statements_for(client, user, f"{API}/posts/{large.id}/comments", limit=100)
    assert len(one) == len(hundred)


def attach_files(post: models.Post, uploader: Person, count: int) -> None:
    with SessionLocal() as session:
        session.execute(
            insert(models.Attachment),
            [
                {
                    "post_id": post.id,
                    "uploader_id": uploader.id,
                    "original_name": f"file{n}.png",
                    "storage_key": f"key{post.id}-{n}",
                    "content_type": "image/png",
                    "size": 1,
                    "sha256": "0" * 64,
                }
                for n in range(count)
            ],
        )
        session.commit()


def test_post_detail_costs_the_same_with_one_attachment_or_many(
    client: TestClient, make_board: MakeBoard, make_post: Callable[..., models.Post], user: Person
) -> None:
    board = make_board("board")
    single = make_post(board, user, is_file_attached=True)
    loaded = make_post(board, user, is_file_attached=True)
    attach_files(single, user, 1)
    attach_files(loaded, user, 20)
    client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    # The first read of each counts a view (same statements for both); compare like with like.
    first_single = statements_for(client, user, f"{API}/posts/{single.id}")
    first_loaded = statements_for(client, user, f"{API}/posts/{loaded.id}")
    again_single = statements_for(client, user, f"{API}/posts/{single.id}")
    again_loaded = statements_for(client, user, f"{API}/posts/{loaded.id}")
    assert (len(first_single), len(again_single)) == (len(first_loaded), len(again_loaded))


def test_reading_a_post_without_files_does_not_look_for_attachments(
    client: TestClient, make_board: MakeBoard, make_post: Callable[..., models.Post], user: Person
) -> None:
    board = make_board("board")
    bare = make_post(board, user)
    with_file = make_post(board, user, is_file_attached=True)
    attach_files(with_file, user, 1)
    client.get(f"{API}/posts/{bare.id}", headers=user.headers)  # views counted: reads alike below
    client.get(f"{API}/posts/{with_file.id}", headers=user.headers)
    bare_reads = statements_for(client, user, f"{API}/posts/{bare.id}")
    file_reads = statements_for(client, user, f"{API}/posts/{with_file.id}")
    assert not any("FROM attachment" in s for s in bare_reads)
    assert sum("FROM attachment" in s for s in file_reads) == 1
    assert len(bare_reads) == len(file_reads) - 1


# --- AI jobs: the two requests every job costs (submit, then read or long-poll) ---------------


@pytest.fixture
def echo(extra_models: list[AIModel]) -> EchoModel:
    """The test-only echo model, in the registry of the app this test starts (which adds its row)."""
    model = EchoModel()
    extra_models.append(model)
    return model


def request_verbs(statements: list[str]) -> list[str]:
    """The first word of each query and change (SELECT, INSERT, UPDATE, DELETE): no COMMIT,
    ROLLBACK or pings."""
    verbs = [statement.split(None, 1)[0].upper() for statement in statements]
    return [verb for verb in verbs if verb in ("SELECT", "INSERT", "UPDATE", "DELETE")]


def submit_echo(client: TestClient, person: Person) -> dict[str, Any]:
    response = client.post(f"{API}/ai/models/test-echo/jobs", json={"input": "hello"}, headers=person.headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_submitting_a_job_is_one_select_and_one_insert(
    echo: EchoModel, client: TestClient, user: Person
) -> None:
    submit_echo(client, user)  # warm up the connection pool
    with counting_statements() as statements:
        submit_echo(client, user)
    # The user, the model and the user's jobs in flight in one SELECT; then the job.
    assert request_verbs(statements) == ["SELECT", "INSERT"]


def test_reading_a_job_is_one_select_for_the_user_and_the_job(
    echo: EchoModel, client: TestClient, user: Person
) -> None:
    job = submit_echo(client, user)
    with counting_statements() as statements:
        response = client.get(f"{API}/ai/jobs/{job['id']}", headers=user.headers)
    assert response.status_code == 200, response.text
    assert request_verbs(statements) == ["SELECT"]


# --- AI results: what a job lists is checked against the access rule in one statement ---------


def stored_jobs(person: Person, model: str, results: list[dict[str, Any]]) -> list[int]:
    """Succeeded jobs of this model, with these results, written straight to the database."""
    with SessionLocal() as session:
        ai_id = session.scalar(select(models.AI.id).where(models.AI.name == model))
        assert ai_id is not None, f"no AI row for {model}"
        rows = [
            models.AIlog(
                user_id=person.id,
                ai_id=ai_id,
                content="text",
                status="succeeded",
                result=json.dumps(result),
                is_finished=True,
            )
            for result in results
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def similar_posts_result(post_ids: list[int], board: models.Board) -> dict[str, Any]:
    return {"posts": [{"id": i, "board_id": board.id, "title": "t", "score": 0.5} for i in post_ids]}


def board_suggest_result(boards: list[models.Board]) -> dict[str, Any]:
    return {"boards": [{"id": board.id, "name": board.name, "score": 0.5} for board in boards]}


@pytest.fixture
def post_ids(make_board: MakeBoard, authors: list[Person]) -> tuple[models.Board, list[int]]:
    board = make_board("board")
    seed_posts(board, authors, 5)
    with SessionLocal() as session:
        return board, list(session.scalars(select(models.Post.id).order_by(models.Post.id)))


def test_reading_a_similar_posts_result_costs_one_select_more_whatever_it_lists(
    client: TestClient, post_ids: tuple[models.Board, list[int]], user: Person
) -> None:
    board, ids = post_ids
    one, five = stored_jobs(
        user, "similar-posts", [similar_posts_result(ids[:1], board), similar_posts_result(ids, board)]
    )
    client.get(f"{API}/ai/jobs/{one}", headers=user.headers)  # warm up the connection pool
    for job_id in (one, five):
        # The user and the job; then which of the posts it lists the user may still read.
        assert request_verbs(statements_for(client, user, f"{API}/ai/jobs/{job_id}")) == ["SELECT", "SELECT"]


def test_a_page_of_jobs_checks_what_they_list_in_one_select_for_2_or_20_jobs(
    client: TestClient, post_ids: tuple[models.Board, list[int]], make_board: MakeBoard, user: Person
) -> None:
    board, ids = post_ids
    offered = [board, make_board("another")]
    stored_jobs(user, "similar-posts", [similar_posts_result(ids[:1], board)])
    stored_jobs(user, "board-suggest", [board_suggest_result(offered[:1])])
    client.get(f"{API}/ai/jobs", headers=user.headers)  # warm up the connection pool
    two = statements_for(client, user, f"{API}/ai/jobs", limit=2)
    stored_jobs(user, "similar-posts", [similar_posts_result(ids, board)] * 9)
    stored_jobs(user, "board-suggest", [board_suggest_result(offered)] * 9)
    twenty = statements_for(client, user, f"{API}/ai/jobs", limit=20)
    # Full pages both (each counts its total): the user, the page, its count, and one check of
    # the posts and boards the page's results list.
    assert request_verbs(two) == request_verbs(twenty) == ["SELECT"] * 4


def test_an_administrator_reads_a_result_with_no_check(
    client: TestClient, post_ids: tuple[models.Board, list[int]], user: Person, admin: Person
) -> None:
    board, ids = post_ids
    [job_id] = stored_jobs(user, "similar-posts", [similar_posts_result(ids, board)])
    client.get(f"{API}/ai/jobs/{job_id}", headers=admin.headers)
    assert request_verbs(statements_for(client, admin, f"{API}/ai/jobs/{job_id}")) == ["SELECT"]


@pytest.mark.parametrize("url", [f"{API}/boards", f"{API}/users/me/boards"])
def test_a_board_page_is_the_user_a_select_and_a_count_for_1_or_100_boards(
    client: TestClient, make_board: MakeBoard, user: Person, url: str
) -> None:
    make_board("first")
    client.get(url, headers=user.headers)  # warm up the connection pool
    one = statements_for(client, user, url, limit=1)
    for n in range(99):
        make_board(f"board {n}")
    hundred = statements_for(client, user, url, limit=100)
    # Full pages both (each counts its total).
    assert request_verbs(one) == request_verbs(hundred) == ["SELECT"] * 3


def test_a_history_page_costs_the_same_for_1_and_100_messages(
    client: TestClient, user: Person, admin: Person
) -> None:
    conversation = client.post(f"{API}/chat/sessions", json={"name": "help"}, headers=user.headers).json()
    url = f"{API}/chat/sessions/{conversation['id']}/messages"
    ids = [
        client.post(url, json={"content": f"m{n}"}, headers=(user, admin)[n % 2].headers).json()["id"]
        for n in range(102)
    ]
    client.get(url, headers=user.headers)  # warm up the connection pool
    # The user, the conversation, the page; one more for a cursor's other side.
    assert request_verbs(statements_for(client, user, url, limit=1)) == ["SELECT"] * 3
    assert request_verbs(statements_for(client, user, url, limit=100)) == ["SELECT"] * 3
    for cursor in ({"before_id": ids[-1]}, {"after_id": ids[0]}):
        assert request_verbs(statements_for(client, user, url, limit=1, **cursor)) == ["SELECT"] * 4
        assert request_verbs(statements_for(client, user, url, limit=100, **cursor)) == ["SELECT"] * 4
