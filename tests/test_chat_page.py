"""The /chat page in a real browser: headless Chromium (Debian's package) driven by Playwright.
A user and an administrator, each in a browser context of their own, chat through the page.

The API runs as a uvicorn process on the suite's database, so the fixtures' users can sign in."""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from config import settings
from tests.chat_support import ApiProcess, running_api, sleep_until
from tests.conftest import PASSWORD

# Database-independent (a page in a browser) and slow: `make test` runs it in its MariaDB pass, which is
# the shorter one (the Makefile's `test`); `make test-sqlite` alone runs it too.
pytestmark = pytest.mark.either_pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API on the suite's database (conftest put DATABASE_URL in the environment)."""
    log = Path(tmp_path_factory.mktemp("page-server")) / "api.log"
    with running_api({**os.environ, "REDIS_URL": ""}, log) as api:
        yield api


def signed_in_page(browser: Browser, server: ApiProcess, name: str) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, server, name)
    return page


def sign_in(page: Page, server: ApiProcess, name: str) -> None:
    page.goto(f"{server.http}/chat")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login button")
    expect(page.locator("#status")).to_have_text("online")


def say(page: Page, text: str) -> None:
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


def test_the_page_refreshes_its_token_and_hands_it_to_the_open_socket(browser, server, make_user):
    """The socket closes when the token it opened with expires, unless it gets a fresh one in an
    `auth` event. The page's clock is Playwright's: it runs on to where the page refreshes its
    tokens (three quarters of the token's life) without waiting for it."""
    make_user("minji")
    page = browser.new_context().new_page()
    page.clock.install()
    with page.expect_websocket() as opened:
        sign_in(page, server, "minji")
    socket = opened.value
    sent: list[dict[str, object]] = []
    socket.on("framesent", lambda payload: sent.append(json.loads(payload)))
    first_token = page.evaluate("sessionStorage.getItem('accessToken')")
    # Only the page's clock runs on: a token the server made within the same second as the
    # first would be the same string (a JWT's iat and exp are whole seconds).
    sleep_until(int(time.time()) + 1)

    def is_auth_ok(payload: str) -> bool:
        return bool(json.loads(payload)["type"] == "auth.ok")

    with socket.expect_event("framereceived", predicate=is_auth_ok):
        page.clock.run_for(int(settings.ACCESS_TOKEN_MINUTES * 60_000 * 0.8))
    fresh_token = page.evaluate("sessionStorage.getItem('accessToken')")
    assert fresh_token != first_token
    assert [event for event in sent if event["type"] == "auth"] == [{"type": "auth", "token": fresh_token}]
    expect(page.locator("#status")).to_have_text("online")


# What #typing said at the moment each message appeared on the page: a MutationObserver reads it
# in the same turn of the page's event loop as the message was added, so no timing is involved.
RECORD_TYPING_AT_EACH_MESSAGE = """() => {
  window.typingAtMessage = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.classList?.contains("message") && !node.classList.contains("pending")) {
          window.typingAtMessage.push(document.querySelector("#typing").textContent);
        }
      }
    }
  }).observe(document.querySelector("#messages"), { childList: true });
}"""


def open_the_same_conversation(browser: Browser, server: ApiProcess) -> tuple[Page, Page]:
    """minji's page with a conversation open, and root_admin's page with it open too."""
    user_page = signed_in_page(browser, server, "minji")
    user_page.fill("#new-conversation-name", "I forgot my password")
    user_page.click("#new-conversation-form button")
    expect(user_page.locator("#conversation-title")).to_have_text("I forgot my password")
    admin_page = signed_in_page(browser, server, "root_admin")
    admin_page.locator("#conversation-list li").first.click()
    expect(admin_page.locator("#conversation-title")).to_have_text("I forgot my password")
    return user_page, admin_page


def test_the_typing_indicator_shows_while_the_administrator_types_and_goes_with_their_message(
    browser, server, make_user
):
    make_user("minji")
    make_user("root_admin", is_superuser=True)
    user_page, admin_page = open_the_same_conversation(browser, server)
    user_page.evaluate(RECORD_TYPING_AT_EACH_MESSAGE)

    admin_page.fill("#message-input", "One moment, I will look")  # typing: an input event
    expect(user_page.locator("#typing")).to_have_text("root_admin is typing…")
    admin_page.press("#message-input", "Enter")
    expect(user_page.locator("#messages .message .content")).to_have_text(["One moment, I will look"])
    assert user_page.evaluate("window.typingAtMessage") == [""]
    expect(user_page.locator("#typing")).to_have_text("")


def test_the_typing_indicator_goes_by_itself_when_no_message_follows(browser, server, make_user):
    """The typist may close the tab mid-sentence: nothing says they stopped. The page's clock is
    Playwright's: it runs on past the indicator's lifetime without waiting for it."""
    make_user("minji")
    make_user("root_admin", is_superuser=True)
    user_page, admin_page = open_the_same_conversation(browser, server)
    user_page.clock.install()

    admin_page.fill("#message-input", "Let me s")
    expect(user_page.locator("#typing")).to_have_text("root_admin is typing…")
    user_page.clock.run_for(10_000)
    expect(user_page.locator("#typing")).to_have_text("")


def test_the_page_loads_older_messages_until_the_first(browser, server, make_user):
    """The history's cursor page: the latest messages first, then older ones while next_before_id
    says there are more, each message once, in order."""
    import httpx2

    user = make_user("minji")
    with httpx2.Client(base_url=f"{server.http}/api/v1", headers=user.headers) as api:
        conversation = api.post("/chat/sessions", json={"name": "a long story"}).json()
        for number in range(60):  # more than the page's PAGE_SIZE (50)
            sent = api.post(
                f"/chat/sessions/{conversation['id']}/messages", json={"content": f"part {number}"}
            )
            assert sent.status_code == 201, sent.text
    page = signed_in_page(browser, server, "minji")
    page.locator("#conversation-list li").first.click()
    shown = page.locator("#messages .message .content")
    expect(shown).to_have_count(50)
    expect(shown.first).to_have_text("part 10")

    page.click("#load-older")
    expect(shown).to_have_text([f"part {number}" for number in range(60)])
    expect(page.locator("#load-older")).to_have_count(0)
