"""The application: routers, the one error mapping, request limits. Run with `uvicorn main:app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from config import settings
from errors import DomainError
from routers import admin, attachments, auth, boards, chat, comments, health, posts, users

log = logging.getLogger("madang")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    settings.signing_key  # noqa: B018 - create the development key file before the first request
    yield


def domain_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=exc.headers)


def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """Framework errors (unknown route, wrong method, body too large) in the same shape."""
    assert isinstance(exc, HTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return JSONResponse(
        {"detail": exc.detail, "code": code}, status_code=exc.status_code, headers=exc.headers
    )


def create_app() -> FastAPI:
    app = FastAPI(
        title=settings.PROJECT_NAME,
        version="0.1.0",
        description="Boards, live support chat and asynchronous AI jobs for an online community.",
        lifespan=lifespan,
        # JSON bodies are small; upload routes set their own, larger limit.
        max_body_size=settings.MAX_JSON_BODY_KB * 1024,
    )
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    for module in (auth, users, boards, posts, comments, attachments, chat, admin):
        app.include_router(module.router, prefix=settings.API_PREFIX)
    app.include_router(health.router)
    return app


app = create_app()
