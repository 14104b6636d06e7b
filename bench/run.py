"""One command that seeds, serves, loads and prints: `python -m bench [--database-url URL]`.

1. A fresh database (`alembic upgrade head`; a SQLite file in a temporary folder, or the
   MariaDB database named in the URL, dropped and created again), seeded in bulk (bench/seed.py);
   with --reuse-seeded, a MariaDB database an earlier run seeded is reused (what runs added is
   removed first).
2. The app under uvicorn (one worker, no access log, rate limits off, ENV=production with a
   random SECRET_KEY, default Argon2 cost) in a subprocess on a free port.
3. The ceiling (bench/ceiling.py) in a second subprocess, sending the list SQL captured from
   the app while it served one page.
4. The load generator (bench/loadgen.py) in a third process, one scenario at a time, the
   scenarios taking turns in short slices (--rounds), with access tokens minted by
   services.security.create_access_token under the server's SECRET_KEY (one real login
   through POST /auth/login checks the seeded password too).

Nothing is written into the repository; the temporary folder is removed at the end.
"""

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from serving import UVICORN_FLAGS

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_PASSWORD = "bench password, 2026"  # every seeded user's; a throwaway database
# ENV=production refuses to start without SMTP_HOST. No benchmark sends mail (none asks for a
# password reset); were one sent, nothing listens on the loopback's port 9: it would fail at once,
# logged on the mail thread, the request long answered.
NO_MAIL = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9"}
# A page the list SQL is captured on: values that no other parameter of the query can take, so
# each position in the captured parameters is known to be the board id, the offset or the limit.
CAPTURE_PAGE = {"board_id": 3, "offset": 60, "limit": 20}
LIST_TARGET = 0.5
READ_P99_TARGET_MS = 100.0
SEARCH_P99_TARGET_MS = {"search": 100.0, "hybrid": 150.0}
SCENARIOS = ("ceiling", "list", "read", "comment", "floor", "search", "nothing", "like", "hybrid")
# hybrid needs the sentence encoder loaded and every post embedded: asked for by name only.
DEFAULT_SCENARIOS = ("ceiling", "list", "read", "comment", "floor", "search", "nothing", "like")
SCENARIO_TITLES = {
    "floor": "GET /health (floor)",
    "ceiling": "list page, ceiling",
    "list": "list page",
    "read": "read post",
    "comment": "create comment",
    "search": "search, keyword",
    "nothing": "search, no match",
    "hybrid": "search, hybrid",
    "like": "LIKE search (old)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        help="a MariaDB URL whose database name starts with madang_bench (it is dropped and "
        "created again); default: a SQLite file in a temporary folder",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the app's uvicorn worker processes (default 1, as `make run` serves; the ceiling stays "
        "one): its CPU is theirs and their parent's, summed",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per scenario, not measured")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="split each scenario's measured time into this many slices, the scenarios taking turns "
        "(ceiling, list, read, comment, ceiling, ...), so that other work on the machine weighs on "
        "each alike; the first slice of each gets the full warm-up, later ones a short one",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (hybrid loads the model: not by default)",
    )
    parser.add_argument(
        "--posts",
        type=int,
        default=20_000,
        help="posts to seed, with 10 comments and 3 likes per post (default 20,000)",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="sample the server with py-spy during an extra list run (auto: when the list misses its target)",
    )
    parser.add_argument(
        "--reuse-seeded",
        action="store_true",
        help="MariaDB: keep the database an earlier run seeded (what runs added is removed) instead of "
        "seeding it again; seeds it when it is missing, on another migration or of other sizes",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, logs)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.database_url:
        database = urllib.parse.urlsplit(args.database_url).path.lstrip("/")
        if not args.database_url.startswith("mysql") or not database.startswith("madang_bench"):
            parser.error("--database-url must be a MariaDB URL to a database named madang_bench...")
    return args


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: int = 1

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The server's process and, under `--workers`, the worker processes it started (not the
        model processes a single server starts: they are measured apart, as before)."""
        return [self.process.pid, *(child_pids(self.process.pid) if self.workers > 1 else [])]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run (Linux's /proc/PID/task/TID/children)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in children.read_text().split()]
    return found


def start_server(name: str, target: str, workdir: Path, env: dict[str, str], *, workers: int = 1) -> Server:
    port = free_port()
    log = workdir / f"{name}.log"
    command = [PYTHON, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning"]  # one process: uvicorn's default
    if workers > 1:
        command += ["--workers", str(workers)]
    command += UVICORN_FLAGS  # as `make run` serves
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, process, port, log, workers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start:\n{log.read_text()[-3000:]}")
        try:
            if http(f"{server.base}/health")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer /health within 30 s:\n{log.read_text()[-3000:]}")


def http(
    url: str, *, method: str = "GET", token: str | None = None, data: bytes | None = None, form: bool = False
) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def server_errors(log: Path, start: int, top: int = 3) -> dict[str, int]:
    """The most frequent exceptions a server logged since `start`: the line naming the last
    exception of each traceback (a chained cause is left out)."""
    with log.open("rb") as file:
        file.seek(start)
        lines = [line for line in file.read().decode(errors="replace").splitlines() if line.strip()]
    errors: Counter[str] = Counter()
    for index, line in enumerate(lines):
        if not re.match(r"[\w.]+(Error|Exception)\b", line) or line.startswith("ERROR:"):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if not following.startswith(("The above exception", "During handling")):
            errors[line[:200]] += 1
    return dict(errors.most_common(top))


def process_id_of(command_name: str) -> int | None:
    """A local process by its command name (to watch the CPU the database server uses)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command_name:
                    return int(entry.name)
            except OSError:
                continue
    return None


