"""Support conversations over REST: who sees what, history, read markers, unread counts."""

from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from database import SessionLocal, engine
from models import Chat, ChatSession
from tests.chat_support import API, open_conversation, post_message

pytestmark = pytest.mark.db  # history cursors, unread counts, client ids unique, statements counted


@pytest.fixture
def conversation(client, user) -> dict[str, Any]:
    return open_conversation(client, user)


def history(client, person, session_id: int, **params: int) -> list[dict[str, Any]]:
    response = client.get(f"{API}/chat/sessions/{session_id}/messages", params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def listing(client, person, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{API}/chat/sessions", params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def stored_messages() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(Chat)) or 0


# --- opening and listing -------------------------------------------------------------------


def test_user_opens_a_conversation(client, user):
    response = client.post(f"{API}/chat/sessions", json={"name": "결제 문의"}, headers=user.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "결제 문의"
    assert body["user"] == {"id": user.id, "name": user.name}
    assert body["is_closed"] is False


def test_opening_a_conversation_needs_a_name(client, user):
    response = client.post(f"{API}/chat/sessions", json={"name": "   "}, headers=user.headers)
    assert response.status_code == 422


def test_opening_a_conversation_needs_a_signed_in_user(client):
    response = client.post(f"{API}/chat/sessions", json={"name": "help"})
    assert response.status_code == 401


def test_user_lists_only_their_own_conversations(client, user, other_user):
    mine = open_conversation(client, user)
    open_conversation(client, other_user)
    assert [c["id"] for c in listing(client, user)] == [mine["id"]]


def test_administrator_lists_every_conversation(client, user, other_user, admin):
    first = open_conversation(client, user)
    second = open_conversation(client, other_user)
    assert {c["id"] for c in listing(client, admin)} == {first["id"], second["id"]}


def test_listing_puts_the_most_recently_active_conversation_first(client, user):
    older = open_conversation(client, user, "first")
    newer = open_conversation(client, user, "second")
    post_message(client, user, older["id"], "bump")
    assert [c["id"] for c in listing(client, user)] == [older["id"], newer["id"]]


def test_listing_filters_by_closed(client, user, admin):
    open_one = open_conversation(client, user, "open")
    closed_one = open_conversation(client, user, "closed")
    client.patch(f"{API}/chat/sessions/{closed_one['id']}", json={"is_closed": True}, headers=admin.headers)
    assert [c["id"] for c in listing(client, admin, is_closed=False)] == [open_one["id"]]


def test_listing_shows_the_last_message(client, user, admin, conversation):
    post_message(client, user, conversation["id"], "first")
    post_message(client, admin, conversation["id"], "last")
    (item,) = listing(client, user)
    assert item["last_message"]["content"] == "last"
    assert item["last_message"]["user"] == {"id": admin.id, "name": admin.name}


def test_listing_shows_no_last_message_for_an_empty_conversation(client, user, conversation):
    (item,) = listing(client, user)
    assert item["last_message"] is None
    assert item["unread_count"] == 0


def test_unread_count_counts_messages_from_others(client, user, admin, conversation):
    post_message(client, admin, conversation["id"], "one")
    post_message(client, admin, conversation["id"], "two")
    (item,) = listing(client, user)
    assert item["unread_count"] == 2


def test_my_own_messages_are_not_unread(client, user, conversation):
    post_message(client, user, conversation["id"], "mine")
    (item,) = listing(client, user)
    assert item["unread_count"] == 0


def test_administrator_who_never_read_a_conversation_has_all_of_it_unread(client, user, admin, conversation):
    post_message(client, user, conversation["id"], "one")
    post_message(client, user, conversation["id"], "two")
    (item,) = listing(client, admin)
    assert (item["unread_count"], item["last_read_id"]) == (2, None)


def test_listing_costs_the_same_number_of_queries_for_many_conversations(client, user, admin):
    def queries_for_listing() -> int:
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            listing(client, admin)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    first = open_conversation(client, user)
    post_message(client, user, first["id"])
    few = queries_for_listing()
    for number in range(10):
        conversation = open_conversation(client, user, f"more {number}")
        post_message(client, user, conversation["id"])
    assert queries_for_listing() == few


# --- who may read a conversation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/messages", None),
        ("post", "/messages", {"content": "hi"}),
        ("post", "/read", {"last_read_id": 1}),
        ("patch", "", {"name": "mine now"}),
    ],
)
def test_another_users_conversation_is_not_found(client, other_user, conversation, method, path, body):
    response = client.request(
        method, f"{API}/chat/sessions/{conversation['id']}{path}", json=body, headers=other_user.headers
    )
    assert response.status_code == 404


def test_administrator_reads_any_conversation(client, user, admin, conversation):
    post_message(client, user, conversation["id"], "help")
    assert [m["content"] for m in history(client, admin, conversation["id"])] == ["help"]


def test_a_hidden_conversation_is_not_found_by_its_opener(client, user, conversation):
    with SessionLocal() as session:
        session.execute(update(ChatSession).values(is_visible=False))
        session.commit()
    response = client.get(f"{API}/chat/sessions/{conversation['id']}/messages", headers=user.headers)
    assert response.status_code == 404


def test_a_conversation_id_too_large_for_the_database_is_invalid(client, user):
    response = client.get(f"{API}/chat/sessions/{2**40}/messages", headers=user.headers)
    assert response.status_code == 422


# --- messages and history ------------------------------------------------------------------


def test_posted_message_is_returned_with_its_author(client, user, conversation):
    message = post_message(client, user, conversation["id"], "안녕하세요")
    assert message["content"] == "안녕하세요"
    assert message["session_id"] == conversation["id"]
    assert message["user"] == {"id": user.id, "name": user.name}


def test_a_message_of_256_characters_is_accepted(client, user, conversation):
    post_message(client, user, conversation["id"], "가" * 256)


def test_a_message_over_256_characters_is_refused(client, user, conversation):
    response = client.post(
        f"{API}/chat/sessions/{conversation['id']}/messages",
        json={"content": "a" * 257},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert stored_messages() == 0


def test_a_blank_message_is_refused(client, user, conversation):
    response = client.post(
        f"{API}/chat/sessions/{conversation['id']}/messages", json={"content": "  "}, headers=user.headers
    )
    assert response.status_code == 422


def test_history_is_oldest_first(client, user, conversation):
    for text in ("one", "two", "three"):
        post_message(client, user, conversation["id"], text)
    assert [m["content"] for m in history(client, user, conversation["id"])] == ["one", "two", "three"]


def test_history_without_a_cursor_gives_the_latest_messages(client, user, conversation):
    for number in range(5):
        post_message(client, user, conversation["id"], str(number))
    assert [m["content"] for m in history(client, user, conversation["id"], limit=2)] == ["3", "4"]


def test_history_pages_back_with_before_id(client, user, conversation):
    ids = [post_message(client, user, conversation["id"], str(n))["id"] for n in range(5)]
    page = history(client, user, conversation["id"], before_id=ids[3], limit=2)
    assert [m["id"] for m in page] == ids[1:3]


def test_history_catches_up_with_after_id(client, user, conversation):
    ids = [post_message(client, user, conversation["id"], str(n))["id"] for n in range(5)]
    page = history(client, user, conversation["id"], after_id=ids[1], limit=2)
    assert [m["id"] for m in page] == ids[2:4]


def test_resending_a_client_id_returns_the_same_message_and_stores_it_once(client, user, conversation):
    first = post_message(client, user, conversation["id"], "once", client_id="c-1")
    again = post_message(client, user, conversation["id"], "once", client_id="c-1")
    assert again == first
    assert stored_messages() == 1


def test_a_resend_after_the_conversation_closed_returns_the_stored_message(client, user, admin, conversation):
    first = post_message(client, user, conversation["id"], "just in time", client_id="c-1")
    client.patch(f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers)
    assert post_message(client, user, conversation["id"], "just in time", client_id="c-1") == first


def test_a_client_id_used_in_another_conversation_is_a_conflict(client, user, conversation):
    other = open_conversation(client, user, "another")
    post_message(client, user, conversation["id"], "once", client_id="c-1")
    response = client.post(
        f"{API}/chat/sessions/{other['id']}/messages",
        json={"content": "twice", "client_id": "c-1"},
        headers=user.headers,
    )
    assert response.status_code == 409


def test_two_users_may_use_the_same_client_id(client, user, admin, conversation):
    post_message(client, user, conversation["id"], "from user", client_id="same")
    post_message(client, admin, conversation["id"], "from admin", client_id="same")
    assert stored_messages() == 2


# --- read markers --------------------------------------------------------------------------


def read(client, person, session_id: int, last_read_id: int) -> None:
    response = client.post(
        f"{API}/chat/sessions/{session_id}/read", json={"last_read_id": last_read_id}, headers=person.headers
    )
    assert response.status_code == 204, response.text


def test_reading_clears_the_unread_count(client, user, admin, conversation):
    post_message(client, admin, conversation["id"], "one")
    last = post_message(client, admin, conversation["id"], "two")
    read(client, user, conversation["id"], last["id"])
    (item,) = listing(client, user)
    assert (item["unread_count"], item["last_read_id"]) == (0, last["id"])


def test_reading_part_of_a_conversation_leaves_the_rest_unread(client, user, admin, conversation):
    first = post_message(client, admin, conversation["id"], "one")
    post_message(client, admin, conversation["id"], "two")
    read(client, user, conversation["id"], first["id"])
    (item,) = listing(client, user)
    assert item["unread_count"] == 1


def test_the_read_marker_never_moves_back(client, user, admin, conversation):
    first = post_message(client, admin, conversation["id"], "one")
    last = post_message(client, admin, conversation["id"], "two")
    read(client, user, conversation["id"], last["id"])
    read(client, user, conversation["id"], first["id"])
    (item,) = listing(client, user)
    assert item["last_read_id"] == last["id"]


def test_the_read_marker_stops_at_the_last_message(client, user, admin, conversation):
    last = post_message(client, admin, conversation["id"], "one")
    read(client, user, conversation["id"], 2**31 - 1)
    (item,) = listing(client, user)
    assert item["last_read_id"] == last["id"]


def test_an_administrator_gets_a_read_marker_of_their_own(client, user, admin, make_user, conversation):
    second_admin = make_user("second_admin", is_superuser=True)
    last = post_message(client, user, conversation["id"], "help")
    read(client, admin, conversation["id"], last["id"])
    assert listing(client, admin)[0]["unread_count"] == 0
    assert listing(client, second_admin)[0]["unread_count"] == 1


# --- changing conversations and messages ---------------------------------------------------


def test_administrator_closes_a_conversation(client, admin, conversation):
    response = client.patch(
        f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_closed"] is True


def test_a_closed_conversation_refuses_new_messages(client, user, admin, conversation):
    client.patch(f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers)
    response = client.post(
        f"{API}/chat/sessions/{conversation['id']}/messages", json={"content": "hello?"}, headers=user.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conversation_closed"


def test_a_reopened_conversation_takes_messages_again(client, user, admin, conversation):
    url = f"{API}/chat/sessions/{conversation['id']}"
    client.patch(url, json={"is_closed": True}, headers=admin.headers)
    client.patch(url, json={"is_closed": False}, headers=admin.headers)
    post_message(client, user, conversation["id"], "back again")


def test_a_user_cannot_close_their_conversation(client, user, conversation):
    response = client.patch(
        f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=user.headers
    )
    assert response.status_code == 403


def test_a_user_cannot_reopen_their_closed_conversation(client, user, admin, conversation):
    url = f"{API}/chat/sessions/{conversation['id']}"
    client.patch(url, json={"is_closed": True}, headers=admin.headers)
    response = client.patch(url, json={"is_closed": False}, headers=user.headers)
    assert response.status_code == 403
    assert listing(client, user)[0]["is_closed"] is True


def test_administrator_reopens_a_conversation(client, admin, conversation):
    url = f"{API}/chat/sessions/{conversation['id']}"
    client.patch(url, json={"is_closed": True}, headers=admin.headers)
    response = client.patch(url, json={"is_closed": False}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["is_closed"] is False


def test_the_opener_renames_a_conversation(client, user, conversation):
    response = client.patch(
        f"{API}/chat/sessions/{conversation['id']}", json={"name": "solved"}, headers=user.headers
    )
    assert response.status_code == 200
    assert response.json()["name"] == "solved"


def test_an_administrator_cannot_rename_a_users_conversation(client, admin, conversation):
    response = client.patch(
        f"{API}/chat/sessions/{conversation['id']}", json={"name": "renamed"}, headers=admin.headers
    )
    assert response.status_code == 403


def edit(client, person, message_id: int, content: str = "fixed"):
    return client.patch(
        f"{API}/chat/messages/{message_id}", json={"content": content}, headers=person.headers
    )


def delete(client, person, message_id: int):
    return client.delete(f"{API}/chat/messages/{message_id}", headers=person.headers)


def test_the_author_edits_a_message(client, user, conversation):
    message = post_message(client, user, conversation["id"], "typo")
    response = edit(client, user, message["id"], "fixed")
    assert response.status_code == 200
    assert response.json()["content"] == "fixed"
    assert response.json()["edit_date"] is not None


def test_history_shows_an_edited_message_as_edited(client, user, conversation):
    message = post_message(client, user, conversation["id"], "typo")
    edit(client, user, message["id"], "fixed")
    (seen,) = history(client, user, conversation["id"])
    assert (seen["content"], seen["edit_date"] is not None) == ("fixed", True)


def test_an_unedited_message_has_no_edit_date(client, user, conversation):
    post_message(client, user, conversation["id"], "as sent")
    (seen,) = history(client, user, conversation["id"])
    assert seen["edit_date"] is None


def test_nobody_else_edits_a_message(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "mine")
    response = edit(client, admin, message["id"], "x")
    assert response.status_code == 403
    assert response.json()["code"] == "not_author"


def test_the_opener_cannot_edit_an_administrators_answer(client, user, admin, conversation):
    answer = post_message(client, admin, conversation["id"], "answer")
    assert edit(client, user, answer["id"], "changed").status_code == 403


def test_the_opener_cannot_delete_an_administrators_answer(client, user, admin, conversation):
    answer = post_message(client, admin, conversation["id"], "answer")
    response = delete(client, user, answer["id"])
    assert response.status_code == 403
    assert history(client, user, conversation["id"])[0]["content"] == "answer"


def test_a_message_in_another_users_conversation_is_not_found(client, user, other_user, conversation):
    message = post_message(client, user, conversation["id"], "mine")
    response = delete(client, other_user, message["id"])
    assert response.status_code == 404


def test_a_message_in_another_users_conversation_cannot_be_edited(client, user, other_user, conversation):
    message = post_message(client, user, conversation["id"], "mine")
    assert edit(client, other_user, message["id"], "theirs").status_code == 404
    assert history(client, user, conversation["id"])[0]["content"] == "mine"


def test_an_unknown_message_is_not_found(client, user):
    assert edit(client, user, 999_999).status_code == 404
    assert delete(client, user, 999_999).status_code == 404


def test_the_author_deletes_a_message(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    assert delete(client, user, message["id"]).status_code == 204


def test_a_deleted_message_stays_in_the_users_history_as_a_tombstone(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    delete(client, user, message["id"])
    (seen,) = history(client, user, conversation["id"])
    assert seen == {
        **message,
        "content": None,
        "is_deleted": True,
        "is_visible": False,
    }


def test_a_tombstone_keeps_its_place_between_other_messages(client, user, admin, conversation):
    first = post_message(client, user, conversation["id"], "one")
    gone = post_message(client, user, conversation["id"], "two")
    last = post_message(client, admin, conversation["id"], "three")
    delete(client, user, gone["id"])
    seen = history(client, user, conversation["id"])
    assert [(m["id"], m["content"]) for m in seen] == [
        (first["id"], "one"),
        (gone["id"], None),
        (last["id"], "three"),
    ]


def test_an_administrator_deletes_a_users_message(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "spam")
    assert delete(client, admin, message["id"]).status_code == 204
    (seen,) = history(client, user, conversation["id"])
    assert (seen["content"], seen["is_deleted"]) == (None, True)


def test_administrators_still_read_a_deleted_messages_content(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    delete(client, user, message["id"])
    (seen,) = history(client, admin, conversation["id"])
    assert (seen["content"], seen["is_deleted"], seen["is_visible"]) == ("oops", True, False)


def test_deleting_a_deleted_message_again_changes_nothing(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    delete(client, user, message["id"])
    assert delete(client, user, message["id"]).status_code == 204
    assert history(client, user, conversation["id"])[0]["is_deleted"] is True


def test_a_deleted_message_cannot_be_edited(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    delete(client, user, message["id"])
    response = edit(client, user, message["id"], "back from the dead")
    assert response.status_code == 409
    assert response.json()["code"] == "message_deleted"


def test_a_resend_of_a_deleted_message_returns_its_tombstone(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops", client_id="c-1")
    delete(client, user, message["id"])
    again = post_message(client, user, conversation["id"], "oops", client_id="c-1")
    assert (again["id"], again["content"], again["is_deleted"]) == (message["id"], None, True)


def test_a_deleted_message_is_neither_last_nor_unread(client, user, admin, conversation):
    kept = post_message(client, admin, conversation["id"], "kept")
    gone = post_message(client, admin, conversation["id"], "gone")
    delete(client, admin, gone["id"])
    (item,) = listing(client, user)
    assert (item["last_message"]["id"], item["unread_count"]) == (kept["id"], 1)


def test_a_message_in_a_closed_conversation_cannot_be_edited(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "typo")
    client.patch(f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers)
    response = edit(client, user, message["id"], "fixed")
    assert response.status_code == 409
    assert response.json()["code"] == "conversation_closed"
