"""The HTTP edge: who the client is, and the security headers every answer carries.

- client_ip(): the socket's peer address, unless that peer is one of TRUSTED_PROXIES; then the
  right-most X-Forwarded-For entry that is not a trusted proxy. deps.client_ip (rate limits) and
  the access line (logs.py) both use it. uvicorn must not rewrite the peer from the header itself
  (serving.py: no proxy headers).
- SecurityHeaders, a pure ASGI middleware (main.py): nosniff, no referrer, a Content-Security-
  Policy that allows nothing unless the answer brings its own, HSTS when HSTS_SECONDS > 0.
- html_page(): an HTML answer whose policy allows its own inline scripts and styles by hash and
  nothing from another origin.
- Measured (METRICS_ENABLED): each request's route template, status and duration, and the open
  WebSockets, for the metrics (services/metrics.py).
"""

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import IPNetwork, settings

IPAddress = IPv4Address | IPv6Address

FORWARDED_FOR = b"x-forwarded-for"


def client_ip(scope: Scope, trusted: Sequence[IPNetwork] | None = None) -> str | None:
    """The client's address for rate limits and logs (None when the server does not know it)."""
    client = scope.get("client")
    peer = client[0] if client else None
    networks = settings.trusted_proxy_networks if trusted is None else trusted
    if not networks or peer is None:  # the usual case: no proxy, nothing to parse
        return peer
    return forwarded_client(peer, forwarded_for(scope["headers"]), networks)


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The X-Forwarded-For entries, left to right, of every such header in order."""
    return [
        entry
        for name, value in headers
        if name == FORWARDED_FOR
        for entry in value.decode("latin-1").split(",")
    ]


def forwarded_client(peer: str, entries: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """Walks from the peer leftwards through the entries while each hop is a trusted proxy: the
    first address that is not one is the client (what is left of it, anyone could have written).
    An entry that is not an address stops the walk at the last trusted hop: a garbled header
    never lets the sender choose the address it is counted as."""
    hop = parse_address(peer)
    if hop is None or not is_trusted(hop, trusted):
        return peer
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            break
        hop = address
        if not is_trusted(hop, trusted):
            break
    return str(hop)


# The longest address text: IPv6 with an embedded IPv4 (45) and a zone id; longer is not one.
LONGEST_ADDRESS = 64


def parse_address(text: str) -> IPAddress | None:
    """An IP address (IPv4-mapped IPv6 as IPv4, so one client has one spelling), or None."""
    text = text.strip()
    return _parse_address(text) if len(text) <= LONGEST_ADDRESS else None


@lru_cache(maxsize=4096)  # the same few proxies and clients come again and again: 0.1 µs, not 3
def _parse_address(text: str) -> IPAddress | None:
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


# --- security headers --------------------------------------------------------------------------

# Answers that are not pages load nothing and may not be framed: JSON, files, errors.
NOTHING_ALLOWED = "default-src 'none'; frame-ancestors 'none'"
CSP = b"content-security-policy"
# The messages that start an answer over HTTP (a refused WebSocket handshake's too).
RESPONSE_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


def security_headers(hsts_seconds: int) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (CSP, NOTHING_ALLOWED.encode()),
    ]
    if hsts_seconds > 0:
        headers.append((b"strict-transport-security", f"max-age={hsts_seconds}; includeSubDomains".encode()))
    return headers


class SecurityHeaders:
    """Adds the headers to every answer that does not set them itself (a page its own policy).
    Pure ASGI, like logs.RequestLogMiddleware: a few microseconds a request."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int | None = None) -> None:
        self.app = app
        self.headers = security_headers(settings.HSTS_SECONDS if hsts_seconds is None else hsts_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in RESPONSE_STARTS:
                headers = list(message.get("headers") or ())
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in self.headers if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


INLINE_BLOCK = re.compile(r"<(script|style)(\s[^>]*)?>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE)


def page_policy(html: str, *, inserted_styles: Iterable[str] = (), also: str = "") -> str:
    """A policy for this page: its own origin, plus exactly its inline <script> and <style>
    blocks (by sha256, so an injected one does not run), never another origin.
    `inserted_styles`: the sha256 sources ('sha256-...') of <style> elements its scripts add."""
    sources: dict[str, list[str]] = {"script": [], "style": [f" '{each}'" for each in inserted_styles]}
    for kind, attributes, body in INLINE_BLOCK.findall(html):
        if kind.lower() == "script" and "src=" in (attributes or "").lower():
            continue  # a file, which 'self' covers
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        sources[kind.lower()].append(f" 'sha256-{digest}'")
    return (
        "default-src 'none'; "
        f"script-src 'self'{''.join(sources['script'])}; "
        f"style-src 'self'{''.join(sources['style'])}; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        f"base-uri 'none'; form-action 'self'; frame-ancestors 'none'{also}"
    )


def html_page(html: str, *, inserted_styles: Iterable[str] = (), also: str = "") -> HTMLResponse:
    """The page with its own Content-Security-Policy (see page_policy)."""
    policy = page_policy(html, inserted_styles=inserted_styles, also=also)
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


# CORS for browser frontends on other origins (CORS_ORIGINS). Tokens travel in the Authorization
# header, never in cookies, so credentials stay off; a frontend may read these answer headers.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Prefer", "X-Request-ID")
CORS_EXPOSED_HEADERS = ("Location", "Retry-After", "X-Request-ID")
CORS_MAX_AGE_SECONDS = 600


class CrossOrigin(CORSMiddleware):
    """Starlette's CORS middleware, answering an allowed preflight with 204 No Content (Starlette
    says 200 "OK"): a preflight has no body to give."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=CORS_MAX_AGE_SECONDS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            # Refused (an origin, method or header not allowed): 400 in the API's error shape,
            # without any CORS header, so the browser keeps even that from the page.
            detail = bytes(response.body).decode().lower()  # "Disallowed CORS origin, method"
            return JSONResponse({"detail": detail, "code": "cors_refused"}, status_code=400)
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return Response(status_code=204, headers=headers)


# --- request metrics (METRICS_ENABLED, services/metrics.py) ------------------------------------


class RequestObserver(Protocol):
    def request_ended(self, method: str, route: str, status: int, seconds: float) -> None: ...

    def socket_opened(self) -> None: ...

    def socket_closed(self) -> None: ...


UNMATCHED_ROUTE = "unmatched"  # every path no route matches: a client cannot add series


class Measured:
    """Tells the app's metrics each request's route template, status and duration, and each
    WebSocket's opening and closing. `observer(scope)`: the running app's metrics, None before
    it starts. Pure ASGI: two clock reads and a wrapped `send` a request, ~5 µs with the counts
    (docs/operations.md#metrics)."""

    def __init__(
        self, app: ASGIApp, observer: Callable[[Scope], RequestObserver | None], routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.observer = observer
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        metrics = self.observer(scope) if kind in ("http", "websocket") else None
        if metrics is None:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await self._socket(metrics, scope, receive, send)
        else:
            await self._request(metrics, scope, receive, send)

    async def _request(self, metrics: RequestObserver, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500  # what the client gets if the app raises before answering
        root_path = scope.get("root_path", "")
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            seconds = time.perf_counter() - started
            metrics.request_ended(scope["method"], self.templates.of(scope, root_path), status, seconds)

    async def _socket(self, metrics: RequestObserver, scope: Scope, receive: Receive, send: Send) -> None:
        opened = False

        async def send_noting_accept(message: Message) -> None:
            nonlocal opened
            await send(message)
            if message["type"] == "websocket.accept" and not opened:
                opened = True
                metrics.socket_opened()

        try:
            await self.app(scope, receive, send_noting_accept)
        finally:
            if opened:
                metrics.socket_closed()


class RouteTemplates:
    """The template a request matched, as the API declares it (`/api/v1/posts/{post_id}`):
    one label a route, never the path a client chose. FastAPI hands over the route as its router
    declared it (`/posts/{post_id}`, without the prefix it was included with), a plain route or
    a mount (the docs' pages and files) its endpoint; the full templates are looked up by those,
    made once from the app's routes (again for one not seen yet)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes  # the app's list, which routes added later join
        self._by_handler: dict[int, list[tuple[re.Pattern[str], str]]] = {}

    def of(self, scope: Scope, root_path: str) -> str:
        handler = scope.get("route") or scope.get("endpoint")
        if handler is None:
            return UNMATCHED_ROUTE
        found = self._by_handler.get(id(handler))
        if found is None:
            self._by_handler = self._templates()
            found = self._by_handler.setdefault(id(handler), [])
        if len(found) == 1:
            return found[0][1]
        path = scope["path"][len(root_path) :]
        # A router included twice: the template whose full path matched.
        return next((template for pattern, template in found if pattern.match(path)), UNMATCHED_ROUTE)

    def _templates(self) -> dict[int, list[tuple[re.Pattern[str], str]]]:
        templates: dict[int, list[tuple[re.Pattern[str], str]]] = {}
        for context in iter_route_contexts(self.routes):
            route = context.original_route
            # FastAPI's own routes arrive as scope["route"]; Starlette's leave their endpoint
            # (a mount: the app it mounts).
            handler = (
                route if isinstance(route, APIRoute) else context.endpoint or getattr(route, "app", None)
            )
            if handler is not None and context.path is not None and context.path_format is not None:
                pattern = compile_path(context.path)[0]
                templates.setdefault(id(handler), []).append((pattern, context.path_format))
        return templates
