"""The application: routers, the one error mapping, request limits. Run with `python cli.py serve`
(uvicorn with the options of serving.py: by hand, `uvicorn main:app --no-proxy-headers`)."""

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache, partial
from http import HTTPStatus

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings, settings
from database import RequestSlots
from edge import CrossOrigin, Measured, RequestObserver, SecurityHeaders
from errors import DomainError, PayloadTooLarge, Unprocessable, validation_issues
from logs import RequestLogMiddleware, configure_logging
from ml.base import AIModel
from routers import admin, ai, ai_training, attachments, auth, boards, chat, comments, health, posts, users
from routers import metrics as metrics_router
from routers import search as search_router
from routers.docs import serve_docs
from services import runtime, security

log = logging.getLogger("madang")


@asynccontextmanager
async def lifespan(
    app: FastAPI, *, config: Settings, extra_models: Sequence[AIModel] = ()
) -> AsyncIterator[None]:
    config.signing_key  # noqa: B018 - create the development key file before the first request
    security.prepare_dummy_hash()  # the first unknown-user login must not cost an extra hash
    # Sync endpoints run in this pool; a few threads keep the GIL busy, forty only fight over it.
    anyio.to_thread.current_default_thread_limiter().total_tokens = config.WORKER_THREADS
    app.state.db_slots = RequestSlots(config.DATABASE_POOL_SIZE)
    # The broker, the AI backend, the job events and the model registry, in one object
    # (services/runtime.py) that requests reach through deps.RuntimeDep.
    async with runtime.running(config, extra_models=extra_models) as running:
        outer = getattr(app.state, "runtime", None)  # an app started inside another (bench/)
        app.state.runtime = running
        freeze_startup_objects()
        try:
            yield
        finally:
            app.state.runtime = outer  # the runtime stops from here on: requests no longer reach it


@cache  # once per process (tests start the app thousands of times)
def freeze_startup_objects() -> None:
    """Moves what start-up made (modules, classes, the ORM's and Pydantic's machinery: most
    objects the process will ever hold) out of the garbage collector's reach. Each full pass
    of the collector would otherwise walk all of them and stall every request for ~50 ms,
    which is what a p99 latency sees. Remembered by the cache, not asked of gc:
    gc.get_freeze_count() walks every frozen object (~13 ms for 177,000)."""
    gc.collect()
    gc.freeze()


def domain_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=exc.headers)


# Framework statuses that have a domain error get that error's code, so a 413 reads the same
# whether Starlette's body limit or an upload service refused the body.
FRAMEWORK_CODES = {PayloadTooLarge.status: PayloadTooLarge.code}


def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """Framework errors (unknown route, wrong method, body too large) in the same shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"detail": exc.detail, "code": framework_code(exc.status_code)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def framework_code(status: int) -> str:
    phrase = HTTPStatus(status).phrase
    return FRAMEWORK_CODES.get(status) or phrase.lower().replace(" ", "_").replace("-", "_")


def server_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """A bug still answers in the API's shape. Starlette re-raises the error afterwards, so the
    server logs its traceback; the client sees none of it."""
    return JSONResponse({"detail": "internal server error", "code": "internal_error"}, status_code=500)


def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 list, without echoing the input: it may be a password, a quarter megabyte,
    or a NaN that JSON cannot even encode (which made the default handler answer 500)."""
    assert isinstance(exc, RequestValidationError)
    issues = validation_issues(exc.errors(), exc.body)
    return JSONResponse({"detail": jsonable_encoder(issues), "code": Unprocessable.code}, status_code=422)


