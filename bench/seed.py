"""A fresh, migrated database filled with a realistic community, fast.

Rows go in with bulk INSERTs through SQLAlchemy Core (executemany in chunks), never through the
ORM or the API. Counters are computed from the rows they count, so `number_of_comment` equals the
visible comments of a post and `number_of_like` its PostLike rows.
"""

import bisect
import itertools
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, bindparam, create_engine, insert, text
from sqlalchemy.engine import Connection, Engine, make_url

from bench import corpus

CHUNK_ROWS = 5_000
HIDDEN_POST_SHARE = 0.005  # soft-deleted posts, so the list's visibility filter has work to do
HIDDEN_COMMENT_SHARE = 0.01


@dataclass(frozen=True)
class Sizes:
    boards: int = 10
    users: int = 1_000
    posts: int = 20_000
    comments: int = 200_000
    likes: int = 60_000  # roughly; each post gets a skewed share of distinct likers


@dataclass(frozen=True)
class SeededData:
    board_ids: list[int]
    user_ids: list[int]
    visible_post_ids: list[int]
    rows: dict[str, int]
    seconds: float
    search_index_seconds: float = 0.0  # of `seconds`: filling the search index after the rows


def fresh_database(url: str) -> None:
    """An empty database at `url` migrated with `alembic upgrade head`. A MariaDB database is
    dropped and created again; a SQLite file must not exist yet (the caller owns its folder)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "mysql":
        server = create_engine(parsed.set(database=""))
        try:
            with server.begin() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
                charset = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                conn.execute(text(f"CREATE DATABASE `{parsed.database}` {charset}"))
        finally:
            server.dispose()
    from config import BASE_DIR

    config = Config(str(BASE_DIR / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def seed(url: str, *, password_hash: str, sizes: Sizes = Sizes(), rng_seed: int = 20261126) -> SeededData:
    """Fills a fresh database. Every user's password hash is the same string: hashing a
    thousand Argon2 passwords would take minutes and prove nothing."""
    from database import make_engine, utcnow

    started = time.perf_counter()
    rng = random.Random(rng_seed)
    now = utcnow()
    engine: Engine = make_engine(url)
    try:
        with engine.begin() as conn:
            board_ids = _insert_boards(conn, sizes, now)
            user_ids = _insert_users(conn, sizes, rng, password_hash, now)
            posts = _plan_posts(sizes, rng, board_ids, user_ids, now)
            _plan_comments_and_likes(sizes, rng, posts, user_ids)
            _insert_posts(conn, rng, posts)
            comment_rows = _insert_comments(conn, rng, posts, user_ids, now)
            like_rows = _insert_likes(conn, rng, posts, now)
        index_started = time.perf_counter()
        fill_search_index(engine)
        index_seconds = time.perf_counter() - index_started
        if engine.dialect.name == "mysql":
            # InnoDB refreshes statistics on its own after bulk changes, but in the background;
            # do it now so the first measured query does not race it.
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "ANALYZE TABLE `user`, board, post, comment, post_like, post_search, comment_search, "
                        "fts_post_term, fts_comment_term"
                    )
                )
        with engine.connect() as conn:
            _check_counts(conn)
    finally:
        engine.dispose()
    return SeededData(
        board_ids=board_ids,
        user_ids=user_ids,
        visible_post_ids=[p.id for p in posts if p.is_visible],
        rows={
            "boards": len(board_ids),
            "users": len(user_ids),
            "posts": len(posts),
            "comments": comment_rows,
            "likes": like_rows,
        },
        seconds=time.perf_counter() - started,
        search_index_seconds=index_seconds,
    )


def fill_search_index(engine: Engine) -> None:
    """The search index of every seeded post and comment: the rows went in with Core, past the
    services that index what they write, so it is written here as `cli.py search reindex` does."""
    from sqlalchemy.orm import Session

    from services import search

    with Session(engine) as session:
        search.reindex(session)


# The tables seed() fills; a run adds rows to others (views, comments, a login's refresh token).
SEEDED_TABLES = ("board", "user", "post", "comment", "post_like")
# Filled by seed() too, from the seeded rows (a run's comments leave with their rows: ON DELETE CASCADE).
SEARCH_INDEX_TABLES = ("post_search", "comment_search")


def reuse(url: str, *, sizes: Sizes = Sizes()) -> SeededData | None:
    """The data an earlier seed() left at `url`, put back as seed() made it, or None when the
    database is missing, migrated to another revision or not seeded with these sizes (then
    seed a fresh one). What runs added goes: comments past the seeded ids (their posts' comment
    counters recomputed from the rows) and every row of the tables seed() leaves empty. View
    counters keep what earlier runs added: a run measures views as a difference."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    from config import BASE_DIR
    from database import make_engine

    started = time.perf_counter()
    head = ScriptDirectory.from_config(Config(str(BASE_DIR / "alembic.ini"))).get_current_head()
    engine: Engine = make_engine(url)
    try:
        try:
            with engine.connect() as conn:
                if MigrationContext.configure(conn).get_current_revision() != head:
                    return None
        except OperationalError:  # no such database
            return None
        with engine.begin() as conn:
            rows = {
                name: conn.execute(text(f"SELECT count(*) FROM `{name}`")).scalar_one()
                for name in SEEDED_TABLES
            }
            seeded_comments = conn.execute(
                text("SELECT count(*) FROM comment WHERE id <= :n"), {"n": sizes.comments}
            ).scalar_one()
            expected = (rows["board"], rows["user"], rows["post"], seeded_comments)
            if expected != (sizes.boards, sizes.users, sizes.posts, sizes.comments):
                return None
            indexed = conn.execute(text("SELECT count(*) FROM post_search")).scalar_one()
            if indexed != sizes.posts:  # seeded before the search index was filled by seed()
                return None
            _undo_runs(conn, sizes)
            board_ids = list(conn.execute(text("SELECT id FROM board ORDER BY id")).scalars())
            user_ids = list(conn.execute(text("SELECT id FROM `user` ORDER BY id")).scalars())
            visible = conn.execute(text("SELECT id FROM post WHERE is_visible = 1 ORDER BY id")).scalars()
            visible_post_ids = list(visible)
        with engine.connect() as conn:
            _check_counts(conn)
    finally:
        engine.dispose()
    return SeededData(
        board_ids=board_ids,
        user_ids=user_ids,
        visible_post_ids=visible_post_ids,
        rows={
            "boards": rows["board"],
            "users": rows["user"],
            "posts": rows["post"],
            "comments": sizes.comments,
            "likes": rows["post_like"],
        },
        seconds=time.perf_counter() - started,
    )


