"""CORS in a real browser: a frontend page served from another port (another origin) signs in,
reads /users/me and uploads a file through the API, which lists that origin in CORS_ORIGINS; a
page from an origin it does not list gets nothing (Chromium refuses the answers)."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.chat_support import API, ApiProcess, running_api
from tests.conftest import PASSWORD, Person, free_port

# The frontend: plain fetch calls, as a single-page app makes them.
FRONTEND_PAGE = """<!doctype html><meta charset="utf-8"><title>frontend</title>
<script>
async function run(api, name, password, postId) {
  const steps = {};
  try {
    const login = await fetch(api + "/auth/login", {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams({username: name, password: password}),
    });
    steps.login = login.status;
    const token = (await login.json()).access_token;
    const me = await fetch(api + "/users/me", {headers: {Authorization: "Bearer " + token}});
    steps.me = me.status;
    steps.name = (await me.json()).name;
    steps.requestId = me.headers.get("X-Request-ID");
    const form = new FormData();
    form.append("files", new Blob(["hello from the frontend"], {type: "text/plain"}), "note.txt");
    const upload = await fetch(api + "/posts/" + postId + "/attachments", {
      method: "POST", headers: {Authorization: "Bearer " + token}, body: form,
    });
    steps.upload = upload.status;
    steps.uploaded = (await upload.json()).map((a) => a.filename);
  } catch (error) {
    steps.error = String(error);
  }
  return steps;
}
</script>"""


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """FRONTEND_PAGE as index.html, served by `python -m http.server` on a port of its own; its
    origin."""
    (folder / "index.html").write_text(FRONTEND_PAGE, encoding="utf-8")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(folder),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx2.get(origin, timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The frontend's origin: a static server on a port of its own."""
    with static_site(Path(tmp_path_factory.mktemp("frontend"))) as origin:
        yield origin


@pytest.fixture(scope="module")
def api(frontend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API on the suite's database, allowing the frontend's origin."""
    log = Path(tmp_path_factory.mktemp("cors-server")) / "api.log"
    with running_api({**os.environ, "REDIS_URL": "", "CORS_ORIGINS": frontend}, log) as server:
        yield server


def writable_post(api: ApiProcess, person: Person, board_id: int) -> int:
    response = httpx2.post(
        f"{api.http}{API}/boards/{board_id}/posts",
        headers=person.headers,
        json={"name": "frontend test", "content": "a post to attach to"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def run_frontend(
    browser: Any, page_url: str, api: ApiProcess, person: Person, post_id: int
) -> dict[str, Any]:
    page = browser.new_context().new_page()
    page.goto(page_url)
    arguments = [f"{api.http}{API}", person.name, PASSWORD, post_id]
    steps: dict[str, Any] = page.evaluate("(args) => run(...args)", arguments)
    page.close()
    return steps


def test_a_page_on_an_allowed_origin_signs_in_reads_and_uploads(
    browser, frontend, api, make_user, make_board
):
    person = make_user("frontend_user")
    post_id = writable_post(api, person, make_board("frontend board").id)
    steps = run_frontend(browser, frontend, api, person, post_id)
    assert steps.get("error") is None, steps
    assert steps["login"] == 200 and steps["me"] == 200 and steps["name"] == "frontend_user"
    assert steps["requestId"]  # an exposed header: readable by the page
    assert steps["upload"] == 201 and steps["uploaded"] == ["note.txt"], json.dumps(steps)


def test_a_page_on_another_origin_is_refused_by_the_browser(browser, api, make_user, make_board, tmp_path):
    person = make_user("other_origin_user")
    post_id = writable_post(api, person, make_board("other origin board").id)
    with static_site(tmp_path) as other:
        steps = run_frontend(browser, other, api, person, post_id)
    assert "Failed to fetch" in steps.get("error", ""), steps
    assert "me" not in steps
