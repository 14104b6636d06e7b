"""Search by meaning: the posts whose vectors (the ones similar-posts keeps, services/ai/
post_vectors.py) are nearest the question's, and the fusion of that ranking with the keyword
one (hybrid), so a question that shares no word with a post ("밥솥 고장" and a post about a
broken rice cooker) still finds it.

The question is embedded as similar-posts reads one, in the model processes beside other work
(services/ai/backends.QueryEmbeddings). When that cannot happen now (the model still loading,
or the models run on Celery workers), the search answers by keyword and says why.
"""

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from models import User
from services import access
from services.ai import similar_posts
from services.ai.runtime import AIRuntime
from services.ai.similar_posts import SimilarPosts

CANDIDATES = 100  # the nearest posts a search by meaning considers
# Below this cosine a post is not about the question (multilingual-e5-small with the language
# means out: a post on the question's subject scores 0.3-0.7, unrelated ones around 0).
MIN_SCORE = 0.2
EMBED_TIMEOUT_SECONDS = 2.0
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al.: 60 works across collections)


def nearest_post_ids(
    session: Session, *, ai: AIRuntime, reader: User, q: str, board_id: int | None = None
) -> list[int] | str:
    """The ids of the readable posts nearest the question in meaning, best first (at most
    CANDIDATES, none below MIN_SCORE), or why a search by meaning cannot run now."""
    model = ai.models.builtin(SimilarPosts.name)
    if ai.backend is None or not isinstance(model, SimilarPosts):
        return "no embedding model runs in this process"
    vector = ai.backend.embed_query(q, timeout=EMBED_TIMEOUT_SECONDS)
    if isinstance(vector, str):
        return vector
    sees_hidden, boards = access.reading_scope(session, user=reader)
    if board_id is not None:
        boards = tuple(board for board in boards if board == board_id)
    snapshot = model.vectors.synced(session, model_name=model.vector_model)
    [found] = similar_posts.search(
        session,
        snapshot,
        (sees_hidden, boards),
        access.post_readable_by(reader),
        np.asarray(vector, dtype=np.float32)[None, :],
        model.vector_model,
        limit=CANDIDATES,
        min_score=MIN_SCORE,
    )
    return [post["id"] for post in found if post["score"] >= MIN_SCORE]


def fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion: each id scores the sum of 1 / (k + rank) over the rankings it is
    in (rank from 1); best first, equal scores by the order of first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, post_id in enumerate(ranking, start=1):
            scores[post_id] = scores.get(post_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda post_id: -scores[post_id])
