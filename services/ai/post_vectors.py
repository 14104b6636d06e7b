"""similar-posts' post vectors, kept in memory by the process that computes its results.

Reading every candidate's vector from the database for each batch was what grew with the site
(bench/ai_scale.py: 93 ms at 20,000 posts, 1.1 s at 200,000). Here the vectors of the current
model are read once; before each batch, the index on (model_name, update_date) tells which were
written since the last batch (ids and dates only), and only those are read.

A write stamps its rows before its commit, so a row may become visible after a sync that was
later than its stamp: each sync looks back SYNC_OVERLAP before the previous one began, and rows
whose date it already holds are skipped.

The access rule stays exact: a post's board (posts never move between boards) narrows the
scores to the boards the readers may use, and the best few are then checked against the
database with the rule itself (access.post_readable_by), which also drops posts deleted or
hidden since; where too few pass, more are checked, and past MAX_CHECKED the batch falls back
to reading the readable posts' vectors from the database as before. (A deleted post's vector
stays in memory until the process restarts; it is never answered.)

Memory: 1.5 KB a post (384 float32), e.g. 300 MB at 200,000 posts, in the API process with the
embedded runner (in each Celery worker process with Celery).
"""

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from crud import embeddings as embeddings_crud
from crud.embeddings import ModelVectors
from database import utcnow
from ml.encoder import DIMENSIONS

SYNC_OVERLAP = timedelta(seconds=10)  # longer than a write's stamp may precede its commit


@dataclass(frozen=True)
class Snapshot:
    """The vectors as they were at one sync; row i belongs to post_ids[i] on board_ids[i]."""

    post_ids: np.ndarray
    board_ids: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.post_ids)


class PostVectors:
    """One model's post vectors in memory, synced from the database before each batch."""

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.model_name: str | None = None
        self._lock = threading.Lock()
        self._post_ids = np.zeros(0, dtype=np.int64)
        self._board_ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimensions), dtype=np.float32)
        self._size = 0
        self._rows: dict[int, int] = {}  # post id -> row
        self._dates: dict[int, datetime] = {}  # post id -> when its vector was written
        self._synced_at: datetime | None = None

    def synced(self, session: Session, *, model_name: str) -> Snapshot:
        """The vectors of this model as the database has them now (all of them on first use and
        on a change of model; else those written since the last sync)."""
        with self._lock:
            started = utcnow()
            if model_name != self.model_name or self._synced_at is None:
                found = embeddings_crud.vectors_of_model(
                    session, model_name=model_name, dimensions=self.dimensions
                )
                self._size, self._rows, self._dates = 0, {}, {}
                self.model_name = model_name
            else:
                written = embeddings_crud.written_since(
                    session, model_name=model_name, since=self._synced_at - SYNC_OVERLAP
                )
                changed = [post_id for post_id, date in written.items() if self._dates.get(post_id) != date]
                found = embeddings_crud.vectors_of_model(
                    session, model_name=model_name, dimensions=self.dimensions, post_ids=changed
                )
            self._store(found)
            self._synced_at = started
            size = self._size
            return Snapshot(self._post_ids[:size], self._board_ids[:size], self._vectors[:size])

    def _store(self, found: ModelVectors) -> None:
        self._grow(self._size + sum(1 for post_id in found.post_ids if post_id not in self._rows))
        for i, post_id in enumerate(found.post_ids):
            row = self._rows.get(post_id)
            if row is None:
                row = self._rows[post_id] = self._size
                self._size += 1
                self._post_ids[row] = post_id
            self._board_ids[row] = found.board_ids[i]
            self._vectors[row] = found.vectors[i]
            self._dates[post_id] = found.dates[i]

    def _grow(self, needed: int) -> None:
        """Room for `needed` rows; a bigger array is a copy, so snapshots taken before keep theirs."""
        if needed <= len(self._post_ids):
            return
        capacity = max(needed, int(len(self._post_ids) * 1.5) + 64)
        post_ids = np.zeros(capacity, dtype=np.int64)
        board_ids = np.zeros(capacity, dtype=np.int64)
        vectors = np.zeros((capacity, self.dimensions), dtype=np.float32)
        post_ids[: self._size] = self._post_ids[: self._size]
        board_ids[: self._size] = self._board_ids[: self._size]
        vectors[: self._size] = self._vectors[: self._size]
        self._post_ids, self._board_ids, self._vectors = post_ids, board_ids, vectors


def best_rows(scores: np.ndarray, post_ids: np.ndarray, count: int) -> np.ndarray:
    """The rows of the `count` highest scores, best first, equal scores by lower post id (as
    sorting every score would give): argpartition finds the count-th score in linear time."""
    rows = np.flatnonzero(np.isfinite(scores))
    if len(rows) > count:
        threshold = -np.partition(-scores[rows], count - 1)[count - 1]
        rows = rows[scores[rows] >= threshold]  # ties at the threshold all stay, for the order
    return rows[np.lexsort((post_ids[rows], -scores[rows]))][:count]
