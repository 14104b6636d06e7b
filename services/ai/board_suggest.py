"""board-suggest: a draft post in, the requester's boards ranked by how well it fits them.

A board's profile mixes what it says it is with what is posted there: the embedding of its
"name: information" (30%) and the centroid of the embeddings of its latest posts (70%). The
description alone would leave a board whose description shares no words with a draft far
behind (a sentence encoder scores short labels against questions poorly); the posts alone would
leave a new board invisible. The draft is read as a question, descriptions and posts as what is
searched in (multilingual-e5-small's query and passage). Descriptions are embedded once and
cached (keyed by the model and their text, so an edit is embedded afresh); centroids are read
per batch.
"""

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from crud import boards as boards_crud
from crud import embeddings as embeddings_crud
from ml.embedding import EmbeddingModel, cosine_scores
from ml.encoder import PASSAGE, get_encoder
from models import Board, User
from services import access
from services.ai.apps import ModelApp

RESULT_LIMIT = 10
DESCRIPTION_WEIGHT = 0.3
POSTS_PER_BOARD = 100  # the latest posts that shape a board's profile
CACHE_SIZE = 4096
SCOPES = "reading scopes"  # memo key: each owner's access.reading_scope


class BoardSuggest(EmbeddingModel, ModelApp):
    name = "board-suggest"
    information = (
        "Ranks the boards you may use by how well a draft post fits each one (its description "
        "and its latest posts). Input: the draft. Result: boards with a cosine score."
    )

    def __init__(self) -> None:
        self._descriptions: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def batch_memo(self, session: Session, *, owners: Sequence[User]) -> dict[Any, Any]:
        return {SCOPES: access.reading_scopes(session, users=owners)}

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        scope = memo.get(SCOPES, {}).get(user.id)
        board_ids = scope[1] if scope is not None else access.reading_scope(session, user=user)[1]
        key = ("board profiles", board_ids)
        if key not in memo:  # jobs in one batch offered the same boards share their profiles
            boards = boards_crud.get_many(session, board_ids)
            memo[key] = (boards, self._profiles(session, boards))
        boards, profiles = memo[key]
        if not boards:
            return {"boards": []}
        scores = cosine_scores(np.asarray(output, dtype=np.float32), profiles)
        best = np.argsort(-scores, kind="stable")[:RESULT_LIMIT]
        return {
            "boards": [
                {"id": boards[i].id, "name": boards[i].name, "score": round(float(scores[i]), 4)}
                for i in best
            ]
        }

    def _profiles(self, session: Session, boards: list[Board]) -> np.ndarray:
        if not boards:
            return np.zeros((0, 0), dtype=np.float32)
        descriptions = self._description_vectors([board_text(board) for board in boards])
        centroids = embeddings_crud.board_centroids(
            session,
            board_ids=[board.id for board in boards],
            model_name=self.vector_model,
            per_board=POSTS_PER_BOARD,
        )
        profiles = []
        for board, description in zip(boards, descriptions, strict=True):
            centroid = centroids.get(board.id)
            profile = (
                description
                if centroid is None
                else DESCRIPTION_WEIGHT * description + (1 - DESCRIPTION_WEIGHT) * _unit(centroid)
            )
            profiles.append(_unit(profile))
        return np.stack(profiles)

    def _description_vectors(self, texts: list[str]) -> list[np.ndarray]:
        model = self.vector_model
        with self._cache_lock:
            found = {t: self._descriptions[(model, t)] for t in texts if (model, t) in self._descriptions}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            for text, vector in zip(missing, get_encoder().encode(missing, kind=PASSAGE), strict=True):
                found[text] = vector
            with self._cache_lock:
                self._descriptions.update(((model, t), found[t]) for t in missing)
                while len(self._descriptions) > CACHE_SIZE:
                    self._descriptions.popitem(last=False)
        return [found[t] for t in texts]


def board_text(board: Board) -> str:
    return f"{board.name}: {board.information}" if board.information else board.name


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
