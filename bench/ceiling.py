"""The ceiling for a board's list page: a bare Starlette app that sends the app's own list SQL
and returns the same JSON, with none of the app's layers.

The SQL is not written here: bench/run.py captures the statements the app sends while it
serves one list page (a statement listener on the app's engine) and hands them over in the
file named by BENCH_LIST_SQL, with the positions of the board id, offset and limit marked.
This endpoint fills those in and runs the statements on a raw DB-API connection from a pool
built by the app's own `database.make_engine` (same driver, same SQLite pragmas, same pool
size). No FastAPI, no ORM objects, no Pydantic, no authentication, no access check.

    BENCH_LIST_SQL=/tmp/list_sql.json uvicorn bench.ceiling:app
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import bindparam, func, select, true
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from config import settings
from crud.search import contains_pattern, like_pattern
from database import make_engine
from models import Post, User

LIST_SQL: dict[str, Any] = json.loads(Path(os.environ["BENCH_LIST_SQL"]).read_text())
engine = make_engine(settings.DATABASE_URL)
MAX_LIMIT = 100
LIKE_SEARCH_PATH = "/bench/like-search"


def bind(statement: dict[str, Any], values: dict[str, int]) -> list[Any] | dict[str, Any]:
    """The captured parameters with the board id, offset and limit of this request."""
    params = statement["params"]
    filled: list[Any] | dict[str, Any] = list(params) if isinstance(params, list) else dict(params)
    for slot, positions in statement["slots"].items():
        for position in positions:
            filled[position] = values[slot]  # type: ignore[index]
    return filled


def utc_text(value: Any) -> str:
    """A stored UTC time as the API writes it. SQLite hands back SQLAlchemy's stored text
    ("2026-01-02 03:04:05.678901"), MariaDB a naive datetime."""
    if isinstance(value, str):
        return value.replace(" ", "T") + "Z"
    return value.isoformat() + "Z"


def list_posts(request: Request) -> Response:
    # Sync on purpose, like the app's route: Starlette runs it in the same thread pool.
    values = {
        "board_id": int(request.path_params["board_id"]),
        "offset": max(0, int(request.query_params.get("offset", 0))),
        "limit": min(MAX_LIMIT, max(1, int(request.query_params.get("limit", 20)))),
    }
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        # As the app (crud/pages.py): the page first, the COUNT only when the page does not
        # tell the total (a full page, or an empty one past the start).
        cursor.execute(LIST_SQL["page"]["sql"], bind(LIST_SQL["page"], values))
        columns = [column[0] for column in cursor.description]
        rows: list[Any] = list(cursor.fetchall())
        if len(rows) < values["limit"] and (rows or values["offset"] == 0):
            total = values["offset"] + len(rows)
        else:
            cursor.execute(LIST_SQL["count"]["sql"], bind(LIST_SQL["count"], values))
            total = cursor.fetchone()[0]
        cursor.close()
    finally:
        connection.close()  # back to the pool, rolled back there (the app's request ends its own)
    items = []
    if rows:
        at = {name: index for index, name in enumerate(columns)}
        items = [
            {
                "id": row[at["id"]],
                "board_id": row[at["board_id"]],
                "name": row[at["name"]],
                "author": {"id": row[at["user_id"]], "name": row[at["author_name"]]},
                "create_date": utc_text(row[at["create_date"]]),
                "update_date": utc_text(row[at["update_date"]]),
                "number_of_view": row[at["number_of_view"]],
                "number_of_comment": row[at["number_of_comment"]],
                "number_of_like": row[at["number_of_like"]],
                "is_file_attached": bool(row[at["is_file_attached"]]),
                "is_visible": bool(row[at["is_visible"]]),
            }
            for row in rows
        ]
    return JSONResponse(
        {"items": items, "total": total, "offset": values["offset"], "limit": values["limit"]}
    )


# Today's alternative to the search index, for the search scenario to be set beside: the LIKE
# '%q%' over title and content that board lists used before it (crud/search.contains_pattern,
# lower() on both sides), here over every board: newest first, a page of 20 and the COUNT of all
# matches, as a list page answers. Visible posts only; no comments, no ranking, no snippet.
_LIKE_MATCH = contains_pattern(bindparam("pattern"), Post.name, Post.content)
_LIKE_VISIBLE = (Post.is_visible == true(), _LIKE_MATCH)
LIKE_PAGE = (
    select(Post.id, Post.board_id, Post.name, User.name.label("author_name"), Post.create_date)
    .join(User, User.id == Post.user_id)
    .where(*_LIKE_VISIBLE)
    .order_by(Post.id.desc())
    .limit(bindparam("limit"))
)
LIKE_COUNT = select(func.count()).select_from(Post).where(*_LIKE_VISIBLE)


def like_search(request: Request) -> Response:
    params = {"pattern": like_pattern(request.query_params["q"]), "limit": 20}
    with engine.connect() as conn:
        rows = conn.execute(LIKE_PAGE, params).all()
        total = conn.execute(LIKE_COUNT, params).scalar_one()
    items = [{"id": row.id, "board_id": row.board_id, "name": row.name} for row in rows]
    return JSONResponse({"items": items, "total": total, "offset": 0, "limit": 20})


def health(_: Request) -> Response:
    return PlainTextResponse("ok")


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    # The app's thread pool size (main.py): with anyio's default of 40 threads, 32 connections
    # keep 32 threads fighting over the GIL, and the ceiling's own throughput swings by 3x
    # from run to run with the machine's load.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.WORKER_THREADS
    yield


app = Starlette(
    routes=[
        Route(f"{settings.API_PREFIX}/boards/{{board_id:int}}/posts", list_posts),
        Route(LIKE_SEARCH_PATH, like_search),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
