"""Security headers on every answer; the HTML pages (/chat, /docs, /redoc) with a policy that allows
their own code only, and that still work in a real browser offline."""

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

import main
from config import settings
from services import health as health_service
from tests.chat_support import API, ApiProcess, running_api
from tests.conftest import PASSWORD, Person

# Database-independent (headers of answers) and slow: `make test` runs it in its MariaDB pass, which is
# the shorter one (the Makefile's `test`); `make test-sqlite` alone runs it too.
pytestmark = pytest.mark.either_pass

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

NOTHING_ALLOWED = "default-src 'none'; frame-ancestors 'none'"


def assert_guarded(response: Any) -> None:
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers.get_list("referrer-policy") == ["no-referrer"]
    assert len(response.headers.get_list("content-security-policy")) == 1
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


ANSWERS = {
    "200": ("GET", "/health", {}),
    "401": ("GET", f"{API}/users/me", {}),
    "404": ("GET", "/no/such/page", {}),
    "405": ("DELETE", "/health", {}),
    "413": (
        "POST",
        f"{API}/auth/signup",
        {"content": b"{" + b" " * (settings.MAX_JSON_BODY_KB * 1024) + b"}"},
    ),
    "422": ("POST", f"{API}/auth/login", {"data": {}}),
    "static file": ("GET", "/docs/assets/swagger-ui.css", {}),
    "openapi.json": ("GET", "/openapi.json", {}),
}


@pytest.mark.parametrize("answer", ANSWERS.values(), ids=ANSWERS.keys())
def test_every_answer_forbids_sniffing_referrers_and_framing(client: TestClient, answer: tuple) -> None:
    method, path, extra = answer
    response = client.request(method, path, headers={"content-type": "application/json"}, **extra)
    assert_guarded(response)
    assert response.headers["content-security-policy"] == NOTHING_ALLOWED  # not a page: loads nothing


def test_a_500_is_guarded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> list[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(health_service, "readiness_problems", broken)
    with TestClient(main.app, raise_server_exceptions=False) as client:
        response = client.get("/ready")
    assert response.status_code == 500
    assert_guarded(response)


def test_without_hsts_seconds_no_hsts_is_sent(client: TestClient) -> None:
    assert "strict-transport-security" not in client.get("/health").headers


def test_hsts_seconds_sends_hsts_on_every_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "HSTS_SECONDS", 31_536_000)
    client = TestClient(main.create_app())
    for path in ("/health", "/nope", "/docs"):
        assert client.get(path).headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


PAGES = ["/chat", "/docs", "/redoc"]


def inline_hashes(html: str, tag: str) -> set[str]:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    return {
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in blocks
    }


def directive(policy: str, name: str) -> list[str]:
    for part in policy.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"no {name} in {policy!r}")


@pytest.mark.parametrize("path", PAGES)
def test_a_page_may_run_only_its_own_code(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_guarded(response)
    policy = response.headers["content-security-policy"]
    assert directive(policy, "default-src") == ["'none'"]
    assert directive(policy, "frame-ancestors") == ["'none'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "http" not in policy and "*" not in policy  # no other origin
    scripts = directive(policy, "script-src")
    assert set(scripts) == {"'self'"} | inline_hashes(response.text, "script")
    assert inline_hashes(response.text, "style") <= set(directive(policy, "style-src"))


def test_the_documentation_loads_nothing_from_another_origin(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        sources = re.findall(r'(?:src|href)="([^"]*)"', client.get(path).text)
        assert sources
        assert all(source.startswith("/") for source in sources), sources


# --- in a browser, offline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API on the suite's database, served as `make run` serves it."""
    log = Path(tmp_path_factory.mktemp("pages-server")) / "api.log"
    with running_api({**os.environ, "REDIS_URL": ""}, log) as api:
        yield api


@dataclass
class Visit:
    page: "Page"
    violations: list[str] = field(default_factory=list)  # what the policy blocked
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    outside: list[str] = field(default_factory=list)  # requests to any host but the loopback


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) =>
    console.log("csp-violation " + event.effectiveDirective + " " + event.blockedURI));
"""


@pytest.fixture
def visit(browser: "Browser", server: ApiProcess) -> Iterator[Any]:
    contexts = []

    def open_page(path: str) -> Visit:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page)

        def only_loopback(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:  # no internet here; and the pages must not need it
                seen.outside.append(route.request.url)
                route.abort()

        def console(message: Any) -> None:
            if message.text.startswith("csp-violation "):
                seen.violations.append(message.text.removeprefix("csp-violation "))
            elif message.type == "error" and "Content Security Policy" not in message.text:
                seen.errors.append(message.text)

        context.route("**/*", only_loopback)
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", console)
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        page.goto(f"{server.http}{path}")
        return seen

    yield open_page
    for context in contexts:
        context.close()


def test_swagger_ui_works_offline_under_its_policy(visit: Any, user: Person) -> None:
    from playwright.sync_api import expect

    seen = visit("/docs")
    page = seen.page
    expect(page.locator(".opblock-summary-path", has_text=f"{API}/auth/login")).to_be_visible()
    # Authorize: Swagger logs in through the OAuth2 password form, then sends the token.
    page.click("button.authorize")
    page.fill("#oauth_username", user.name)
    page.fill("#oauth_password", PASSWORD)
    page.click(".auth-btn-wrapper button.authorize")
    expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible()
    page.click("button.btn-done")
    me = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text=f"{API}/users/me")).first
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    expect(me.locator(".response .response-col_status").first).to_have_text("200")
    assert (seen.violations, seen.errors, seen.outside) == ([], [], [])


def test_redoc_works_offline_under_its_policy(visit: Any) -> None:
    from playwright.sync_api import expect

    seen = visit("/redoc")
    page = seen.page
    expect(page.locator("h1")).to_contain_text(settings.PROJECT_NAME)
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.fill("input[placeholder='Search...']", "password")  # the search index runs in a worker
    expect(page.locator("[data-role='search:results'] li").first).to_be_visible()
    # The one thing the policy blocks: ReDoc's "API docs by Redocly" logo, from Redocly's CDN
    # (the page hides it when it fails to load).
    assert seen.violations == ["img-src https://cdn.redoc.ly/redoc/logo-mini.svg"]
    assert (seen.errors, seen.outside) == ([], [])


def test_the_chat_page_works_under_its_policy(visit: Any, user: Person) -> None:
    from playwright.sync_api import expect

    seen = visit("/chat")
    page = seen.page
    page.fill("#login-name", user.name)
    page.fill("#login-password", PASSWORD)
    page.click("#login button")
    expect(page.locator("#status")).to_have_text("online")  # fetch and the WebSocket both allowed
    assert (seen.violations, seen.errors, seen.outside) == ([], [], [])