class TooLargeAsJSON:
    """Starlette answers a body over `max_body_size` with a plain-text 413 sent from outside
    every exception handler; this outermost layer rewrites it into the {"detail", "code"} shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_as_json(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the plain-text body of the answer already replaced
            if not is_plain_text_413(message):
                await send(message)
                return
            replaced = True
            body = {"detail": "request body too large", "code": PayloadTooLarge.code}
            await JSONResponse(body, status_code=PayloadTooLarge.status)(scope, receive, send)

        await self.app(scope, receive, send_as_json)


def is_plain_text_413(message: Message) -> bool:
    return (
        message["type"] == "http.response.start"
        and message["status"] == PayloadTooLarge.status
        and Headers(raw=message["headers"]).get("content-type", "").startswith("text/plain")
    )


class MadangAPI(FastAPI):
    cors_origins: Sequence[str] = ()  # create_app sets the app's CORS_ORIGINS
    measured: bool = False  # METRICS_ENABLED: requests timed and counted (edge.Measured)

    def build_middleware_stack(self) -> ASGIApp:
        # The request id outermost: its header then goes on every answer, the 413 and 500 too;
        # the security headers as well; CORS headers on every answer to an allowed origin, errors
        # included (a frontend must read them), and preflights answered before the routes.
        app: ASGIApp = TooLargeAsJSON(super().build_middleware_stack())
        if self.measured:
            # Inside the CORS layer: a preflight it answers never reaches a route.
            app = Measured(app, running_metrics, self.routes)
        if self.cors_origins:
            app = CrossOrigin(app, self.cors_origins)
        return RequestLogMiddleware(SecurityHeaders(app))


def running_metrics(scope: Scope) -> RequestObserver | None:
    """The metrics of the app running (services/runtime.Runtime), None before it starts."""
    running: runtime.Runtime | None = getattr(scope["app"].state, "runtime", None)
    return running.metrics if running is not None else None


# One line per tag, in the order /docs shows them; every operation has exactly one tag.
OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign up, log in, trade and revoke tokens, reset a forgotten password."},
    {"name": "users", "description": "My account: profile, password, deletion, the boards I may use."},
    {"name": "boards", "description": "The boards I may read and write."},
    {"name": "posts", "description": "Posts on a board: write, read (counts a view), edit, delete, like."},
    {"name": "comments", "description": "Comments on a post."},
    {"name": "attachments", "description": "Files on posts and comments: upload, download, delete."},
    {"name": "chat", "description": "Support conversations with the administrators; live events on WS /ws."},
    {"name": "ai", "description": "AI models and their asynchronous jobs: submit, long-poll, list, cancel."},
    {"name": "admin", "description": "Administrators only: users, boards, AI models and training, all jobs."},
    {"name": "health", "description": "Liveness and readiness probes for the load balancer."},
]


def operation_id(route: APIRoute) -> str:
    """The function's name (list_posts, attach_to_comment): a generated TypeScript client reads
    `PostsService.listPosts`. Names are unique across routers (tests/test_openapi.py checks)."""
    return route.name


def create_app(config: Settings = settings, *, models: Sequence[AIModel] = ()) -> FastAPI:
    """The app. config: the settings its runtime is built from (the broker, the AI backend, the
    request slots; a test passes a copy with its own, e.g. one AI worker); what requests read
    as they come (limits, sizes) is the process's one `config.settings`. models: AI models it
    runs besides the shipped ones and AI_MODEL_MODULES' (a test's own, e.g. a model that fails
    on purpose)."""
    configure_logging()  # before uvicorn logs its start-up lines, so they share the format
    app = MadangAPI(
        title=settings.PROJECT_NAME,
        version="0.1.0",
        description="Boards, live support chat and asynchronous AI jobs for an online community.",
        lifespan=partial(lifespan, config=config, extra_models=tuple(models)),
        # JSON bodies are small; upload routes set their own, larger limit.
        max_body_size=settings.MAX_JSON_BODY_KB * 1024,
        openapi_tags=OPENAPI_TAGS,
        generate_unique_id_function=operation_id,
        docs_url=None,  # FastAPI's pages load from a CDN: routers/docs.py serves them from here
        redoc_url=None,
    )
    app.cors_origins = tuple(config.cors_origins)
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, server_error_handler)
    for module in (auth, users, boards, posts, comments, attachments, chat, admin, ai, ai_training):
        app.include_router(module.router, prefix=settings.API_PREFIX)
    app.include_router(search_router.router, prefix=settings.API_PREFIX)  # GET /search
    app.include_router(ai.admin_router, prefix=settings.API_PREFIX)  # /admin/ai/...
    app.include_router(health.router)
    app.include_router(chat.page_router)  # GET /chat, the example chat client
    if config.METRICS_ENABLED:
        app.measured = True
        app.include_router(metrics_router.router)  # GET /metrics
    serve_docs(app)  # /docs, /redoc
    return app


app = create_app()
