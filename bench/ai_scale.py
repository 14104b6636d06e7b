"""`python -m bench.ai_scale`: what similar-posts costs per batch as the community grows.

For each size (20,000 and 200,000 posts by default) it seeds a fresh SQLite database with the board
benchmark's seeder (bench/seed.py, no comments or likes), gives every post a stored vector (random
unit vectors: the cost does not depend on what they mean), and times, for a reader who may read
every board, the two parts of a similar-posts batch as services/ai/similar_posts.py runs them:

- reading the candidates: crud/embeddings.vectors_where with the access rule's condition, every
  readable post's id, board, title and vector in one query, made into one matrix;
- scoring: that matrix times the batch's query vectors (one, and 32), then the best five.

The issue's bar: above 50 ms a query at 200,000 posts, search needs an index.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from bench.seed import Sizes, fresh_database, seed
from crud import embeddings as embeddings_crud
from ml.encoder import DIMENSIONS
from models import Post, PostEmbedding, User
from services import access

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
    now = datetime.now(UTC)
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
        reader = session.scalars(select(User).where(User.is_superuser.is_(False)).limit(1)).one()
        condition = access.post_readable_by(reader)

        def read() -> embeddings_crud.Candidates:
            return embeddings_crud.vectors_where(
                session, condition=condition, model_name=MODEL, dimensions=DIMENSIONS
            )

        candidates = read()
        queries = rng.standard_normal((32, DIMENSIONS)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        def score(batch: int) -> None:
            scores = candidates.vectors @ queries[:batch].T
            for column in range(batch):
                np.argsort(-scores[:, column], kind="stable")[:5]

        figures = {
            "readable posts": float(len(candidates.ids)),
            "read candidates ms": timed(read, repeats),
            "score 1 query ms": timed(lambda: score(1), repeats),
            "score 32 queries ms": timed(lambda: score(32), repeats),
        }
    engine.dispose()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--posts", type=int, action="append", help="default: 20000 and 200000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        "posts     readable  read candidates  score 1 query  score 32 queries  per query, 1 / 32 (read+score)"
    )
    with tempfile.TemporaryDirectory(prefix="madang-ai-scale-") as folder:
        for posts in args.posts or [20_000, 200_000]:
            f = measure(posts, Path(folder), args.repeats)
            one = f["read candidates ms"] + f["score 1 query ms"]
            batch = (f["read candidates ms"] + f["score 32 queries ms"]) / 32
            print(
                f"{posts:>7,}  {int(f['readable posts']):>8,}  {f['read candidates ms']:>12.1f} ms"
                f"  {f['score 1 query ms']:>10.1f} ms  {f['score 32 queries ms']:>13.1f} ms"
                f"  {one:>8.1f} / {batch:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
