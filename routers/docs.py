"""The API's documentation pages, /docs (Swagger UI) and /redoc, with their scripts and styles served
from here (the fastapi-offline package ships them) instead of a CDN: they work without internet,
and each page's Content-Security-Policy allows its own origin only."""

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from edge import html_page

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# ReDoc's script adds two <style> elements: perfect-scrollbar's CSS, and styled-components' sheet,
# empty (its rules are inserted through the CSSOM, which a policy does not govern). Another
# redoc.standalone.js (a new fastapi-offline) may change the first: the browser test
# (tests/test_security_headers.py) then fails, and Chromium's message names the hash it wants.
REDOC_STYLES = (
    "sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc=",
    "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  # the empty string
)
# ReDoc runs its search index in a Web Worker made from a blob: URL.
REDOC_ALSO = "; worker-src blob:"


def serve_docs(app: FastAPI) -> None:
    """Serves the pages FastAPI would, made with FastAPI's own functions, on local files. The app
    is made with docs_url=None and redoc_url=None; they are set here, so tools that read them
    find the pages."""
    assert app.openapi_url and app.swagger_ui_oauth2_redirect_url
    openapi_url, redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return html_page(bytes(page.body).decode())

    async def swagger_ui_redirect(_: Request) -> HTMLResponse:
        return html_page(bytes(get_swagger_ui_oauth2_redirect_html().body).decode())

    async def redoc(request: Request) -> HTMLResponse:
        root = root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return html_page(bytes(page.body).decode(), inserted_styles=REDOC_STYLES, also=REDOC_ALSO)

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.docs_url, app.redoc_url = DOCS_URL, REDOC_URL


def root_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")
