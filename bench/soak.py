"""The soak test: `python -m bench.soak [--seconds 120]` (`make soak`). The scale-out shape of
docs/operations.md ("From one machine to many") under a mixed load, then a look at the database
to see that nothing was lost.

1. A fresh MariaDB database (`alembic upgrade head`; the database of --database-url, which must
   be named madang_soak..., is dropped and created again), seeded small (bench/seed.py), with
   an administrator.
2. Two API processes (uvicorn, bench/run.py's start_server) on that database, sharing Redis
   (live events, and the rate limits: see below), one S3 bucket for attachments
   (STORAGE_BACKEND=s3, on moto's S3 server started for the run, bench/s3_server.py; or one
   temporary UPLOAD_DIR with --storage local), and one Celery worker process for AI jobs
   (AI_BACKEND=celery; the embedded runner would run in each API process, and one process
   starting up would take the other's queued jobs for lost).
3. The load generator (bench/soak_load.py) in its own process for --seconds: sign-ups, logins,
   token refresh, boards, posts, comments, likes, views, uploads and downloads, chat over REST
   and WebSocket across the two processes, AI jobs; it records every acknowledged write.
4. AI jobs drain (bounded), the servers and the worker get SIGTERM, and the database is
   checked against the recorded writes: rows, counters, attachments and their bytes, jobs; and
   the storage against the database: every attachment row has its object, every object its row.

Rate limits stay on, in Redis, as in production: every process counts against one total (a
probe proves it). Only the per-IP login limit is raised, because every simulated user comes
from 127.0.0.1; the per-account limits, the chat and AI limits keep their defaults and the load
stays under them. Live-event channels, the Celery queue and every Redis key (broker, rate-limit
counters) carry this run's id, so runs sharing one Redis never meet.

Prints the numbers and each check, and exits 1 on any 5xx or failed check.
"""

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import NO_MAIL, PYTHON, REPO, Server, run_load, server_errors, start_server
from bench.s3_server import S3Server, create_bucket, start_s3_server

DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/madang_soak?charset=utf8mb4"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE_PREFIX = "madang_soak"
SOAK_PASSWORD = "soak password, 2026"  # every seeded and signed-up user's; a throwaway database
ADMIN_NAME = "soak_admin"
MODELS = ["similar-posts", "board-suggest"]
API_PROCESSES = 2
WORKER_READY_SECONDS = 180
STOP_SECONDS = 30
# Argon2 at a light cost unless --production-hashing: at the default cost (3 passes over 64 MiB,
# 4 lanes) a hash takes about a third of a second of CPU, and on a two-core machine the sign-ups
# and logins that open a run would starve the mixed load for its first tens of seconds. A hash
# shares nothing with other requests, so its cost hides no concurrency problem.
LIGHT_HASHING = {
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "8192",
    "PASSWORD_HASH_PARALLELISM": "1",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load runs")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a MariaDB URL whose database name starts with madang_soak (dropped and created again)",
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="live events, rate limits, Celery broker"
    )
    parser.add_argument(
        "--users", type=int, default=24, help="simulated board users (half log in, half sign up)"
    )
    parser.add_argument("--chatters", type=int, default=6, help="users in a live support conversation")
    parser.add_argument("--posts", type=int, default=500, help="posts seeded before the load")
    parser.add_argument(
        "--drain-seconds", type=float, default=300.0, help="at most this long for AI jobs to end"
    )
    parser.add_argument("--seed", type=int, default=None, help="the load's random seed (default: random)")
    parser.add_argument(
        "--production-hashing",
        action="store_true",
        help="Argon2 at its default cost (default: a light cost, see LIGHT_HASHING)",
    )
    parser.add_argument(
        "--storage",
        choices=["s3", "local"],
        default="s3",
        help="where attachments go: a bucket on moto's S3 server started for the run, or UPLOAD_DIR",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, uploads)")
    args = parser.parse_args(argv)
    database = urllib.parse.urlsplit(args.database_url).path.lstrip("/")
    if not args.database_url.startswith("mysql") or not database.startswith(DATABASE_PREFIX):
        parser.error(f"--database-url must be a MariaDB URL to a database named {DATABASE_PREFIX}...")
    if args.users < 2 or args.chatters < 1 or args.seconds <= 0:
        parser.error("at least 2 users, 1 chatter and a positive duration")
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    return args


# --- setting up -------------------------------------------------------------------------------


