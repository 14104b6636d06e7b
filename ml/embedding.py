"""The base of the models built on the shared sentence encoder."""

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ml.base import AIModel
from ml.encoder import QUERY, TextKind, get_encoder


class EmbeddingModel(AIModel):
    """predict_batch: texts to unit vectors (the process's sentence encoder, one forward of its
    model for the batch), read as `text_kind`: a job's text is what a user searches with."""

    text_kind: TextKind = QUERY

    @property
    def vector_model(self) -> str:
        """The name the vectors of this process's encoder are stored and compared under."""
        return get_encoder().model_name

    def load(self) -> None:
        get_encoder().load()

    def missing(self) -> str | None:
        return get_encoder().missing()

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        with get_encoder().inference():
            yield

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        return list(get_encoder().encode(inputs, kind=self.text_kind))


def cosine_scores(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of one unit vector against rows of unit vectors."""
    if vectors.size == 0:
        return np.zeros(0, dtype=np.float32)
    scores: np.ndarray = vectors @ query
    return scores


def one_blas_thread() -> None:
    """NumPy's products (the scores of a batch against the posts it may read) on one thread, for
    the rest of this process. The products are small, and OpenBLAS's idle threads spin for a
    while after each one: in the API process they took half a core from the requests and the
    model processes (measured: 4.1 ms of server CPU per similar-posts job against 1.8 ms)."""
    threadpool_limits(limits=1, user_api="blas")