def run_load(spec: dict[str, Any], *, module: str = "bench.loadgen") -> dict[str, Any]:
    """Runs a load generator module in its own process: the JSON spec on its stdin, the JSON
    result from its stdout."""
    completed = subprocess.run(
        [PYTHON, "-m", module],
        input=json.dumps(spec).encode(),
        cwd=REPO,
        capture_output=True,
        timeout=spec["warmup"] + spec["duration"] + 120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{completed.stderr.decode()[-3000:]}")
    return json.loads(completed.stdout)


# --- the list SQL ---------------------------------------------------------------------------


def capture_list_sql(token: str) -> dict[str, Any]:
    """Serves one list page in-process with a statement listener on the app's engine and keeps
    the statements that read the post table: the COUNT and the page (auth and the board look-up
    are the app's own work, left out of the ceiling)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    import database
    from config import settings
    from main import app

    statements: list[tuple[str, Any]] = []

    def listener(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        statements.append((statement, parameters))

    page = CAPTURE_PAGE
    url = (
        f"{settings.API_PREFIX}/boards/{page['board_id']}/posts?offset={page['offset']}&limit={page['limit']}"
    )
    with TestClient(app) as client:  # the app's start-up statements are not the page's
        event.listen(database.engine, "before_cursor_execute", listener)
        try:
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        finally:
            event.remove(database.engine, "before_cursor_execute", listener)
    database.engine.dispose()
    if response.status_code != 200:
        raise RuntimeError(f"the app's list page answered {response.status_code}: {response.text[:500]}")
    post_reads = [s for s in statements if re.search(r"\bFROM\s+[`\"]?post\b", s[0], re.IGNORECASE)]
    counts = [s for s in post_reads if re.search(r"\bcount\(", s[0], re.IGNORECASE)]
    pages = [s for s in post_reads if s not in counts]
    if len(counts) != 1 or len(pages) != 1:
        shown = "\n".join(s[0] for s in statements)
        raise RuntimeError(f"expected one COUNT and one page SELECT on post; the app sent:\n{shown}")
    return {
        "count": _with_slots(*counts[0], wanted={"board_id"}),
        "page": _with_slots(*pages[0], wanted={"board_id", "offset", "limit"}),
        "app_statements": [" ".join(sql.split()) for sql, _ in statements],
    }


def _with_slots(sql: str, parameters: Any, *, wanted: set[str]) -> dict[str, Any]:
    """Marks where the board id, offset and limit sit among a statement's parameters."""
    params: list[Any] | dict[str, Any] = (
        dict(parameters) if isinstance(parameters, dict) else list(parameters)
    )
    keys = list(params) if isinstance(params, dict) else list(range(len(params)))
    slots: dict[str, list[Any]] = {}
    for key in keys:
        value = params[key]  # type: ignore[index]
        for slot in wanted:
            if type(value) is int and value == CAPTURE_PAGE[slot]:
                slots.setdefault(slot, []).append(key)
    if set(slots) != wanted or any(len(positions) != 1 for positions in slots.values()):
        raise RuntimeError(f"cannot tell the board id, offset and limit apart in:\n{sql}\n{parameters!r}")
    return {"sql": sql, "params": params, "slots": slots}


def same_page(ours: dict[str, Any], ceiling: dict[str, Any]) -> bool:
    """The two JSON bodies agree (times compared as instants, whatever their spelling)."""

    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: normal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [normal(item) for item in value]
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", value):
            return datetime.fromisoformat(value)
        return value

    return normal(ours) == normal(ceiling)


# --- the run --------------------------------------------------------------------------------


@dataclass
class Setup:
    database_url: str
    backend: str
    workdir: Path
    tokens: list[str]
    user_names: dict[int, str]
    board_ids: list[int]
    post_ids: list[int]


def configure_environment(args: argparse.Namespace, workdir: Path) -> str:
    """Settings for this process and both servers, set before any app module is imported."""
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    hybrid = "hybrid" in args.scenarios.split(",")
    os.environ.update(
        {
            "ENV": "production",
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ACCESS_TOKEN_MINUTES": "180",  # the minted tokens outlive the run
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",  # no access line per request: the load is not what is measured
            "UPLOAD_DIR": str(workdir / "uploads"),
            "MODEL_DIR": str(workdir / "models"),
            "REDIS_URL": "",
            # No model loads and no post is embedded unless the hybrid search is measured: the
            # seeded posts have no vectors, and embedding 20,000 of them in the background would
            # take the cores from what is measured (and add its statements to the captured list SQL).
            "AI_LOAD_AT_START": "true" if hybrid else "false",
            "AI_INDEX_POSTS": "true" if hybrid else "false",
            **NO_MAIL,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return url


def prepare(args: argparse.Namespace, workdir: Path) -> Setup:
    url = configure_environment(args, workdir)
    from sqlalchemy import text

    from bench import seed
    from database import make_engine
    from services import security

    backend = "MariaDB" if url.startswith("mysql") else "SQLite"
    sizes = seed.Sizes(posts=args.posts, comments=10 * args.posts, likes=3 * args.posts)
    seeded = seed.reuse(url, sizes=sizes) if args.reuse_seeded and backend == "MariaDB" else None
    if seeded is not None:
        rows = ", ".join(f"{count:,} {name}" for name, count in seeded.rows.items())
        print(f"reused  {rows} seeded by an earlier run; its additions removed in {seeded.seconds:.1f} s")
    else:
        started = time.perf_counter()
        seed.fresh_database(url)
        migrated = time.perf_counter() - started
        seeded = seed.seed(url, password_hash=security.hash_password(BENCH_PASSWORD), sizes=sizes)
        rows = ", ".join(f"{count:,} {name}" for name, count in seeded.rows.items())
        print(
            f"seeded  {rows} in {seeded.seconds:.1f} s, of which {seeded.search_index_seconds:.1f} s "
            f"filling the search index (fresh schema by alembic upgrade head in {migrated:.1f} s)"
        )
    engine = make_engine(url)
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM user")).all())  # type: ignore[arg-type]
    engine.dispose()
    tokens = [security.create_access_token(user_id, 0) for user_id in seeded.user_ids]
    if "hybrid" in args.scenarios.split(","):
        started = time.perf_counter()
        count = give_random_vectors(url)
        print(f"vectors {count:,} random post vectors stored in {time.perf_counter() - started:.1f} s")
    return Setup(url, backend, workdir, tokens, names, seeded.board_ids, seeded.visible_post_ids)


VECTOR_CHUNK = 5_000


def give_random_vectors(url: str) -> int:
    """A random unit vector for every post, stored under the configured encoder's name (as
    bench/ai_scale.py does): what a search by meaning costs does not depend on what the vectors
    mean, and embedding 20,000 posts would take minutes. The question is still embedded by the model."""
    from datetime import timedelta

    import numpy as np
    from sqlalchemy import delete, insert, select

    from config import settings
    from database import make_engine, utcnow
    from ml.encoder import DIMENSIONS, stored_model_name
    from models import Post, PostEmbedding

    model_name = stored_model_name(settings.EMBEDDING_MODEL)
    rng = np.random.default_rng(20261206)
    written = utcnow() - timedelta(hours=1)  # before any post changes the run makes
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(PostEmbedding).where(PostEmbedding.model_name == model_name))
            ids = list(conn.scalars(select(Post.id).order_by(Post.id)))
            for start in range(0, len(ids), VECTOR_CHUNK):
                chunk = ids[start : start + VECTOR_CHUNK]
                vectors = rng.standard_normal((len(chunk), DIMENSIONS)).astype("<f4")
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                rows = [
                    {
                        "post_id": post_id,
                        "model_name": model_name,
                        "vector": vector.tobytes(),
                        "update_date": written,
                    }
                    for post_id, vector in zip(chunk, vectors, strict=True)
                ]
                conn.execute(insert(PostEmbedding), rows)
    finally:
        engine.dispose()
    return len(ids)


def wait_ready(app: Server, seconds: float = 300) -> str | None:
    """Waits for /ready (the model loaded); what still keeps the app from it after `seconds`, or None."""
    deadline = time.monotonic() + seconds
    body: Any = None
    while time.monotonic() < deadline:
        status, body = http(f"{app.base}/ready")
        if status == 200:
            return None
        time.sleep(1)
    return f"/ready after {seconds:.0f} s: {body}"


def sanity_checks(setup: Setup, app: Server, ceiling: Server) -> None:
    """One real login, and the ceiling's JSON against the app's for the same page."""
    user_id = 1
    form = urllib.parse.urlencode({"username": setup.user_names[user_id], "password": BENCH_PASSWORD})
    status, body = http(f"{app.base}/api/v1/auth/login", method="POST", data=form.encode(), form=True)
    if status != 200:
        raise RuntimeError(f"login of a seeded user failed: {status} {body}")
    status, me = http(f"{app.base}/api/v1/users/me", token=body["access_token"])
    if status != 200 or me["id"] != user_id:
        raise RuntimeError(f"the login's token does not work: {status} {me}")
    print("login   POST /auth/login with a seeded user's password: 200; load tokens are minted instead")
    mismatches = 0
    for board_id in setup.board_ids:
        for offset in (0, 80):
            path = f"/api/v1/boards/{board_id}/posts?offset={offset}&limit=20"
            status, ours = http(app.base + path, token=setup.tokens[0])
            ceiling_status, theirs = http(ceiling.base + path)
            if status != 200 or ceiling_status != 200 or not same_page(ours, theirs):
                mismatches += 1
    if mismatches:
        raise RuntimeError(f"the ceiling's JSON differs from the app's on {mismatches} pages")
    print(f"ceiling returns the same JSON as the app on {len(setup.board_ids) * 2} pages")


def counts_after(url: str, seeded_views: int) -> str:
    from sqlalchemy import text

    from bench.seed import COUNT_CHECKS
    from database import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            wrong = {name: conn.execute(text(query)).scalar_one() for name, query in COUNT_CHECKS.items()}
            views = conn.execute(text("SELECT sum(number_of_view) FROM post")).scalar_one() - seeded_views
            view_rows = conn.execute(text("SELECT count(*) FROM post_view")).scalar_one()
    finally:
        engine.dispose()
    parts = [f"{name} {'matches its rows' if not n else f'WRONG on {n} posts'}" for name, n in wrong.items()]
    parts.append(
        f"views counted {views:,} = PostView rows {view_rows:,}" + ("" if views == view_rows else " MISMATCH")
    )
    return "; ".join(parts)


def total_views(url: str) -> int:
    from sqlalchemy import text

    from database import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT sum(number_of_view) FROM post")).scalar_one())
    finally:
        engine.dispose()


def load_spec(args: argparse.Namespace, setup: Setup, scenario: str, server: Server) -> dict[str, Any]:
    from bench import corpus

    watch: dict[str, int | list[int]] = {"server": server.pids()}
    if setup.backend == "MariaDB" and (pid := process_id_of("mariadbd") or process_id_of("mysqld")):
        watch["mariadbd"] = pid
    paths = {
        "search": search_paths("keyword"),
        "nothing": search_paths("keyword", [corpus.NO_MATCH_QUERY]),
        "hybrid": search_paths("hybrid"),
        "like": like_paths(),
    }
    return {
        "port": server.port,
        "scenario": "get" if scenario in ("floor", *paths) else {"ceiling": "list"}.get(scenario, scenario),
        "paths": paths.get(scenario, [FLOOR_PATH]),
        "connections": args.connections,
        "warmup": args.warmup,
        "duration": args.duration,
        "tokens": setup.tokens,
        "board_ids": setup.board_ids,
        "post_ids": setup.post_ids,
        "comments": corpus.KO_COMMENTS + corpus.EN_COMMENTS,
        "watch_pids": watch,
        "seed": secrets.randbelow(2**31),
    }


def search_paths(mode: str, queries: list[str] | None = None) -> list[str]:
    """GET /search for each of the bench's queries (bench/corpus.py) or these, the first page of 20,
    best first."""
    from bench import corpus

    return [
        f"/api/v1/search?{urllib.parse.urlencode({'q': q, 'mode': mode, 'limit': 20})}"
        for q in queries or corpus.SEARCH_QUERIES
    ]


def hybrid_unavailable(setup: Setup, app: Server) -> str | None:
    """Why a hybrid search would be answered by keyword (no model loaded, posts not embedded),
    or None: a fallback measured as hybrid would flatter it."""
    status, body = http(app.base + search_paths("hybrid")[0], token=setup.tokens[0])
    if status != 200:
        return f"status {status}: {body}"
    return body.get("fallback") if body.get("mode") != "hybrid" else None


def like_paths() -> list[str]:
    """The ceiling's LIKE '%q%' search (bench/ceiling.py) for each of the same queries."""
    from bench import corpus

    return [f"{LIKE_SEARCH_PATH}?{urllib.parse.urlencode({'q': q})}" for q in corpus.SEARCH_QUERIES]


# The floor: the app's cheapest route, a sync FastAPI route that returns a constant (the app's
# middleware, routing and one thread-pool hop; no token, no database). What any route of the app
# costs before it does its own work, to set beside the ceiling's whole list page.
FLOOR_PATH = "/health"
LIKE_SEARCH_PATH = "/bench/like-search"  # bench/ceiling.py's
SLICE_WARMUP = 0.5  # seconds: the servers are warm; this refills the 32 connections' pipeline


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the slices of a scenario: requests and CPU summed over their windows,
    latency percentiles over every request of every slice."""
    latencies = sorted(x for run in runs for x in run.pop("latencies_ms"))
    seconds = sum(run["seconds"] for run in runs)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
        errors.update(run["server_errors"])
        for name, percent in run["cpu_percent"].items():
            cpu[name] += percent * run["seconds"]

    def percentile(fraction: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] if latencies else float("nan")
        )

    ok = sum(run["ok"] for run in runs)
    return runs[0] | {
        "seconds": round(seconds, 3),
        "slices": len(runs),
        "requests": len(latencies),
        "ok": ok,
        "statuses": dict(statuses),
        "rps": ok / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "cpu_percent": {name: round(total / seconds, 1) for name, total in cpu.items()} if seconds else {},
        "server_errors": dict(errors.most_common(3)),
    }


def self_test(workdir: Path) -> dict[str, Any]:
    """How fast the load generator goes against a server that does nothing."""
    port = free_port()
    log = (workdir / "static.log").open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.loadgen", "--serve-static", str(port)], cwd=REPO, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        spec = {"port": port, "scenario": "static", "connections": 32, "warmup": 0.5, "duration": 2.0}
        spec["watch_pids"] = {"server": process.pid}
        return run_load(spec)
    finally:
        process.terminate()
        process.wait()
        log.close()


PROFILE_RATE = 100  # samples per second


def profile_list(args: argparse.Namespace, setup: Setup, app: Server) -> str:
    """An extra list run with py-spy sampling the server: only the thread holding the GIL is
    recorded (`--gil`), so the samples show what the Python side of the one process spends its
    time on. Time in SQLite's C code or waiting for the database is not in them."""
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(py_spy).exists():
        return "py-spy is not installed (pip install -r requirements-dev.txt): no profile"
    output = setup.workdir / "list.pyspy.txt"
    seconds = max(5, int(args.duration))
    recorder = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(app.process.pid), "--duration", str(seconds)),
            *("--rate", str(PROFILE_RATE), "--gil", "--format", "raw", "--output", str(output)),
            *(["--subprocesses"] if args.workers > 1 else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    spec = load_spec(args, setup, "list", app) | {"warmup": 0.5, "duration": seconds + 1}
    run_load(spec)
    _, errors = recorder.communicate(timeout=60)
    if recorder.returncode != 0 or not output.exists():
        return f"py-spy failed: {errors.decode()[-500:]}"
    return summarize_profile(output, expected_samples=seconds * PROFILE_RATE)


APP_CODE = {path.name for path in REPO.iterdir()}


def summarize_profile(collapsed: Path, *, expected_samples: int, top: int = 15) -> str:
    """From py-spy's collapsed stacks: own time by package, the functions with the most own
    time, and the app's own functions by total time (with what they call)."""
    by_package: Counter[str] = Counter()
    own: Counter[str] = Counter()
    app_total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [_frame(text) for text in stack.split(";")]
        weight = int(count)
        samples += weight
        function, path = frames[-1]
        package = path.split("/")[0].removesuffix(".py")
        by_package["app code" if package in APP_CODE or f"{package}.py" in APP_CODE else package] += weight
        own[f"{function} ({path})"] += weight
        for function, path in set(frames):
            if path.split("/")[0] in APP_CODE:
                app_total[f"{function} ({path})"] += weight
    if not samples:
        return "py-spy recorded no samples"

    def table(counter: Counter[str]) -> str:
        return "\n".join(f"  {100 * n / samples:5.1f}%  {name}" for name, n in counter.most_common(top))

    return (
        f"{samples:,} samples: a server thread held the GIL in {100 * samples / expected_samples:.0f}% "
        "of the sampling ticks (the rest: C code without the GIL, waiting for the database or a core, idle)\n"
        f"own time by package:\n{table(by_package)}\n"
        f"functions with the most own time:\n{table(own)}\n"
        f"the app's functions by total time (with their callees):\n{table(app_total)}"
    )


def _frame(text: str) -> tuple[str, str]:
    """('fetch_page', 'crud/pages.py') from py-spy's 'fetch_page (crud/pages.py:25)'."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", text)
    if not match:
        return text, "?"
    function, path = match.groups()
    return function, re.sub(r".*/site-packages/", "", path).replace(str(REPO) + "/", "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, through a pipe too
    workdir = Path(tempfile.mkdtemp(prefix="madang-bench-"))
    servers: list[Server] = []
    try:
        setup = prepare(args, workdir)
        environment = dict(os.environ)
        list_sql = capture_list_sql(setup.tokens[0])
        sql_file = workdir / "list_sql.json"
        sql_file.write_text(json.dumps(list_sql))
        app = start_server("app", "main:app", workdir, environment, workers=args.workers)
        servers.append(app)
        ceiling = start_server(
            "ceiling", "bench.ceiling:app", workdir, environment | {"BENCH_LIST_SQL": str(sql_file)}
        )
        servers.append(ceiling)
        print_header(args, setup, list_sql)
        sanity_checks(setup, app, ceiling)
        capacity = self_test(workdir)
        print(
            f"loadgen minimal asyncio HTTP/1.1 client ({capacity.get('event_loop')} + httptools), "
            f"{args.connections} keep-alive connections over loopback; against a do-nothing server it "
            f"makes {capacity['rps']:,.0f} req/s "
            f"using {capacity['cpu_percent'].get('loadgen', 0):.0f}% of a core"
        )
        seeded_views = total_views(setup.database_url)
        results = measure(args, setup, app, ceiling)
        print_results(args, setup, results)
        print(f"counts  {counts_after(setup.database_url, seeded_views)}")
        verdicts = print_verdicts(results)
        profile = None
        if args.profile == "always" or (args.profile == "auto" and not verdicts.get("list", True)):
            print("\nwhere the list time goes (py-spy on the app server during an extra list run):")
            profile = profile_list(args, setup, app)
            print(profile)
        if args.json:
            payload = {"backend": setup.backend, "args": vars(args) | {"json": str(args.json)}}
            payload |= {"results": results, "verdicts": verdicts, "loadgen_self_test": capacity}
            payload["profile"] = profile
            args.json.write_text(json.dumps(payload, indent=2, default=str))
        return 0
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept    {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, setup: Setup, app: Server, ceiling: Server) -> dict[str, Any]:
    """Every scenario in turn, in slices (--rounds), merged into one result each."""
    scenarios = args.scenarios.split(",")
    if "hybrid" in scenarios and (why := wait_ready(app) or hybrid_unavailable(setup, app)):
        print(f"hybrid  left out: the app answers by keyword ({why})")
        scenarios.remove("hybrid")
    slices: dict[str, list[dict[str, Any]]] = {}
    for turn in range(args.rounds):
        for scenario in scenarios:
            server = ceiling if scenario in ("ceiling", "like") else app
            log_start = server.log.stat().st_size
            spec = load_spec(args, setup, scenario, server) | {
                "duration": args.duration / args.rounds,
                "warmup": args.warmup if turn == 0 else min(args.warmup, SLICE_WARMUP),
                "keep_latencies": True,
            }
            result = run_load(spec)
            result["server_errors"] = server_errors(server.log, log_start)
            slices.setdefault(scenario, []).append(result)
    return {scenario: merged(runs) for scenario, runs in slices.items()}


def processes(workers: int) -> str:
    return "one process" if workers == 1 else f"{workers} worker processes (--workers {workers})"


def print_header(args: argparse.Namespace, setup: Setup, list_sql: dict[str, Any]) -> None:
    import sqlalchemy

    where = setup.workdir / "bench.sqlite3" if setup.backend == "SQLite" else setup.database_url
    print(
        f"setup   {setup.backend} ({where}) through {driver_name(setup.database_url)}, the app's and the "
        f"ceiling's alike; app: uvicorn main:app as `make run` serves it, {processes(args.workers)}, "
        "--no-access-log, "
        f"ENV=production, rate limits off; Python {sys.version.split()[0]}, SQLAlchemy "
        f"{sqlalchemy.__version__}, {os.cpu_count()} CPUs"
    )
    print(
        f"load    {args.connections} connections, {args.warmup:g} s warm-up + {args.duration:g} s measured "
        f"per scenario, in {args.rounds} turns (the scenarios alternate, so other work on the machine "
        "weighs on each alike); list: random board, offset in the first 5 pages, limit 20; read: random "
        "visible post (counts a view); comment: random visible post; each request as a random seeded user; "
        f"floor: GET {FLOOR_PATH}"
    )
    print(
        f"list SQL: the app sent {len(list_sql['app_statements'])} statements to serve one list page; "
        "the ceiling sends exactly the two that read posts:"
    )
    shared = {" ".join(list_sql[name]["sql"].split()) for name in ("count", "page")}
    for sql in list_sql["app_statements"]:
        print(f"  {'*' if sql in shared else ' '} {sql}")


def driver_name(url: str) -> str:
    """The DB-API driver a URL selects, with its version: 'mysqlclient 2.3.1 (C)'."""
    from importlib.metadata import version

    from sqlalchemy.engine import make_url

    dialect = make_url(url).get_dialect()
    module = dialect.import_dbapi()
    if dialect.name == "sqlite":
        return f"sqlite3 (SQLite {module.sqlite_version}, in-process)"
    distribution, kind = {"MySQLdb": ("mysqlclient", "C"), "pymysql": ("PyMySQL", "pure Python")}.get(
        module.__name__, (module.__name__, "?")
    )
    return f"{distribution} {version(distribution)} ({kind})"


def print_results(args: argparse.Namespace, setup: Setup, results: dict[str, dict[str, Any]]) -> None:
    watched = ["server", "loadgen"] + (["mariadbd"] if setup.backend == "MariaDB" else []) + ["others"]
    header = f"{'scenario':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  {'non-2xx':<9}"
    header += f"{'CPU ms/req':>11}" + "".join(f"{name + ' CPU':>14}" for name in watched)
    print(f"\n{setup.backend}, {args.connections} concurrent connections")
    print(header)
    for scenario, result in results.items():
        errors = {status: n for status, n in result["statuses"].items() if not status.startswith("2")}
        line = f"{SCENARIO_TITLES[scenario]:<20}{result['rps']:>9,.0f}{result['p50_ms']:>9.1f}"
        line += f"{result['p99_ms']:>9.1f}{result['max_ms']:>9.1f}  {sum(errors.values()) or 0:<9}"
        line += f"{cpu_per_request_ms(result):>11.2f}" + "".join(
            f"{result['cpu_percent'].get(name, float('nan')):>13.0f}%" for name in watched
        )
        print(line)
        if errors:
            print(f"  non-2xx answers: {errors}")
        for error, count in result.get("server_errors", {}).items():
            print(f"  server log, {count}x: {error}")


def cpu_per_request_ms(result: dict[str, Any]) -> float:
    """Server CPU time per answered request: unlike req/s, not lowered by other work on the machine."""
    share = result["cpu_percent"].get("server")
    return share / 100 * 1000 / result["rps"] if share and result["rps"] else float("nan")


def print_verdicts(results: dict[str, dict[str, Any]]) -> dict[str, bool]:
    verdicts: dict[str, bool] = {}
    if "list" in results and "ceiling" in results:
        ratio = results["list"]["rps"] / results["ceiling"]["rps"]
        verdicts["list"] = ratio >= LIST_TARGET
        print(
            f"list / ceiling = {results['list']['rps']:,.0f} / {results['ceiling']['rps']:,.0f} "
            f"= {ratio:.2f} "
            f"(target >= {LIST_TARGET}: {'met' if verdicts['list'] else 'MISSED'}); by server CPU per "
            f"request, which other load on the machine does not skew: "
            f"{cpu_per_request_ms(results['ceiling']) / cpu_per_request_ms(results['list']):.2f}"
        )
    if "floor" in results and "ceiling" in results:
        floor, ceiling = cpu_per_request_ms(results["floor"]), cpu_per_request_ms(results["ceiling"])
        print(
            f"floor   GET {FLOOR_PATH}, a route that does nothing: {floor:.2f} ms of server CPU per request, "
            f"{floor / ceiling:.2f} of the ceiling's whole list page ({ceiling:.2f} ms); a list page at half "
            f"the ceiling's speed may spend {2 * ceiling - floor:.2f} ms beyond the floor"
        )
    for scenario, target in SEARCH_P99_TARGET_MS.items():
        if scenario in results:
            result = results[scenario]
            verdicts[scenario] = result["p99_ms"] < target
            beside = results.get("like")
            old = (
                f"; LIKE '%q%' beside it: p50 {beside['p50_ms']:.1f} ms, p99 {beside['p99_ms']:.1f} ms"
                if beside
                else ""
            )
            print(
                f"{SCENARIO_TITLES[scenario]}: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
                f"(target p99 < {target:.0f} ms: {'met' if verdicts[scenario] else 'MISSED'}){old}"
            )
    if "nothing" in results:
        nothing = results["nothing"]
        print(
            f"{SCENARIO_TITLES['nothing']} (a word in no post): p50 {nothing['p50_ms']:.1f} ms, p99 "
            f"{nothing['p99_ms']:.1f} ms, {cpu_per_request_ms(nothing):.2f} ms of server CPU per request: "
            "what a search costs before it finds anything (token, user, one statement, an empty page)"
        )
    if "read" in results:
        p99 = results["read"]["p99_ms"]
        verdicts["read"] = p99 < READ_P99_TARGET_MS
        print(
            f"read post p99 = {p99:.1f} ms (target < {READ_P99_TARGET_MS:.0f} ms: "
            f"{'met' if verdicts['read'] else 'MISSED'})"
        )
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