@dataclass
class World:
    run_id: str
    workdir: Path
    environment: dict[str, str]
    seeded_users: list[list[Any]]
    board_ids: list[int]
    post_ids: list[int]
    seeded_views: dict[int, int]  # post id -> number_of_view before the load
    storage: str  # STORAGE_BACKEND: "s3" or "local"
    servers: list[Server] = field(default_factory=list)
    worker: "Worker | None" = None

    @property
    def upload_dir(self) -> Path:
        return Path(self.environment["UPLOAD_DIR"])


def configure_environment(
    args: argparse.Namespace, workdir: Path, run_id: str, s3: S3Server | None
) -> dict[str, str]:
    """Settings for this process, both API processes and the worker, set before any app module
    is imported. Channels, queue and broker keys, and the bucket, are this run's own."""
    os.environ.update(
        {
            "ENV": "production",
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "REDIS_URL": args.redis_url,
            "BROKER_CHANNEL": f"madang:soak:{run_id}:live",
            "RATE_LIMIT_ENABLED": "true",
            "LOGIN_LIMIT_PER_IP": "1000000",  # every simulated user shares 127.0.0.1
            "SIGNUP_LIMIT_PER_IP": "1000000",  # and signs up from it
            "UPLOAD_LIMIT_PER_HOUR": "1000000",  # users upload back to back, without a pause
            "RATE_LIMIT_KEY_PREFIX": f"madang-soak-{run_id}:rl:",
            "LOG_FORMAT": "text",  # tracebacks as lines, for the look at the logs afterwards
            "UPLOAD_DIR": str(workdir / "uploads"),
            "STORAGE_BACKEND": "local",
            "MODEL_DIR": str(workdir / "models"),
            **NO_MAIL,
            "AI_BACKEND": "celery",
            "AI_INDEX_POSTS": "true",
            "AI_MODEL_MODULES": "",
            "AI_EVENTS_CHANNEL": f"madang:soak:{run_id}:ai-jobs",
            "CELERY_BROKER_URL": args.redis_url,
            "CELERY_QUEUE": f"madang-soak-{run_id}",
            "CELERY_TRAIN_QUEUE": f"madang-soak-{run_id}-train",
            "CELERY_KEY_PREFIX": f"madang-soak-{run_id}:",
            # One torch thread for the worker's one pool process: the cores are shared with two
            # API processes, MariaDB and the load, and with a thread per core torch's threads
            # spin waiting for each other whenever one is descheduled (on a busy two-core
            # machine one forward took 2.4 s with two threads, 0.26 s with one).
            "AI_TORCH_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if s3 is not None:
        bucket = f"madang-soak-{run_id}"
        create_bucket(s3.endpoint_url, bucket)
        os.environ.update(s3.settings(bucket))
    for name, value in LIGHT_HASHING.items():
        if args.production_hashing:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return dict(os.environ)


def prepare(args: argparse.Namespace, workdir: Path, run_id: str, s3: S3Server | None) -> World:
    environment = configure_environment(args, workdir, run_id, s3)
    from sqlalchemy import text

    from bench import seed
    from database import make_engine, session_scope
    from services import admin, security

    started = time.perf_counter()
    seed.fresh_database(args.database_url)
    sizes = seed.Sizes(
        boards=5, users=max(args.users, 50), posts=args.posts, comments=args.posts * 6, likes=args.posts * 2
    )
    seeded = seed.seed(args.database_url, password_hash=security.hash_password(SOAK_PASSWORD), sizes=sizes)
    with session_scope() as session:
        admin.create_superuser(
            session, name=ADMIN_NAME, email="admin@soak.example.com", password=SOAK_PASSWORD
        )
    engine = make_engine(args.database_url)
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM user")).all())  # type: ignore[arg-type]
        views = dict(conn.execute(text("SELECT id, number_of_view FROM post")).all())  # type: ignore[arg-type]
    engine.dispose()
    rows = ", ".join(f"{count:,} {name}" for name, count in seeded.rows.items())
    print(f"setup   fresh schema + seeded {rows} + 1 administrator in {time.perf_counter() - started:.1f} s")
    return World(
        run_id=run_id,
        workdir=workdir,
        environment=environment,
        seeded_users=[[user_id, names[user_id]] for user_id in seeded.user_ids],
        board_ids=seeded.board_ids,
        post_ids=seeded.visible_post_ids,
        seeded_views=views,
        storage=environment["STORAGE_BACKEND"],
    )


@dataclass
class Worker:
    """`celery -A services.ai.celery_app worker` with one pool process, in its own process group."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, world: World) -> "Worker":
        log = world.workdir / "worker.log"
        queue = world.environment["CELERY_QUEUE"]
        command = [PYTHON, "-m", "celery", "-A", "services.ai.celery_app", "worker", "--pool", "prefork"]
        command += ["--concurrency", "1", "--loglevel", "INFO", "-Q", queue, "-n", f"{queue}@%h"]
        command += ["--without-gossip", "--without-mingle"]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=world.environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, log)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM to the main process (a warm shutdown: the pool process ends the task in hand
        first; a SIGTERM to the pool process itself would kill it mid-task); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_processes(world: World) -> None:
    world.worker = Worker.start(world)  # it loads the models while the API processes start
    for index in range(API_PROCESSES):
        world.servers.append(start_server(f"api-{index}", "main:app", world.workdir, world.environment))
    world.worker.wait_until_ready()
    ports = ", ".join(str(server.port) for server in world.servers)
    print(f"started {API_PROCESSES} API processes (ports {ports}) and a Celery worker (1 pool process)")


def stop_processes(world: World) -> dict[str, int | None]:
    """SIGTERM to each API process (bench/run.py's Server.stop) and the worker; exit codes."""
    codes: dict[str, int | None] = {}
    for server in world.servers:
        server.stop()
        codes[server.name] = server.process.returncode
    if world.worker is not None:
        codes["worker"] = world.worker.stop()
    return codes


def forget_redis_keys(url: str, run_id: str) -> None:
    """The run's broker and rate-limit keys (a queue the drain left unfinished, counters)."""
    import redis

    connection = redis.Redis.from_url(url)
    try:
        for key in connection.scan_iter(f"madang-soak-{run_id}:*"):
            connection.delete(key)
    finally:
        connection.close()


def load_spec(args: argparse.Namespace, world: World) -> dict[str, Any]:
    from config import settings

    return {
        "ports": [server.port for server in world.servers],
        "warmup": 0.0,  # none: a soak counts every request from the first
        "duration": args.seconds,
        "users": args.users,
        "chatters": args.chatters,
        "seed": args.seed,
        "run_id": world.run_id,
        "password": SOAK_PASSWORD,
        "seeded_users": world.seeded_users,
        "admin_name": ADMIN_NAME,
        "admin_password": SOAK_PASSWORD,
        "board_ids": world.board_ids,
        "post_ids": world.post_ids,
        "models": MODELS,
        "lockout_limit": settings.LOGIN_LIMIT_PER_ACCOUNT,
    }


def drain(url: str, writes: dict[str, Any], seconds: float) -> tuple[float, dict[str, int]]:
    """Waits until no AI job is queued or running and every post written during the load has a
    current embedding, at most `seconds`. Returns the time taken and what was still pending."""
    from sqlalchemy import text

    from database import make_engine

    written = [int(post_id) for post_id in writes["posts"]]
    engine = make_engine(url)
    started = time.monotonic()
    try:
        while True:
            with engine.connect() as conn:
                pending = {
                    "AI jobs queued or running": conn.execute(
                        text("SELECT count(*) FROM ai_log WHERE status IN ('queued', 'running')")
                    ).scalar_one(),
                    "posts without a current embedding": len(unembedded(conn, written)),
                }
            if not any(pending.values()) or time.monotonic() - started > seconds:
                return time.monotonic() - started, pending
            time.sleep(0.5)
    finally:
        engine.dispose()


def unembedded(conn: Any, post_ids: list[int]) -> list[int]:
    """Of these posts, those whose embedding is missing or older than their last edit."""
    from sqlalchemy import bindparam, text

    if not post_ids:
        return []
    query = text(
        "SELECT post.id FROM post LEFT JOIN post_embedding ON post_embedding.post_id = post.id "
        "WHERE post.id IN :ids "
        "AND (post_embedding.post_id IS NULL OR post_embedding.update_date < post.update_date)"
    ).bindparams(bindparam("ids", expanding=True))
    return list(conn.execute(query, {"ids": post_ids}).scalars())


# --- the checks -----------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def problems_text(problems: list[str], total: int, what: str) -> str:
    if not problems:
        return f"{total:,} {what}"
    return f"{len(problems):,} of {total:,} {what} wrong, e.g. " + "; ".join(problems[:3])


def database_checks(url: str, world: World, writes: dict[str, Any]) -> list[Check]:
    from sqlalchemy import text

    from bench.seed import COUNT_CHECKS
    from database import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> list[Any]:
                return list(conn.execute(text(sql)).all())

            users = {row.id: row for row in rows("SELECT id, name, email FROM user")}
            posts = {
                row.id: row
                for row in rows(
                    "SELECT id, board_id, user_id, name, content, number_of_view, is_file_attached, "
                    "is_visible FROM post"
                )
            }
            comments = {
                row.id: row
                for row in rows(
                    "SELECT id, post_id, user_id, content, is_file_attached, is_visible FROM comment"
                )
            }
            likes = {(row.user_id, row.post_id) for row in rows("SELECT user_id, post_id FROM post_like")}
            view_rows = {(row.user_id, row.post_id) for row in rows("SELECT user_id, post_id FROM post_view")}
            messages = {row.id: row for row in rows("SELECT id, chat_session_id, user_id, content FROM chat")}
            attachments = {
                row.id: row
                for row in rows(
                    "SELECT id, post_id, comment_id, uploader_id, storage_backend, storage_key, "
                    "content_type, size, sha256 FROM attachment"
                )
            }
            jobs = {row.id: row for row in rows("SELECT id, status FROM ai_log")}
            wrong_counters = {
                name: conn.execute(text(query)).scalar_one() for name, query in COUNT_CHECKS.items()
            }
            embeddings_missing = unembedded(conn, [int(post_id) for post_id in writes["posts"]])
            index_rows = {
                "post_search": rows("SELECT post_id, title_terms, content_terms FROM post_search"),
                "comment_search": rows("SELECT comment_id, terms FROM comment_search"),
            }
            if conn.dialect.name != "sqlite":  # MariaDB's posting tables (SQLite's FTS5 follows by triggers)
                index_rows["fts_post_term"] = rows("SELECT term, post_id, weight FROM fts_post_term")
                index_rows["fts_comment_term"] = rows("SELECT term, comment_id FROM fts_comment_term")
    finally:
        engine.dispose()

    checks = [
        check_users(users, writes["users"]),
        check_posts(posts, writes["posts"]),
        check_comments(comments, writes["comments"]),
        check_likes(likes, writes["likes"]),
        check_views(view_rows, writes["views"]),
        check_messages(messages, writes["chat_messages"]),
        check_attachments(attachments, writes["attachments"], world.storage, read_object),
    ]
    for name, wrong in wrong_counters.items():
        checks.append(
            Check(f"{name} = rows it counts", wrong == 0, f"wrong on {wrong} of {len(posts):,} posts")
        )
    checks.append(check_view_counters(posts, view_rows, world.seeded_views))
    checks.append(check_file_flags(posts, comments, attachments))
    checks.append(check_stored_objects(attachments, listed_objects(), unfinished_uploads()))
    checks.append(check_jobs(jobs, writes["ai_jobs"]))
    checks.append(check_search_index(posts, comments, index_rows))
    checks.append(
        Check(
            "every post written has a current embedding (index tasks drained)",
            not embeddings_missing,
            f"{len(embeddings_missing)} of {len(writes['posts'])} missing, e.g. {embeddings_missing[:5]}"
            if embeddings_missing
            else f"{len(writes['posts'])} posts",
        )
    )
    return checks


def check_search_index(posts: dict[int, Any], comments: dict[int, Any], index: dict[str, list[Any]]) -> Check:
    """The search index holds every post's and comment's terms as their text is now, and (on
    MariaDB) their posting rows exactly those terms: an edit's old terms gone, nothing left of
    a deleted row."""
    import search_text
    from crud.search import post_term_weights

    problems = []
    post_terms = {row.post_id: (row.title_terms, row.content_terms) for row in index["post_search"]}
    comment_terms = {row.comment_id: row.terms for row in index["comment_search"]}
    for post in posts.values():
        if post_terms.get(post.id) != (search_text.terms(post.name), search_text.terms(post.content)):
            problems.append(f"post {post.id}: stale terms")
    for comment in comments.values():
        if comment_terms.get(comment.id) != search_text.terms(comment.content):
            problems.append(f"comment {comment.id}: stale terms")
    if "fts_post_term" in index:
        posted: dict[int, dict[str, int]] = {}
        for row in index["fts_post_term"]:
            posted.setdefault(row.post_id, {})[row.term] = row.weight
        commented: dict[int, set[str]] = {}
        for row in index["fts_comment_term"]:
            commented.setdefault(row.comment_id, set()).add(row.term)
        for post_id, (title, content) in post_terms.items():
            if posted.pop(post_id, {}) != post_term_weights(title, content):
                problems.append(f"post {post_id}: posting rows differ from its terms")
        for comment_id, terms in comment_terms.items():
            if commented.pop(comment_id, set()) != set(terms.split()):
                problems.append(f"comment {comment_id}: posting rows differ from its terms")
        problems += [f"posting rows of post {post_id}, which has no terms row" for post_id in posted]
        problems += [
            f"posting rows of comment {comment_id}, which has no terms row" for comment_id in commented
        ]
    total = len(posts) + len(comments)
    return Check(
        "the search index holds every post's and comment's current terms (and on MariaDB its posting rows)",
        not problems,
        problems_text(problems, total, "posts and comments"),
    )


def check_users(users: dict[int, Any], written: dict[str, Any]) -> Check:
    problems = []
    for user_id, user in written.items():
        row = users.get(int(user_id))
        if row is None or (row.name, row.email) != (user["name"], user["email"]):
            problems.append(f"user {user_id}: {tuple(row) if row else 'missing'}")
    return Check("every sign-up is stored", not problems, problems_text(problems, len(written), "users"))


def check_posts(posts: dict[int, Any], written: dict[str, Any]) -> Check:
    problems = []
    for post_id, post in written.items():
        row = posts.get(int(post_id))
        want = (post["board_id"], post["user_id"], post["name"], post["content"], True)
        if row is None or (row.board_id, row.user_id, row.name, row.content, bool(row.is_visible)) != want:
            problems.append(f"post {post_id}: {'missing' if row is None else 'differs'}")
    return Check("every post as last written", not problems, problems_text(problems, len(written), "posts"))


def check_comments(comments: dict[int, Any], written: dict[str, Any]) -> Check:
    problems = []
    for comment_id, comment in written.items():
        row = comments.get(int(comment_id))
        want = (comment["post_id"], comment["user_id"], comment["content"], comment["is_visible"])
        if row is None or (row.post_id, row.user_id, row.content, bool(row.is_visible)) != want:
            problems.append(f"comment {comment_id}: {'missing' if row is None else 'differs'}")
    visible = sum(1 for comment in written.values() if comment["is_visible"])
    return Check(
        "every comment as last written (deleted ones hidden)",
        not problems,
        problems_text(problems, len(written), f"comments ({len(written) - visible} deleted)"),
    )


def check_likes(likes: set[tuple[int, int]], written: dict[str, bool]) -> Check:
    problems = []
    for key, liked in written.items():
        user_id, post_id = map(int, key.split(":"))
        if ((user_id, post_id) in likes) != liked:
            problems.append(f"user {user_id} post {post_id}: {'missing' if liked else 'still there'}")
    on = sum(written.values())
    return Check(
        "every like and unlike as last acknowledged",
        not problems,
        problems_text(
            problems, len(written), f"(user, post) pairs ({on} liked, {len(written) - on} unliked)"
        ),
    )


def check_views(view_rows: set[tuple[int, int]], written: list[list[int]]) -> Check:
    missing = [f"user {u} post {p}" for u, p in written if (u, p) not in view_rows]
    return Check(
        "every read post has its PostView row", not missing, problems_text(missing, len(written), "reads")
    )


def check_messages(messages: dict[int, Any], written: dict[str, Any]) -> Check:
    problems = []
    for message_id, message in written.items():
        row = messages.get(int(message_id))
        want = (message["session_id"], message["user_id"], message["content"])
        if row is None or (row.chat_session_id, row.user_id, row.content) != want:
            problems.append(f"message {message_id}: {'missing' if row is None else 'differs'}")
    return Check(
        "every acknowledged chat message is stored",
        not problems,
        problems_text(problems, len(written), "messages"),
    )


def read_object(backend: str, key: str) -> bytes | None:
    """The object's bytes, from the backend a row names (None if it is not there)."""
    from services.storage import ObjectMissing, get_storage

    try:
        return b"".join(get_storage(backend).open(key).chunks)
    except ObjectMissing:
        return None


def check_attachments(
    attachments: dict[int, Any],
    written: dict[str, Any],
    backend: str,
    read: Callable[[str, str], bytes | None],
) -> Check:
    """Every acknowledged upload has its row, on the run's backend, and its object holds the
    bytes uploaded; every deleted one is gone."""
    problems = []
    for attachment_id, attachment in written.items():
        row = attachments.get(int(attachment_id))
        if attachment["deleted"]:
            if row is not None:
                problems.append(f"attachment {attachment_id}: deleted, still there")
            continue
        owner_id = attachment["owner_id"]
        want_owner = (owner_id, None) if attachment["owner"] == "post" else (None, owner_id)
        if row is None:
            problems.append(f"attachment {attachment_id}: missing")
        elif (
            (row.post_id, row.comment_id),
            row.uploader_id,
            row.content_type,
            row.size,
            row.sha256,
            row.storage_backend,
        ) != (
            want_owner,
            attachment["uploader_id"],
            attachment["content_type"],
            attachment["size"],
            attachment["sha256"],
            backend,
        ):
            problems.append(f"attachment {attachment_id}: row differs")
        else:
            data = read(row.storage_backend, row.storage_key)
            if data is None or hashlib.sha256(data).hexdigest() != attachment["sha256"]:
                problems.append(
                    f"attachment {attachment_id}: object {'missing' if data is None else 'differs'}"
                )
    deleted = sum(1 for attachment in written.values() if attachment["deleted"])
    return Check(
        f"every upload stored in {backend} with its bytes; every deleted one gone",
        not problems,
        problems_text(problems, len(written), f"attachments ({deleted} deleted)"),
    )


def check_view_counters(
    posts: dict[int, Any], view_rows: set[tuple[int, int]], seeded: dict[int, int]
) -> Check:
    """A first view inserts a PostView row and adds one (services/posts.py); a renewal would
    add one more, but only after VIEW_DEDUPE_MINUTES (480), longer than any soak. So each post's
    number_of_view is what it was seeded with plus its PostView rows."""
    counted = Counter(post_id for _, post_id in view_rows)
    wrong = [
        f"post {post_id}: {row.number_of_view} != {seeded.get(post_id, 0)} + {counted[post_id]}"
        for post_id, row in posts.items()
        if row.number_of_view != seeded.get(post_id, 0) + counted[post_id]
    ]
    return Check(
        "number_of_view = seeded views + PostView rows",
        not wrong,
        problems_text(wrong, len(posts), f"posts ({sum(counted.values()):,} views counted)"),
    )


def check_file_flags(posts: dict[int, Any], comments: dict[int, Any], attachments: dict[int, Any]) -> Check:
    with_post = {row.post_id for row in attachments.values() if row.post_id is not None}
    with_comment = {row.comment_id for row in attachments.values() if row.comment_id is not None}
    wrong = [f"post {i}" for i, row in posts.items() if bool(row.is_file_attached) != (i in with_post)]
    wrong += [
        f"comment {i}" for i, row in comments.items() if bool(row.is_file_attached) != (i in with_comment)
    ]
    return Check(
        "is_file_attached = the owner has attachments",
        not wrong,
        problems_text(wrong, len(posts) + len(comments), "posts and comments"),
    )


def listed_objects() -> dict[str, set[str]]:
    """The keys of the committed objects of each backend the run's settings reach."""
    from config import settings
    from services.storage import BACKENDS, get_storage

    backends = [name for name in BACKENDS if name != "s3" or settings.S3_BUCKET]
    return {name: {info.key for info in get_storage(name).iter_objects()} for name in backends}


def unfinished_uploads() -> list[str]:
    """What uploads left half-written: files under UPLOAD_DIR/.partial, multipart uploads of the
    bucket neither completed nor aborted."""
    from config import settings
    from services.storage import LocalStorage, S3Storage, get_storage

    local = get_storage("local")
    assert isinstance(local, LocalStorage)
    found = [f"partial file {path.name}" for path in local.partial_dir.glob("*")]
    if settings.S3_BUCKET:
        bucket = get_storage("s3")
        assert isinstance(bucket, S3Storage)
        uploads = bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", [])
        found += [f"multipart upload of {upload['Key']}" for upload in uploads]
    return found


def check_stored_objects(
    attachments: dict[int, Any], listed: dict[str, set[str]], unfinished: list[str]
) -> Check:
    """The storage holds exactly the attachment rows' objects: each row's object where the row
    says (`storage_backend`), no object that no row names, no upload left half-written."""
    named: dict[str, set[str]] = {backend: set() for backend in listed}
    without_object = []
    for attachment_id, row in sorted(attachments.items()):
        named.setdefault(row.storage_backend, set()).add(row.storage_key)
        if row.storage_key not in listed.get(row.storage_backend, set()):
            without_object.append(f"attachment {attachment_id} ({row.storage_backend})")
    orphans = [
        f"{backend} object {key[:4]}"
        for backend, keys in sorted(listed.items())
        for key in sorted(keys - named[backend])
    ]
    ok = not orphans and not without_object and not unfinished
    detail = "; ".join(
        f"{backend}: {len(listed.get(backend, set())):,} objects = {len(keys):,} rows"
        for backend, keys in sorted(named.items())
    )
    if not ok:
        detail = (
            f"{len(orphans)} objects without a row, {len(without_object)} rows without their object, "
            f"{len(unfinished)} uploads left unfinished, e.g. "
            + "; ".join((orphans + without_object + unfinished)[:4])
        )
    return Check(
        "every attachment row has its object and every object its row; no upload left unfinished", ok, detail
    )


def check_jobs(jobs: dict[int, Any], written: dict[str, Any]) -> Check:
    left = [job_id for job_id, row in jobs.items() if row.status in ("queued", "running")]
    missing = [job_id for job_id in written if int(job_id) not in jobs]
    statuses = Counter(jobs[int(job_id)].status for job_id in written if int(job_id) in jobs)
    not_succeeded = sum(count for status, count in statuses.items() if status != "succeeded")
    ok = not left and not missing and not not_succeeded
    detail = f"{len(written)} submitted: " + ", ".join(
        f"{n} {status}" for status, n in statuses.most_common()
    )
    if left or missing:
        detail += f"; {len(left)} rows still queued or running, {len(missing)} submitted jobs missing"
    return Check("every AI job ended and succeeded; none left queued or running", ok, detail)


def load_checks(result: dict[str, Any], lockout_limit: int) -> list[Check]:
    chat = result["chat"]
    lockout = result["lockout"]
    want = [401] * lockout_limit + [429]
    unexpected = sum(result["unexpected"].values())
    transport = sum(result["transport_errors"].values())
    return [
        Check("no 5xx", not result["server_errors"], f"{sum(result['server_errors'].values())} answers"),
        Check("no unexpected status (4xx or other)", not unexpected, f"{unexpected} answers"),
        Check(
            "every request answered (no timeout or reset)", not transport, f"{transport} without an answer"
        ),
        Check(
            "answers agree with what was written (reads, downloads, like counts)",
            not result["integrity"],
            "; ".join(result["integrity"][:3]) or "no contradiction",
        ),
        Check(
            "failed logins through both processes lock the account (rate limits shared in Redis)",
            lockout.get("statuses") == want,
            f"statuses {lockout.get('statuses')}",
        ),
        Check(
            "every WebSocket chat.send acknowledged",
            chat["unacked"] == 0 and chat["acked"] > 0,
            f"{chat['acked']} acked, {chat['unacked']} not",
        ),
        Check(
            "every chat message reached every member's socket (live, or read back after a resync), "
            "across processes",
            chat["lost"] == 0 and chat["deliveries_across_processes"] > 0,
            f"{chat['deliveries_received']:,}/{chat['deliveries_expected']:,} delivered "
            f"({chat['deliveries_across_processes']:,} live to the other process, "
            f"{chat['recovered_after_resync']} read back after {chat['resyncs']} resyncs), "
            f"{chat['lost']} lost" + (f": {'; '.join(chat['lost_examples'])}" if chat["lost"] else ""),
        ),
        Check(
            "no socket closed early, no error event",
            not chat["closed"] and not chat["errors"],
            "; ".join(chat["closed"][:2] + chat["errors"][:2]) or f"{chat['sockets']} sockets",
        ),
    ]


def process_checks(codes: dict[str, int | None], logs: dict[str, Path]) -> list[Check]:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again, so a clean stop
    # ends "killed by SIGTERM"; one that hangs is killed with SIGKILL (-9) after 10 s.
    clean = {name: (0, -signal.SIGTERM) if name.startswith("api-") else (0,) for name in codes}
    checks = [
        Check(
            "every process stopped by SIGTERM within the grace period",
            all(code in clean[name] for name, code in codes.items()),
            ", ".join(f"{name} exit {code}" for name, code in codes.items()),
        )
    ]
    errors: Counter[str] = Counter()
    for name, log in logs.items():
        for line, count in server_errors(log, 0, top=20).items():
            errors[f"{name}: {line}"] += count
    checks.append(
        Check(
            "no exception in the server and worker logs",
            not errors,
            "; ".join(f"{n}x {line}" for line, n in errors.most_common(3)) or "none",
        )
    )
    return checks


# --- the report -----------------------------------------------------------------------------------


def print_load(args: argparse.Namespace, result: dict[str, Any]) -> None:
    requests, seconds = result["requests"], result["seconds"]
    print(
        f"load    {seconds:.1f} s, {requests:,} HTTP requests, {requests / seconds:,.1f} req/s "
        f"({args.users} board users, {args.chatters} chatters, 1 administrator; seed {args.seed})"
    )
    print("status  " + ", ".join(f"{status}: {n:,}" for status, n in sorted(result["statuses"].items())))
    for title, counts in (
        ("expected 4xx (on purpose)", result["expected_4xx"]),
        ("unexpected statuses", result["unexpected"]),
        ("5xx by endpoint", result["server_errors"]),
        ("no answer", result["transport_errors"]),
    ):
        shown = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "none"
        print(f"{title}: {shown}")
    for key in list(result["server_errors"]) + list(result["unexpected"]):
        if key in result["samples"]:
            print(f"  {key}: {result['samples'][key]}")
    print(f"\n{'request kind':<38}{'count':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, numbers in sorted(result["latencies"].items()):
        print(
            f"{kind:<38}{numbers['count']:>8,}{numbers['p50_ms']:>9.1f}{numbers['p99_ms']:>9.1f}{numbers['max_ms']:>9.0f}"
        )
    slowest = ", ".join(
        f"{endpoint} {seconds:.1f} s (sent at {at:.0f} s, api-{process})"
        for seconds, at, endpoint, process in result["slowest"]
    )
    print(f"slowest {slowest}")
    chat = result["chat"]
    print(
        f"\nwebsocket {chat['sockets']} sockets; chat.send sent {chat['sent_ws']}, acked {chat['acked']}; "
        f"REST messages sent {chat['sent_rest']}; {chat['messages_acknowledged']} messages acknowledged; "
        f"other events {chat['other_events']}"
    )
    print(
        f"          deliveries expected {chat['deliveries_expected']:,}, "
        f"received {chat['deliveries_received']:,} "
        f"({chat['deliveries_across_processes']:,} live across processes, "
        f"{chat['recovered_after_resync']} read back after {chat['resyncs']} resyncs), lost {chat['lost']}"
    )
    for name in ("delivery_latencies", "ack_latencies"):
        numbers = chat[name]
        if numbers["count"]:
            print(
                f"          {name.removesuffix('_latencies')} latency ms: p50 {numbers['p50_ms']:.1f}"
                f" p99 {numbers['p99_ms']:.1f} max {numbers['max_ms']:.0f} ({numbers['count']:,})"
            )
    writes = result["writes"]
    print(
        "writes  "
        + ", ".join(
            f"{len(writes[name]):,} {name.replace('_', ' ')}"
            for name in (
                "users",
                "posts",
                "comments",
                "likes",
                "views",
                "attachments",
                "chat_messages",
                "ai_jobs",
            )
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    workdir = Path(tempfile.mkdtemp(prefix="madang-soak-"))
    run_id = secrets.token_hex(4)
    world: World | None = None
    s3: S3Server | None = None
    started = time.monotonic()
    try:
        if args.storage == "s3":
            s3 = start_s3_server(log=workdir / "s3.log")
        world = prepare(args, workdir, run_id, s3)
        storage = (
            f"STORAGE_BACKEND=s3 (bucket {world.environment['S3_BUCKET']} on moto at {s3.endpoint_url})"
            if s3 is not None
            else f"STORAGE_BACKEND=local (UPLOAD_DIR {world.upload_dir})"
        )
        print(
            f"soak    MariaDB {args.database_url}; Redis {args.redis_url} (live events, rate limits, Celery "
            f"broker); AI_BACKEND=celery; {storage}; ENV=production; Argon2 "
            f"{'default' if args.production_hashing else 'light'} cost; {os.cpu_count()} CPUs"
        )
        start_processes(world)
        spec = load_spec(args, world)
        result = run_load(spec, module="bench.soak_load")
        print_load(args, result)
        drained, pending = drain(args.database_url, result["writes"], args.drain_seconds)
        still = ", ".join(f"{n} {what}" for what, n in pending.items() if n) or "nothing pending"
        print(f"drain   {drained:.1f} s after the load: {still}")
        codes = stop_processes(world)
        logs = {server.name: server.log for server in world.servers}
        if world.worker is not None:
            logs["worker"] = world.worker.log
        checks = load_checks(result, spec["lockout_limit"])
        checks += process_checks(codes, logs)
        checks += database_checks(args.database_url, world, result["writes"])
        print("\nchecks")
        for check in checks:
            print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        failed = [check for check in checks if not check.ok]
        verdict = "PASS" if not failed else f"FAIL ({len(failed)} of {len(checks)} checks failed)"
        print(f"\nsoak    {verdict}; {len(checks)} checks; {time.monotonic() - started:.0f} s in all")
        if args.json:
            payload = {key: value for key, value in result.items() if key != "writes"}
            payload["checks"] = [check.__dict__ for check in checks]
            payload["storage"] = world.storage
            args.json.write_text(json.dumps(payload, indent=2, default=str))
        return 0 if not failed else 1
    finally:
        if world is not None:
            stop_processes(world)
            forget_redis_keys(args.redis_url, run_id)
        if s3 is not None:
            s3.stop()
        if args.keep:
            print(f"kept    {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
