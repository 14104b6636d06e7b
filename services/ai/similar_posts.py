"""similar-posts: a text in, the most similar posts its requester may read out.

The posts' vectors are kept in memory (services/ai/post_vectors.py); the access rule is checked
in the database for the few that would be answered. While posts still lack a vector of the
current model (just written, or being re-embedded after a change of EMBEDDING_MODEL: services/
ai/reembed.py), the result says `"partial": true`: it was found among the posts indexed so far.
"""

import threading
import time
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from crud import embeddings as embeddings_crud
from crud.embeddings import Candidates
from ml.embedding import EmbeddingModel
from ml.encoder import DIMENSIONS
from models import User
from services import access
from services.ai.apps import BatchJobs, ModelApp
from services.ai.post_vectors import PostVectors, Snapshot, best_rows

RESULT_LIMIT = 5
FIRST_CHECK = 4 * RESULT_LIMIT  # the best posts checked against the access rule at first
MAX_CHECKED = 2000  # past this, a question's readable posts are read from the database instead
# How long a "no readable post lacks a vector" is trusted for the same scope: proving it reads
# every readable post (237 ms at 200,000). A "some do" is asked again at every batch: the newest
# posts are looked at first, so it is found at once, and it ends as soon as they are indexed.
PARTIAL_RECHECK_SECONDS = 30.0
PARTIAL_MEMO_SIZE = 1024

Scope = tuple[bool, tuple[int, ...]]  # access.reading_scope


class SimilarPosts(EmbeddingModel, ModelApp):
    name = "similar-posts"
    information = (
        "Finds the posts most similar in meaning to a text (Korean, English and other languages, "
        "across languages), among the posts you may read. Input: the text. Result: posts with a "
        "cosine score, and `partial`: true while some posts are not indexed yet."
    )

    def __init__(self) -> None:
        self.vectors = PostVectors()
        self._complete: dict[tuple[str, Scope], float] = {}  # when a scope was found fully indexed
        self._partial_lock = threading.Lock()

    def results_for(self, session: Session, *, jobs: BatchJobs) -> list[Any]:
        """A batch's jobs by their owners' reading scope (one query for all owners): per scope,
        one matrix product for all its jobs and one check of the best posts against the rule."""
        owners = {user.id: user for user, _, _ in jobs}
        scopes = access.reading_scopes(session, users=list(owners.values()))
        by_scope: dict[Scope, list[int]] = {}
        for index, (user, _, _) in enumerate(jobs):
            by_scope.setdefault(scopes[user.id], []).append(index)
        model_name = self.vector_model
        snapshot = self.vectors.synced(session, model_name=model_name)
        results: list[Any] = [None] * len(jobs)
        for scope, indexes in by_scope.items():
            # Any of these users stands for all: they may read the same posts.
            condition = access.post_readable_by(jobs[indexes[0]][0])
            queries = np.stack([np.asarray(jobs[i][2], dtype=np.float32) for i in indexes])
            found = search(session, snapshot, scope, condition, queries, model_name)
            partial = self._partial_for(session, scope, condition, model_name)
            for column, index in enumerate(indexes):
                results[index] = {"posts": found[column], "partial": partial}
        return results

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        [result] = self.results_for(session, jobs=[(user, text, output)])
        return result

    def _partial_for(
        self, session: Session, scope: Scope, condition: ColumnElement[bool], model_name: str
    ) -> bool:
        key, now = (model_name, scope), time.monotonic()
        with self._partial_lock:
            checked = self._complete.get(key)
        if checked is not None and now - checked < PARTIAL_RECHECK_SECONDS:
            return False
        partial = embeddings_crud.any_without_vector(session, condition=condition, model_name=model_name)
        if not partial:
            with self._partial_lock:
                if len(self._complete) >= PARTIAL_MEMO_SIZE:
                    self._complete.clear()
                self._complete[key] = now
        return partial


def search(
    session: Session,
    snapshot: Snapshot,
    scope: Scope,
    condition: ColumnElement[bool],
    queries: np.ndarray,
    model_name: str,
    *,
    limit: int = RESULT_LIMIT,
    min_score: float = -np.inf,
) -> list[list[dict[str, Any]]]:
    """Each question's `limit` best readable posts (of the scope's boards, meeting `condition`,
    none scoring below min_score), best first: the best checked against the rule, 4 x limit at
    first, eight times more for a question that kept too few."""
    scores = snapshot.vectors @ queries.T  # (posts, questions): cosines, the rows being unit
    scores[~_of_boards(snapshot.board_ids, scope[1])] = -np.inf
    scores[scores < min_score] = -np.inf  # never checked against the rule: a search drops them anyway
    found: list[list[dict[str, Any]] | None] = [None] * len(queries)
    checked: dict[int, Any] = {}  # post id -> (id, board_id, title) if readable, else None
    open_questions, count = list(range(len(queries))), max(FIRST_CHECK, 4 * limit)
    while open_questions and count <= MAX_CHECKED:
        picks = {column: best_rows(scores[:, column], snapshot.post_ids, count) for column in open_questions}
        unknown = {int(snapshot.post_ids[row]) for rows in picks.values() for row in rows} - checked.keys()
        readable = embeddings_crud.readable_among(
            session, list(unknown), condition=condition, model_name=model_name
        )
        checked.update((post_id, readable.get(post_id)) for post_id in unknown)
        still_open = []
        for column in open_questions:
            rows = picks[column]
            posts = [
                _post(checked[int(snapshot.post_ids[row])], scores[row, column])
                for row in rows
                if checked[int(snapshot.post_ids[row])] is not None
            ][:limit]
            if len(posts) == limit or len(rows) < count:  # enough, or every post checked
                found[column] = posts
            else:
                still_open.append(column)
        open_questions, count = still_open, count * 8
    if open_questions:  # few of many posts readable: read those from the database
        candidates = embeddings_crud.vectors_where(
            session, condition=condition, model_name=model_name, dimensions=DIMENSIONS
        )
        fallback = candidates.vectors @ queries[open_questions].T
        for position, column in enumerate(open_questions):
            found[column] = _best(candidates, fallback[:, position], limit)
    return [posts or [] for posts in found]


def _of_boards(board_ids: np.ndarray, boards: tuple[int, ...]) -> np.ndarray:
    """Which rows' board is one of `boards`, by a table indexed by board id (np.isin sorts both
    sides: 5% of a search by meaning's time at 20,000 posts)."""
    if not len(board_ids):
        return np.zeros(0, dtype=bool)
    table = np.zeros(max(int(board_ids.max()), *boards, 0) + 1, dtype=bool)
    table[list(boards)] = True
    kept: np.ndarray = table[board_ids]
    return kept


def _post(row: Any, score: float) -> dict[str, Any]:
    return {"id": row.id, "board_id": row.board_id, "title": row.name, "score": round(float(score), 4)}


def _best(candidates: Candidates, scores: np.ndarray, limit: int) -> list[dict[str, Any]]:
    best = np.argsort(-scores, kind="stable")[:limit]
    return [
        {
            "id": candidates.ids[i],
            "board_id": candidates.board_ids[i],
            "title": candidates.titles[i],
            "score": round(float(scores[i]), 4),
        }
        for i in best
    ]
