"""similar-posts: a text in, the most similar posts its requester may read out."""

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crud import embeddings as embeddings_crud
from crud.embeddings import Candidates
from ml.embedding import EmbeddingModel
from ml.encoder import DIMENSIONS, MODEL_NAME
from models import User
from services import access
from services.ai.apps import BatchJobs, ModelApp

RESULT_LIMIT = 5


class SimilarPosts(EmbeddingModel, ModelApp):
    name = "similar-posts"
    information = (
        "Finds the posts most similar in meaning to a text (any language all-MiniLM-L6-v2 reads), "
        "among the posts you may read. Input: the text. Result: posts with a cosine score."
    )

    def results_for(self, session: Session, *, jobs: BatchJobs) -> list[Any]:
        """A batch's jobs by their owners' reading scope (one query for all owners): per scope,
        one read of the candidates' vectors and one matrix product for all its jobs."""
        owners = {user.id: user for user, _, _ in jobs}
        scopes = access.reading_scopes(session, users=list(owners.values()))
        by_scope: dict[tuple[bool, tuple[int, ...]], list[int]] = {}
        for index, (user, _, _) in enumerate(jobs):
            by_scope.setdefault(scopes[user.id], []).append(index)
        results: list[Any] = [None] * len(jobs)
        for indexes in by_scope.values():
            # The candidates are exactly the posts these users may read: the one rule, as SQL
            # (any of them stands for all: they may read the same posts).
            reader = jobs[indexes[0]][0]
            candidates = embeddings_crud.vectors_where(
                session,
                condition=access.post_readable_by(reader),
                model_name=MODEL_NAME,
                dimensions=DIMENSIONS,
            )
            queries = np.stack([np.asarray(jobs[i][2], dtype=np.float32) for i in indexes])
            scores = candidates.vectors @ queries.T  # (posts, jobs): cosines, the rows being unit
            for column, index in enumerate(indexes):
                results[index] = _best(candidates, scores[:, column])
        return results

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        [result] = self.results_for(session, jobs=[(user, text, output)])
        return result


def _best(candidates: Candidates, scores: np.ndarray) -> dict[str, Any]:
    best = np.argsort(-scores, kind="stable")[:RESULT_LIMIT]
    return {
        "posts": [
            {
                "id": candidates.ids[i],
                "board_id": candidates.board_ids[i],
                "title": candidates.titles[i],
                "score": round(float(scores[i]), 4),
            }
            for i in best
        ]
    }
