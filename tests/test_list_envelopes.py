"""Every list of the API answers one envelope: a page `{items, total, offset, limit}` (offset and
limit in the query: limit 1..100, default 20), or, for a conversation's messages, a cursor page
`{items, next_before_id, next_after_id}` whose cursors walk the history without repeats or gaps.
No route answers a bare array."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

import models
from config import settings
from main import app
from tests.chat_support import open_conversation, post_message
from tests.conftest import Person

pytestmark = pytest.mark.db  # paging, totals and cursors are the database's answers

API = settings.API_PREFIX
BOARD_LISTS = [f"{API}/boards", f"{API}/users/me/boards"]
PAGE_KEYS = {"items", "total", "offset", "limit"}
CURSOR_KEYS = {"items", "next_before_id", "next_after_id"}
MakeBoard = Callable[..., models.Board]


def get_ok(client: TestClient, person: Person, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict), body
    return body


def history(client: TestClient, person: Person, session_id: int, **params: Any) -> dict[str, Any]:
    return get_ok(client, person, f"{API}/chat/sessions/{session_id}/messages", **params)


# --- no bare arrays ------------------------------------------------------------------------


def test_no_route_answers_a_bare_array() -> None:
    """Read from the OpenAPI document, so a list route added later is held to it too."""
    arrays = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if status.startswith("2") and schema.get("type") == "array":
                    arrays.append(f"{method.upper()} {path} {status}")
    # Uploads answer the attachments they made, in the order sent: a result, not a list to page.
    assert [a for a in arrays if not a.endswith("/attachments 201")] == []


def test_every_paged_list_takes_offset_and_limit_with_the_same_bounds() -> None:
    paged = []
    for path, operations in app.openapi()["paths"].items():
        for operation in operations.values():
            schema = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
            if not schema.get("schema", {}).get("$ref", "").startswith("#/components/schemas/Page_"):
                continue
            parameters = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
            paged.append(path)
            assert parameters["offset"]["minimum"] == 0, path
            assert parameters["offset"]["default"] == 0, path
            assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 100), path
            assert parameters["limit"]["default"] == 20, path
    assert f"{API}/boards" in paged and f"{API}/users/me/boards" in paged


# --- boards ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_board_lists_answer_a_page(client: TestClient, make_board: MakeBoard, user: Person, url: str) -> None:
    board = make_board("only")
    assert get_ok(client, user, url) == {
        "items": [
            {
                "id": board.id,
                "name": "only",
                "information": "about only",
                "is_public": True,
                "is_visible": True,
            }
        ],
        "total": 1,
        "offset": 0,
        "limit": 20,
    }


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_board_lists_page_through_every_usable_board_once(
    client: TestClient, make_board: MakeBoard, user: Person, other_user: Person, url: str
) -> None:
    usable = [make_board(f"board {n}").id for n in range(5)]
    make_board("others only", is_public=False, members=(other_user,))  # neither listed nor counted
    make_board("hidden", is_visible=False)
    first = get_ok(client, user, url, limit=2)
    second = get_ok(client, user, url, limit=2, offset=2)
    last = get_ok(client, user, url, limit=2, offset=4)
    assert [page["total"] for page in (first, second, last)] == [5, 5, 5]
    assert (second["offset"], second["limit"]) == (2, 2)
    assert [b["id"] for page in (first, second, last) for b in page["items"]] == usable
    assert get_ok(client, user, url, offset=10)["items"] == []


def test_a_board_page_holds_20_unless_asked(client: TestClient, make_board: MakeBoard, admin: Person) -> None:
    for n in range(25):
        make_board(f"board {n}")
    page = get_ok(client, admin, f"{API}/boards")
    assert (len(page["items"]), page["total"], page["limit"]) == (20, 25, 20)
    assert len(get_ok(client, admin, f"{API}/boards", limit=100)["items"]) == 25


# --- bad paging ------------------------------------------------------------------------------


@pytest.fixture
def list_urls(client: TestClient, make_board: MakeBoard, make_post: Callable[..., models.Post], user: Person):
    board = make_board("board")
    post = make_post(board, user)
    conversation = open_conversation(client, user)
    return [
        *BOARD_LISTS,
        f"{API}/boards/{board.id}/posts",
        f"{API}/posts/{post.id}/comments",
        f"{API}/chat/sessions",
        f"{API}/ai/jobs",
        f"{API}/chat/sessions/{conversation['id']}/messages",
    ]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"offset": -1}], ids=str)
def test_a_bad_page_is_refused_with_the_apis_error(
    client: TestClient, user: Person, list_urls: list[str], params: dict[str, Any]
) -> None:
    for url in list_urls:
        if "offset" in params and url.endswith("/messages"):
            continue  # a cursor page has no offset
        response = client.get(url, params=params, headers=user.headers)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["code"] == "invalid_input", url


@pytest.mark.parametrize("params", [{"before_id": 0}, {"after_id": -1}, {"before_id": "x"}], ids=str)
def test_a_bad_history_cursor_is_refused(client: TestClient, user: Person, params: dict[str, Any]) -> None:
    conversation = open_conversation(client, user)
    response = client.get(
        f"{API}/chat/sessions/{conversation['id']}/messages", params=params, headers=user.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


# --- conversations ---------------------------------------------------------------------------


def test_paging_through_conversations_never_shows_another_users(
    client: TestClient, user: Person, other_user: Person
) -> None:
    mine = set()
    for n in range(3):
        mine.add(open_conversation(client, user, f"mine {n}")["id"])
        open_conversation(client, other_user, f"theirs {n}")
    pages = [get_ok(client, user, f"{API}/chat/sessions", limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [page["total"] for page in pages] == [3, 3, 3]
    seen = [c["id"] for page in pages for c in page["items"]]
    assert sorted(seen) == sorted(mine)


# --- chat history: a cursor page -------------------------------------------------------------


@pytest.fixture
def conversation(client: TestClient, user: Person) -> dict[str, Any]:
    return open_conversation(client, user)


def test_a_short_history_is_one_page_with_no_cursors(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    sent = [post_message(client, user, conversation["id"], f"m{n}") for n in range(3)]
    assert history(client, user, conversation["id"]) == {
        "items": sent,
        "next_before_id": None,
        "next_after_id": None,
    }


def test_an_empty_history_has_no_cursors(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    assert history(client, user, conversation["id"]) == {
        "items": [],
        "next_before_id": None,
        "next_after_id": None,
    }


def test_history_holds_the_latest_20_unless_asked(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    ids = [post_message(client, user, conversation["id"], f"m{n}")["id"] for n in range(25)]
    page = history(client, user, conversation["id"])
    assert [m["id"] for m in page["items"]] == ids[5:]
    assert (page["next_before_id"], page["next_after_id"]) == (ids[5], None)


def test_history_walks_back_to_the_first_message_without_repeats_or_gaps(
    client: TestClient, user: Person, admin: Person, conversation: dict[str, Any]
) -> None:
    authors = [user, admin]  # both sides speak: the cursors follow ids, whoever wrote them
    ids = [post_message(client, authors[n % 2], conversation["id"], f"m{n}")["id"] for n in range(8)]
    walked: list[int] = []
    page = history(client, user, conversation["id"], limit=3)
    pages = 1
    while True:
        walked[:0] = [m["id"] for m in page["items"]]  # each page is older than the one before
        if page["next_before_id"] is None:
            break
        assert page["next_before_id"] == page["items"][0]["id"]
        page = history(client, user, conversation["id"], limit=3, before_id=page["next_before_id"])
        pages += 1
    assert walked == ids
    assert pages == 3


def test_history_walks_forward_from_the_start_with_after_id(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    ids = [post_message(client, user, conversation["id"], f"m{n}")["id"] for n in range(7)]
    walked: list[int] = []
    page = history(client, user, conversation["id"], limit=3, after_id=0)
    while True:
        walked += [m["id"] for m in page["items"]]
        if page["next_after_id"] is None:
            break
        page = history(client, user, conversation["id"], limit=3, after_id=page["next_after_id"])
    assert walked == ids


def test_a_page_back_in_history_points_both_ways(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    ids = [post_message(client, user, conversation["id"], f"m{n}")["id"] for n in range(6)]
    page = history(client, user, conversation["id"], limit=2, before_id=ids[4])
    assert [m["id"] for m in page["items"]] == ids[2:4]
    assert (page["next_before_id"], page["next_after_id"]) == (ids[2], ids[3])
    newer = history(client, user, conversation["id"], limit=2, after_id=page["next_after_id"])
    assert [m["id"] for m in newer["items"]] == ids[4:6]
    assert (newer["next_before_id"], newer["next_after_id"]) == (ids[4], None)


def test_catching_up_when_nothing_is_new_keeps_a_way_back(
    client: TestClient, user: Person, conversation: dict[str, Any]
) -> None:
    ids = [post_message(client, user, conversation["id"], f"m{n}")["id"] for n in range(3)]
    page = history(client, user, conversation["id"], after_id=ids[-1])
    assert page["items"] == [] and page["next_after_id"] is None
    older = history(client, user, conversation["id"], before_id=page["next_before_id"])
    assert [m["id"] for m in older["items"]] == ids


def test_history_cursors_stay_in_the_conversation(
    client: TestClient, user: Person, other_user: Person, conversation: dict[str, Any]
) -> None:
    theirs = open_conversation(client, other_user)
    before = post_message(client, other_user, theirs["id"], "theirs, older")
    mine = post_message(client, user, conversation["id"], "mine")
    post_message(client, other_user, theirs["id"], "theirs, newer")
    page = history(client, user, conversation["id"], limit=1)
    assert page == {"items": [mine], "next_before_id": None, "next_after_id": None}
    assert history(client, user, conversation["id"], before_id=mine["id"])["items"] == []
    assert history(client, user, conversation["id"], after_id=before["id"])["items"] == [mine]
