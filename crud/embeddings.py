"""Post embeddings: store, find what needs embedding, load the candidates of a search."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, Row, func, or_, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from models import Board, Post, PostEmbedding


@dataclass(frozen=True)
class Candidates:
    """Posts and their vectors, row i of `vectors` belonging to ids[i]."""

    ids: list[int]
    board_ids: list[int]
    titles: list[str]
    vectors: np.ndarray


def vectors_where(
    session: Session, *, condition: ColumnElement[bool], model_name: str, dimensions: int
) -> Candidates:
    """Every post meeting the condition (on Post and its Board) that has a vector of this model
    (of `dimensions` numbers): one query; the vectors come back as one matrix."""
    query = (
        select(Post.id, Post.board_id, Post.name, PostEmbedding.vector)
        .join(PostEmbedding, PostEmbedding.post_id == Post.id)
        .join(Board, Board.id == Post.board_id)
        .where(condition, PostEmbedding.model_name == model_name)
        .order_by(Post.id)
    )
    rows = session.execute(query).all()
    if not rows:
        return Candidates([], [], [], np.zeros((0, dimensions), dtype=np.float32))
    matrix = np.frombuffer(b"".join(row.vector for row in rows), dtype="<f4").reshape(len(rows), -1)
    return Candidates(
        ids=[row.id for row in rows],
        board_ids=[row.board_id for row in rows],
        titles=[row.name for row in rows],
        vectors=matrix,
    )


@dataclass(frozen=True)
class ModelVectors:
    """Vectors of one model, row i of `vectors` belonging to post_ids[i] (on board board_ids[i]),
    written at dates[i]."""

    post_ids: list[int]
    board_ids: list[int]
    vectors: np.ndarray
    dates: list[datetime]


def vectors_of_model(
    session: Session, *, model_name: str, dimensions: int, post_ids: Sequence[int] | None = None
) -> ModelVectors:
    """Every vector of this model, or those of these posts."""
    query = (
        select(PostEmbedding.post_id, Post.board_id, PostEmbedding.vector, PostEmbedding.update_date)
        .join(Post, Post.id == PostEmbedding.post_id)
        .where(PostEmbedding.model_name == model_name)
    )
    if post_ids is not None:
        if not post_ids:
            return ModelVectors([], [], np.zeros((0, dimensions), dtype=np.float32), [])
        query = query.where(PostEmbedding.post_id.in_(list(post_ids)))
    rows = session.execute(query).all()
    if not rows:
        return ModelVectors([], [], np.zeros((0, dimensions), dtype=np.float32), [])
    matrix = np.frombuffer(b"".join(row.vector for row in rows), dtype="<f4").reshape(len(rows), -1)
    return ModelVectors(
        post_ids=[row.post_id for row in rows],
        board_ids=[row.board_id for row in rows],
        vectors=matrix,
        dates=[row.update_date for row in rows],
    )


def written_since(session: Session, *, model_name: str, since: datetime) -> dict[int, datetime]:
    """When each vector of this model stamped at or after `since` was written, by post id: read
    from the index on (model_name, update_date) alone, no vector."""
    query = select(PostEmbedding.post_id, PostEmbedding.update_date).where(
        PostEmbedding.model_name == model_name, PostEmbedding.update_date >= since
    )
    return {row.post_id: row.update_date for row in session.execute(query)}


def readable_among(
    session: Session, post_ids: Sequence[int], *, condition: ColumnElement[bool], model_name: str
) -> dict[int, Row[int, int, str]]:
    """Of these posts, those meeting the condition (on Post and its Board) whose vector is of
    this model, by id: (id, board_id, title)."""
    if not post_ids:
        return {}
    query = (
        select(Post.id, Post.board_id, Post.name)
        .join(PostEmbedding, PostEmbedding.post_id == Post.id)
        .join(Board, Board.id == Post.board_id)
        .where(Post.id.in_(list(post_ids)), condition, PostEmbedding.model_name == model_name)
    )
    # Through the connection: plain rows, without the ORM's result processing (a search checks
    # hundreds of candidates per question).
    return {row.id: row for row in session.connection().execute(query)}


def any_without_vector(session: Session, *, condition: ColumnElement[bool], model_name: str) -> bool:
    """Whether a post meeting the condition has no vector of this model (none yet, or another
    model's): similar-posts then answers from part of them. The newest posts are looked at first
    (those are the ones not indexed yet, or not re-embedded yet)."""
    query = (
        select(Post.id)
        .join(Board, Board.id == Post.board_id)
        .outerjoin(PostEmbedding, PostEmbedding.post_id == Post.id)
        .where(condition, _without_vector(model_name))
        .order_by(Post.id.desc())
        .limit(1)
    )
    return session.scalar(query) is not None


def ids_without_vector(session: Session, *, model_name: str, before_id: int | None, limit: int) -> list[int]:
    """The newest posts (by id, below before_id) with no vector of this model: none yet or
    another model's. The re-embedding after a change of model takes them in this order."""
    query = (
        select(Post.id)
        .outerjoin(PostEmbedding, PostEmbedding.post_id == Post.id)
        .where(_without_vector(model_name))
        .order_by(Post.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(Post.id < before_id)
    return list(session.scalars(query))


def count_without_vector(session: Session, *, model_name: str) -> int:
    query = (
        select(func.count())
        .select_from(Post)
        .outerjoin(PostEmbedding, PostEmbedding.post_id == Post.id)
        .where(_without_vector(model_name))
    )
    return int(session.scalar(query) or 0)


def still_without_vector(session: Session, post_ids: Sequence[int], *, model_name: str) -> list[int]:
    """Those of these posts that still exist and have no vector of this model."""
    if not post_ids:
        return []
    query = (
        select(Post.id)
        .outerjoin(PostEmbedding, PostEmbedding.post_id == Post.id)
        .where(
            Post.id.in_(list(post_ids)),
            _without_vector(model_name),
        )
    )
    return list(session.scalars(query))


def _without_vector(model_name: str) -> ColumnElement[bool]:
    """On Post outer-joined to its PostEmbedding: the post has no vector of this model (none
    yet, or another model's)."""
    return or_(PostEmbedding.post_id.is_(None), PostEmbedding.model_name != model_name)


def texts(session: Session, post_ids: Sequence[int]) -> list[Row[int, str, str]]:
    """(id, title, content) of those posts that still exist."""
    if not post_ids:
        return []
    return list(session.execute(select(Post.id, Post.name, Post.content).where(Post.id.in_(post_ids))).all())


def ids_to_index(
    session: Session, *, model_name: str, everything: bool, after_id: int, limit: int
) -> list[int]:
    """The next posts (by id, after after_id) without a current vector of this model: none yet,
    another model's, or older than the post's last edit. With everything: all posts."""
    query = select(Post.id).where(Post.id > after_id).order_by(Post.id).limit(limit)
    if not everything:
        query = query.outerjoin(PostEmbedding, PostEmbedding.post_id == Post.id).where(
            or_(_without_vector(model_name), PostEmbedding.update_date < Post.update_date)
        )
    return list(session.scalars(query))


def upsert(session: Session, *, model_name: str, vectors: dict[int, bytes], now: datetime) -> None:
    """Stores one vector per post id, replacing what was there (one statement)."""
    if not vectors:
        return
    rows = [
        {"post_id": post_id, "model_name": model_name, "vector": vector, "update_date": now}
        for post_id, vector in vectors.items()
    ]
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(PostEmbedding).values(rows)
        statement = statement.on_duplicate_key_update(
            model_name=statement.inserted.model_name,
            vector=statement.inserted.vector,
            update_date=statement.inserted.update_date,
        )
    else:
        module = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(PostEmbedding).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[PostEmbedding.post_id],
            set_={
                "model_name": statement.excluded.model_name,
                "vector": statement.excluded.vector,
                "update_date": statement.excluded.update_date,
            },
        )
    session.execute(statement)


def board_centroids(
    session: Session, *, board_ids: Sequence[int], model_name: str, per_board: int
) -> dict[int, np.ndarray]:
    """The mean vector of each board's latest `per_board` visible posts (boards without
    embedded posts are left out): one query, ranked per board by a window function."""
    if not board_ids:
        return {}
    ranked = (
        select(
            Post.board_id,
            PostEmbedding.vector,
            func.row_number().over(partition_by=Post.board_id, order_by=Post.id.desc()).label("recency"),
        )
        .join(PostEmbedding, PostEmbedding.post_id == Post.id)
        .where(
            Post.board_id.in_(list(board_ids)),
            Post.is_visible.is_(True),
            PostEmbedding.model_name == model_name,
        )
        .subquery()
    )
    rows = session.execute(select(ranked.c.board_id, ranked.c.vector).where(ranked.c.recency <= per_board))
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for board_id, vector in rows:
        values = np.frombuffer(vector, dtype="<f4")
        sums[board_id] = sums[board_id] + values if board_id in sums else values.astype(np.float32)
        counts[board_id] = counts.get(board_id, 0) + 1
    return {board_id: total / counts[board_id] for board_id, total in sums.items()}
