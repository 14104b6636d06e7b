"""`python -m bench.ai_scale`: what similar-posts costs per batch as the community grows.

For each size (20,000 and 200,000 posts by default) it seeds a fresh SQLite database with the board
benchmark's seeder (bench/seed.py, no comments or likes), gives every post a stored vector (random
unit vectors: the cost does not depend on what they mean), and times, for a reader who may read
every board but one, a similar-posts batch both ways, side by side in one run:

- before (the database each time): crud/embeddings.vectors_where with the access rule's
  condition, every readable post's id, board, title and vector in one query, made into one
  matrix; that matrix times the batch's query vectors (one, and 32), then a full sort for the best
  five;
- after (services/ai/post_vectors.py, what the app does now): the vectors in memory, synced with
  what was written since the last batch (nothing here: one indexed query), one matrix product
  over every post, the readers' boards masked, argpartition for the best, and the best twenty
  checked against the rule in the database (services/ai/similar_posts.search). Also printed:
  the first, full load of the vectors, and the "partial" check (does a readable post lack a
  vector? once per 10 s per reading scope).

The issue's bar: above 50 ms a query at 200,000 posts, search needs an index.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from bench.seed import Sizes, fresh_database, seed
from crud import embeddings as embeddings_crud
from ml.encoder import DIMENSIONS
from models import Board, Post, PostEmbedding, User
from services import access
from services.ai import similar_posts
from services.ai.post_vectors import PostVectors

CHUNK = 5_000
MODEL = "bench-random"


def timed(work: Callable[[], object], repeats: int) -> float:
    """The median of `repeats` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(posts: int, folder: Path, repeats: int) -> dict[str, float]:
    url = f"sqlite:///{folder / f'scale_{posts}.sqlite3'}"
    fresh_database(url)
    seed(url, password_hash="x", sizes=Sizes(boards=10, users=100, posts=posts, comments=0, likes=0))
    engine = create_engine(url)
    rng = np.random.default_rng(20261205)
    now = datetime.now(UTC) - timedelta(hours=1)  # written an hour ago, as on a site at rest
    with engine.begin() as conn:
        ids = list(conn.scalars(select(Post.id)))
        for start in range(0, len(ids), CHUNK):
            vectors = rng.standard_normal((len(ids[start : start + CHUNK]), DIMENSIONS)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = [
                {"post_id": post_id, "model_name": MODEL, "vector": vector.tobytes(), "update_date": now}
                for post_id, vector in zip(ids[start : start + CHUNK], vectors, strict=True)
            ]
            conn.execute(insert(PostEmbedding), rows)
    with Session(engine) as session:
        # A reader who may not use one board: the mask and the rule check have work to do.
        closed = session.scalars(select(Board).order_by(Board.id.desc()).limit(1)).one()
        closed.is_public = False
        session.commit()
        reader = session.scalars(select(User).where(User.is_superuser.is_(False)).limit(1)).one()
        condition = access.post_readable_by(reader)
        scope = access.reading_scope(session, user=reader)

        def read() -> embeddings_crud.Candidates:
            return embeddings_crud.vectors_where(
                session, condition=condition, model_name=MODEL, dimensions=DIMENSIONS
            )

        candidates = read()
        queries = rng.standard_normal((32, DIMENSIONS)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        def before(batch: int) -> None:
            found = read()
            scores = found.vectors @ queries[:batch].T
            for column in range(batch):
                np.argsort(-scores[:, column], kind="stable")[:5]

        memory = PostVectors()
        started = time.perf_counter()
        memory.synced(session, model_name=MODEL)
        full_load = (time.perf_counter() - started) * 1000

        def after(batch: int) -> None:
            snapshot = memory.synced(session, model_name=MODEL)
            similar_posts.search(session, snapshot, scope, condition, queries[:batch], MODEL)

        figures = {
            "readable posts": float(len(candidates.ids)),
            "before 1": timed(lambda: before(1), repeats),
            "before 32": timed(lambda: before(32), repeats),
            "after 1": timed(lambda: after(1), repeats),
            "after 32": timed(lambda: after(32), repeats),
            "full load": full_load,
            "partial check": timed(
                lambda: embeddings_crud.any_without_vector(session, condition=condition, model_name=MODEL),
                repeats,
            ),
        }
    engine.dispose()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--posts", type=int, action="append", help="default: 20000 and 200000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("per batch, ms: before = the database each time; after = the vectors in memory")
    print("posts     readable  before 1  before 32  after 1  after 32 (per query)  full load  partial check")
    with tempfile.TemporaryDirectory(prefix="madang-ai-scale-") as folder:
        for posts in args.posts or [20_000, 200_000]:
            f = measure(posts, Path(folder), args.repeats)
            print(
                f"{posts:>7,}  {int(f['readable posts']):>8,}  {f['before 1']:>8.1f}  {f['before 32']:>9.1f}"
                f"  {f['after 1']:>7.1f}  {f['after 32']:>8.1f} ({f['after 32'] / 32:.2f})"
                f"  {f['full load']:>9.1f}  {f['partial check']:>13.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
