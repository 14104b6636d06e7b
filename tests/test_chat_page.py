"""The /chat page in a real browser: headless Chromium (Debian's package) driven by Playwright.
A user and an administrator, each in a browser context of their own, chat through the page.

The API runs as a uvicorn process on the suite's database, so the fixtures' users can sign in."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chat_support import ApiProcess, running_api
from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - requirements-dev.txt installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    if sync_playwright is None or not shutil.which(CHROMIUM):
        reason = "the browser test needs python playwright and Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API on the suite's database (conftest put DATABASE_URL in the environment)."""
    log = Path(tmp_path_factory.mktemp("page-server")) / "api.log"
    with running_api({**os.environ, "REDIS_URL": ""}, log) as api:
        yield api


def signed_in_page(browser: "Browser", server: ApiProcess, name: str) -> "Page":
    page = browser.new_context().new_page()
    page.goto(f"{server.http}/chat")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login button")
    expect(page.locator("#status")).to_have_text("online")
    return page


def say(page: "Page", text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def test_the_chat_page_is_served(server):
    import httpx2

    response = httpx2.get(f"{server.http}/chat")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_a_user_and_an_administrator_chat_through_the_page(browser, server, make_user):
    make_user("minji")
    make_user("root_admin", is_superuser=True)
    user_page = signed_in_page(browser, server, "minji")
    user_page.fill("#new-conversation-name", "로그인이 안 돼요")
    user_page.click("#new-conversation-form button")
    expect(user_page.locator("#conversation-title")).to_have_text("로그인이 안 돼요")
    admin_page = signed_in_page(browser, server, "root_admin")

    say(user_page, "hello, is anyone there?")
    expect(user_page.locator("#messages .message:not(.pending) .content")).to_have_text(
        ["hello, is anyone there?"]
    )
    conversation = admin_page.locator("#conversation-list li").first
    expect(conversation.locator(".unread")).to_have_text("1")  # arrived live, counted unread

    conversation.click()
    expect(admin_page.locator("#messages .message .content")).to_have_text(["hello, is anyone there?"])
    expect(conversation.locator(".unread")).to_be_hidden()
    say(admin_page, "안녕하세요! How can I help?")
    expect(user_page.locator("#messages .message .content")).to_have_text(
        ["hello, is anyone there?", "안녕하세요! How can I help?"]
    )


def test_the_page_shows_edited_and_deleted_messages(browser, server, make_user):
    import httpx2

    user = make_user("minji")
    make_user("root_admin", is_superuser=True)
    user_page = signed_in_page(browser, server, "minji")
    user_page.fill("#new-conversation-name", "오타가 있어요")
    user_page.click("#new-conversation-form button")
    expect(user_page.locator("#conversation-title")).to_have_text("오타가 있어요")
    say(user_page, "typo")
    say(user_page, "oops")
    sent = user_page.locator("#messages .message:not(.pending)")
    expect(sent.locator(".content")).to_have_text(["typo", "oops"])
    typo_id, oops_id = (sent.nth(n).get_attribute("data-id") for n in (0, 1))

    # Changed through the API: the open page hears of it live.
    api = f"{server.http}/api/v1/chat/messages"
    assert (
        httpx2.patch(f"{api}/{typo_id}", json={"content": "fixed"}, headers=user.headers).status_code == 200
    )
    assert httpx2.delete(f"{api}/{oops_id}", headers=user.headers).status_code == 204
    expect(sent.locator(".content")).to_have_text(["fixed", "(message deleted)"])
    expect(sent.nth(0).locator(".meta")).to_contain_text("(edited)")

    # From the history: an administrator still reads the deleted message, marked as deleted.
    admin_page = signed_in_page(browser, server, "root_admin")
    admin_page.locator("#conversation-list li").first.click()
    expect(admin_page.locator("#messages .message .content")).to_have_text(["fixed", "oops"])
    expect(admin_page.locator("#messages .message.deleted .meta")).to_contain_text("(message deleted)")