def _undo_runs(conn: Connection, sizes: Sizes) -> None:
    import models

    touched = list(
        conn.execute(
            text("SELECT DISTINCT post_id FROM comment WHERE id > :n"), {"n": sizes.comments}
        ).scalars()
    )
    conn.execute(text("DELETE FROM comment WHERE id > :n"), {"n": sizes.comments})
    for start in range(0, len(touched), CHUNK_ROWS):
        conn.execute(
            text(
                "UPDATE post SET number_of_comment = (SELECT count(*) FROM comment "
                "WHERE comment.post_id = post.id AND comment.is_visible = 1) WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": touched[start : start + CHUNK_ROWS]},
        )
    for table in reversed(models.Base.metadata.sorted_tables):
        if table.name not in (*SEEDED_TABLES, *SEARCH_INDEX_TABLES):
            conn.execute(table.delete())


@dataclass
class _PlannedPost:
    id: int
    board_id: int
    user_id: int
    korean: bool
    create_date: datetime
    is_visible: bool
    comment_visibility: list[bool] = field(default_factory=list)
    likers: list[int] = field(default_factory=list)
    number_of_comment: int = 0
    number_of_like: int = 0


def _table(name: str) -> Table:
    import models

    return models.Base.metadata.tables[name]


def _bulk_insert(conn: Connection, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
        conn.execute(insert(table), chunk)
        count += len(chunk)
    return count


def _skewed_weights(count: int, rng: random.Random, exponent: float) -> list[float]:
    """Zipf-like weights in random order: a few items get most of the activity."""
    weights = [1.0 / (rank**exponent) for rank in range(1, count + 1)]
    rng.shuffle(weights)
    return weights


def _insert_boards(conn: Connection, sizes: Sizes, now: datetime) -> list[int]:
    boards = corpus.BOARDS[: sizes.boards]
    rows = [
        {
            "id": index,
            "name": name,
            "information": information,
            "is_public": True,
            "is_visible": True,
            "create_date": now - timedelta(days=400),
        }
        for index, (name, information) in enumerate(boards, start=1)
    ]
    conn.execute(insert(_table("board")), rows)
    return [row["id"] for row in rows]


def _insert_users(
    conn: Connection, sizes: Sizes, rng: random.Random, password_hash: str, now: datetime
) -> list[int]:
    names = corpus.user_names(sizes.users, rng)
    rows = (
        {
            "id": index,
            "name": name,
            "email": f"user{index}@example.com",
            "password_hash": password_hash,
            "join_date": now - timedelta(days=400, minutes=rng.randint(0, 60 * 24 * 30)),
            "is_superuser": False,
            "is_banned": False,
            "token_version": 0,
        }
        for index, name in enumerate(names, start=1)
    )
    _bulk_insert(conn, _table("user"), rows)
    return list(range(1, sizes.users + 1))


def _plan_posts(
    sizes: Sizes, rng: random.Random, board_ids: Sequence[int], user_ids: Sequence[int], now: datetime
) -> list[_PlannedPost]:
    """Posts in time order (ids follow creation), spread over the last year."""
    board_weights = corpus.BOARD_WEIGHTS[: len(board_ids)]
    author_weights = list(itertools.accumulate(_skewed_weights(len(user_ids), rng, 0.8)))
    year = timedelta(days=365)
    posts = []
    for index in range(1, sizes.posts + 1):
        posts.append(
            _PlannedPost(
                id=index,
                board_id=rng.choices(board_ids, weights=board_weights)[0],
                user_id=user_ids[bisect.bisect(author_weights, rng.random() * author_weights[-1])],
                korean=rng.random() < 0.7,
                create_date=now - year + year * (index / (sizes.posts + 1)),
                is_visible=rng.random() >= HIDDEN_POST_SHARE,
            )
        )
    return posts


def _plan_comments_and_likes(
    sizes: Sizes, rng: random.Random, posts: list[_PlannedPost], user_ids: Sequence[int]
) -> None:
    """How many comments (and which are hidden) and which likers each post gets, so the
    post rows can carry counters that match before their comments and likes exist."""
    comments = Counter(
        rng.choices(range(len(posts)), weights=_skewed_weights(len(posts), rng, 0.6), k=sizes.comments)
    )
    likes = Counter(
        rng.choices(range(len(posts)), weights=_skewed_weights(len(posts), rng, 0.7), k=sizes.likes)
    )
    for index, post in enumerate(posts):
        post.comment_visibility = [rng.random() >= HIDDEN_COMMENT_SHARE for _ in range(comments[index])]
        post.number_of_comment = sum(post.comment_visibility)
        post.likers = rng.sample(user_ids, min(likes[index], len(user_ids)))
        post.number_of_like = len(post.likers)


def _insert_posts(conn: Connection, rng: random.Random, posts: list[_PlannedPost]) -> int:
    rows = (
        {
            "id": post.id,
            "board_id": post.board_id,
            "user_id": post.user_id,
            "name": corpus.title(rng, post.korean),
            "content": corpus.post_content(rng, post.korean),
            "create_date": post.create_date,
            "update_date": post.create_date,
            # Views outnumber replies and likes. PostView starts empty: its rows only dedupe
            # views inside VIEW_DEDUPE_MINUTES, and these views are older.
            "number_of_view": post.number_of_comment * 3 + post.number_of_like * 5 + rng.randint(1, 200),
            "number_of_comment": post.number_of_comment,
            "number_of_like": post.number_of_like,
            "is_file_attached": False,
            "is_visible": post.is_visible,
        }
        for post in posts
    )
    return _bulk_insert(conn, _table("post"), rows)


def _insert_comments(
    conn: Connection, rng: random.Random, posts: list[_PlannedPost], user_ids: Sequence[int], now: datetime
) -> int:
    def rows() -> Iterator[dict[str, Any]]:
        comment_id = 0
        for post in posts:
            window = now - post.create_date
            # Most replies come soon after the post; ids follow time within a post.
            offsets = sorted(window * (rng.random() ** 3) for _ in post.comment_visibility)
            for offset, visible in zip(offsets, post.comment_visibility, strict=True):
                comment_id += 1
                created = post.create_date + offset
                yield {
                    "id": comment_id,
                    "user_id": rng.choice(user_ids),
                    "post_id": post.id,
                    "content": corpus.comment_content(rng),
                    "create_date": created,
                    "update_date": created,
                    "is_file_attached": False,
                    "is_visible": visible,
                }

    return _bulk_insert(conn, _table("comment"), rows())


def _insert_likes(conn: Connection, rng: random.Random, posts: list[_PlannedPost], now: datetime) -> int:
    rows = (
        {
            "user_id": user_id,
            "post_id": post.id,
            "create_date": post.create_date + (now - post.create_date) * rng.random(),
        }
        for post in posts
        for user_id in post.likers
    )
    return _bulk_insert(conn, _table("post_like"), rows)


COUNT_CHECKS = {
    "number_of_comment": (
        "SELECT count(*) FROM post WHERE number_of_comment <> "
        "(SELECT count(*) FROM comment WHERE comment.post_id = post.id AND comment.is_visible = 1)"
    ),
    "number_of_like": (
        "SELECT count(*) FROM post WHERE number_of_like <> "
        "(SELECT count(*) FROM post_like WHERE post_like.post_id = post.id)"
    ),
}


def _check_counts(conn: Connection) -> None:
    for counter, query in COUNT_CHECKS.items():
        wrong = conn.execute(text(query)).scalar_one()
        if wrong:
            raise RuntimeError(f"seeding left {wrong} posts whose {counter} disagrees with its rows")
