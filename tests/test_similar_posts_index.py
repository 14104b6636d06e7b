"""similar-posts' vectors in memory (services/ai/post_vectors.py): what is written, hidden or
deleted after they were loaded is seen at the next job, and the access rule stays exact however
many unreadable posts rank above the readable ones. With the real multilingual-e5-small."""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from database import SessionLocal
from models import Board, Post
from services.ai import jobs as ai_service
from services.ai import similar_posts
from services.ai.post_vectors import best_rows
from tests.conftest import Person, job_result

MakeBoard = Callable[..., Board]
MakePost = Callable[..., Post]

TOPICS = [
    ("Sourdough bread baking tips", "Feed your starter the night before and bake at a high temperature."),
    ("Fixing a KeyError in Python", "Use dict.get() when a key may be missing from the dictionary."),
    ("Best hiking trails near Seoul", "Bukhansan has granite peaks and well-marked trails."),
]


def similar(client: TestClient, person: Person, text: str) -> dict[str, Any]:
    return dict(job_result(client, person, "similar-posts", text))


def titles(result: dict[str, Any]) -> list[str]:
    return [post["title"] for post in result["posts"]]


def write(
    make_post: MakePost, board: Board, author: Person, posts: list[tuple[str, str]], **columns: Any
) -> list[int]:
    ids = [make_post(board, author, name=title, content=content, **columns).id for title, content in posts]
    ai_service.reindex()
    return ids


def test_best_rows_ranks_as_a_full_sort_would_equal_scores_by_lower_post_id() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 20, size=500).astype(np.float32)  # many equal scores
    scores[rng.choice(500, size=50, replace=False)] = -np.inf  # posts of boards not readable
    post_ids = rng.permutation(10_000)[:500]
    finite = np.flatnonzero(np.isfinite(scores))
    expected = finite[np.lexsort((post_ids[finite], -scores[finite]))]
    for count in (1, 5, 20, 449, 450, 600):
        assert best_rows(scores, post_ids, count).tolist() == expected[:count].tolist()


@pytest.mark.usefixtures("sentence_encoder")
def test_a_post_written_after_the_vectors_were_loaded_is_found(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    board = make_board("general")
    write(make_post, board, user, TOPICS)
    similar(client, user, "growing tomatoes on a balcony")  # the vectors are now in memory
    write(make_post, board, user, [("Tomatoes on a small balcony", "Cherry tomatoes grow well in pots.")])
    result = similar(client, user, "growing tomatoes on a balcony")
    assert titles(result)[0] == "Tomatoes on a small balcony"
    assert result["partial"] is False


@pytest.mark.usefixtures("sentence_encoder")
def test_a_post_hidden_or_deleted_after_the_vectors_were_loaded_is_never_answered(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, admin: Person
) -> None:
    bread, _python, hiking = write(make_post, make_board("general"), user, TOPICS)
    assert titles(similar(client, user, "how to bake bread"))[0] == "Sourdough bread baking tips"
    with SessionLocal() as session:
        session.execute(update(Post).where(Post.id == bread).values(is_visible=False))
        session.execute(delete(Post).where(Post.id == hiking))
        session.commit()
    assert titles(similar(client, user, "how to bake bread")) == ["Fixing a KeyError in Python"]
    # Administrators read hidden posts; a deleted one is gone for everyone.
    assert titles(similar(client, admin, "how to bake bread")) == [
        "Sourdough bread baking tips",
        "Fixing a KeyError in Python",
    ]


@pytest.mark.usefixtures("sentence_encoder")
@pytest.mark.parametrize("max_checked", [similar_posts.MAX_CHECKED, similar_posts.FIRST_CHECK])
def test_many_hidden_posts_ranked_above_the_readable_ones_are_passed_over(
    client: TestClient,
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    monkeypatch: pytest.MonkeyPatch,
    max_checked: int,
) -> None:
    """30 hidden posts match the question best: the first check (the best 20) keeps none, so
    more are checked; with MAX_CHECKED as low as the first check, the readable posts' vectors are
    read from the database instead. Either way: the readable posts, best first."""
    monkeypatch.setattr(similar_posts, "MAX_CHECKED", max_checked)
    board = make_board("general")
    hidden = [
        (f"Sourdough bread recipe number {i}", "Bake the sourdough loaf at 250 degrees.") for i in range(30)
    ]
    write(make_post, board, user, hidden, is_visible=False)
    write(make_post, board, user, TOPICS)
    found = titles(similar(client, user, "sourdough bread recipe"))
    assert found[0] == "Sourdough bread baking tips"
    assert sorted(found) == sorted(title for title, _ in TOPICS)
