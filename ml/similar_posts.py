"""similar-posts: a text in, the most similar posts its requester may read out."""

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crud import embeddings as embeddings_crud
from ml.embedding import EmbeddingModel, cosine_scores
from ml.encoder import MODEL_NAME
from models import User
from services import access

RESULT_LIMIT = 5


class SimilarPosts(EmbeddingModel):
    name = "similar-posts"
    information = (
        "Finds the posts most similar in meaning to a text (any language all-MiniLM-L6-v2 reads), "
        "among the posts you may read. Input: the text. Result: posts with a cosine score."
    )

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        # Jobs in one batch whose owners may read the same posts share one read of the vectors.
        key = ("readable posts", access.reading_scope(session, user=user))
        if key not in memo:
            # The candidates are exactly the posts this user may read: the one rule, as SQL.
            memo[key] = embeddings_crud.vectors_where(
                session, condition=access.post_readable_by(user), model_name=MODEL_NAME
            )
        candidates = memo[key]
        if not candidates.ids:
            return {"posts": []}
        scores = cosine_scores(np.asarray(output, dtype=np.float32), candidates.vectors)
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
