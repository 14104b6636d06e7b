"""Vectors know their model: a vector another model made is never compared with a question, and
when EMBEDDING_MODEL changes (or on the upgrade from all-MiniLM-L6-v2's vectors) a running app
re-embeds the posts in the background, newest first, telling the log and /ready how far it got;
similar-posts meanwhile answers from the posts indexed so far and says `"partial": true`.

The post index here is the real one (multilingual-e5-small) held at a gate between batches, so
the test can look while the re-embedding is half done."""

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from crud import embeddings as embeddings_crud
from database import SessionLocal, utcnow
from ml.encoder import ALL_MINILM_L6_V2, DIMENSIONS, MULTILINGUAL_E5_SMALL, to_bytes
from ml.post_index import PostIndex
from models import Board, Post, PostEmbedding
from services.ai import reembed, similar_posts
from services.ai.reembed import Reembedding
from tests.conftest import TEST_REDIS_URL, Person, job_result, redis_or_skip

POSTS = 40  # two chunks: the newest 32, then the oldest 8

pytestmark = [pytest.mark.db, pytest.mark.usefixtures("sentence_encoder")]

MakeBoard = Callable[..., Board]
MakePost = Callable[..., Post]


class GatedPostIndex(PostIndex):
    """The real post index, each batch waiting for the test's go-ahead."""

    def __init__(self) -> None:
        self.allowed = threading.Semaphore(0)
        self.batches: list[list[str]] = []

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        self.batches.append(list(inputs))
        if not self.allowed.acquire(timeout=30):
            raise TimeoutError("the test never let this batch through")
        return super().predict_batch(inputs)


@pytest.fixture
def gated_index(extra_models: list[Any], app_settings: dict[str, Any]) -> Iterator[GatedPostIndex]:
    # Two workers: a job runs while a re-embedding batch waits at the gate.
    app_settings.update(AI_INDEX_POSTS=True, AI_WORKERS=2)
    index = GatedPostIndex()
    extra_models.append(index)
    yield index
    for _ in range(10):
        index.allowed.release()


def old_model_posts(make_post: MakePost, board: Board, author: Person, count: int) -> list[int]:
    """Posts whose vectors all-MiniLM-L6-v2 made (as before the upgrade), oldest first."""
    topics = ["baking sourdough bread", "hiking near Seoul", "python KeyError", "balcony tomatoes"]
    ids = [
        make_post(board, author, name=f"post {i}: {topics[i % 4]}", content=f"Notes on {topics[i % 4]}.").id
        for i in range(count)
    ]
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with SessionLocal() as session:
        embeddings_crud.upsert(
            session,
            model_name=ALL_MINILM_L6_V2,
            vectors={post_id: to_bytes(vector) for post_id, vector in zip(ids, vectors, strict=True)},
            now=utcnow(),
        )
        session.commit()
    return ids


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.05)


def similar(client: TestClient, person: Person, text: str) -> dict[str, Any]:
    return dict(job_result(client, person, "similar-posts", text))


def models_of(post_ids: list[int]) -> dict[int, str]:
    with SessionLocal() as session:
        rows = session.query(PostEmbedding.post_id, PostEmbedding.model_name).filter(
            PostEmbedding.post_id.in_(post_ids)
        )
        return dict(rows.all())


def test_vectors_of_another_model_are_never_compared_with_a_question(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    old_model_posts(make_post, make_board("general"), user, 4)  # AI_INDEX_POSTS is off here
    assert similar(client, user, "baking sourdough bread") == {"posts": [], "partial": True}


def test_a_change_of_model_reembeds_the_posts_newest_first_with_progress_on_ready_and_in_the_log(
    gated_index: GatedPostIndex,
    start_app: Callable[..., TestClient],
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=reembed.__name__)
    ids = old_model_posts(make_post, make_board("general"), user, POSTS)
    client = start_app()

    wait_for(lambda: len(gated_index.batches) == 1, "the first batch")
    newest = sorted(ids, reverse=True)[: reembed.CHUNK]
    assert sorted(text.split(":")[0] for text in gated_index.batches[0]) == sorted(
        f"post {ids.index(post_id)}" for post_id in newest
    )
    ready = client.get("/ready")
    assert ready.status_code == 200  # the app serves meanwhile
    assert ready.json()["reembedding"] == {"model": MULTILINGUAL_E5_SMALL, "done": 0, "total": POSTS}

    gated_index.allowed.release()  # the newest 32 are stored; the oldest 8 wait at the gate
    wait_for(lambda: len(gated_index.batches) == 2, "the second batch")
    assert client.get("/ready").json()["reembedding"] == {
        "model": MULTILINGUAL_E5_SMALL,
        "done": reembed.CHUNK,
        "total": POSTS,
    }
    models = models_of(ids)
    assert {models[post_id] for post_id in newest} == {MULTILINGUAL_E5_SMALL}
    assert {models[post_id] for post_id in ids if post_id not in newest} == {ALL_MINILM_L6_V2}
    meanwhile = similar(client, user, "baking sourdough bread")
    assert meanwhile["partial"] is True
    assert meanwhile["posts"] and {post["id"] for post in meanwhile["posts"]} <= set(newest)

    gated_index.allowed.release()
    wait_for(lambda: client.get("/ready").json()["reembedding"] is None, "the end of the re-embedding")
    assert set(models_of(ids).values()) == {MULTILINGUAL_E5_SMALL}
    monkeypatch.setattr(similar_posts, "PARTIAL_RECHECK_SECONDS", 0)
    assert similar(client, user, "baking sourdough bread")["partial"] is False
    messages = [record.getMessage() for record in caplog.records if record.name == reembed.__name__]
    assert f"re-embedding {POSTS} posts for {MULTILINGUAL_E5_SMALL}, newest first" in messages
    assert any(message.startswith(f"re-embedded {POSTS} of {POSTS} posts for") for message in messages)


def test_an_app_whose_posts_all_have_current_vectors_does_not_reembed(
    gated_index: GatedPostIndex, start_app: Callable[..., TestClient]
) -> None:
    client = start_app()
    time.sleep(0.5)
    assert gated_index.batches == []
    assert client.get("/ready").json()["reembedding"] is None


def test_one_process_at_a_time_reembeds_where_several_share_a_redis() -> None:
    redis_or_skip().close()
    from config import settings

    model = f"test-model-{uuid.uuid4().hex}"  # a lock of its own: other runs may share the Redis
    config = settings.model_copy(update={"REDIS_URL": TEST_REDIS_URL})
    first, second = (Reembedding(config, backend=None, models=None) for _ in range(2))  # type: ignore[arg-type]
    assert first._take_lock(model)
    assert not second._take_lock(model)
    assert first._take_lock(model)  # renewing its own
    first._release_lock(model)
    assert second._take_lock(model)
    second._release_lock(model)
