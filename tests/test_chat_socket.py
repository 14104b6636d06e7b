"""The live socket on one process (in-process broker), with real WebSockets through TestClient."""

import asyncio
from datetime import timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from config import settings
from database import SessionLocal, utcnow
from models import Chat
from services import chat
from services.chat_socket import Connection
from services.security import JWT_ALGORITHM
from tests.chat_support import API, live_socket, open_conversation, post_message


@pytest.fixture
def conversation(client, user) -> dict[str, Any]:
    return open_conversation(client, user)


def send(conversation: dict[str, Any], content: str = "hello", client_id: str = "c-1") -> dict[str, Any]:
    return {"type": "chat.send", "session_id": conversation["id"], "content": content, "client_id": client_id}


def stored_messages() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(Chat)) or 0


# --- signing in ----------------------------------------------------------------------------


def test_a_socket_without_a_token_is_closed_with_4401(client):
    with live_socket(client, token="") as socket:
        assert socket.expect_close().code == 4401


def test_a_socket_with_a_bad_token_is_closed_with_4401(client):
    with live_socket(client, token="not-a-token") as socket:
        assert socket.expect_close().code == 4401


def test_a_socket_with_an_expired_token_is_closed_with_4401(client, user):
    past = utcnow() - timedelta(hours=1)
    claims = {
        "sub": str(user.id),
        "ver": 0,
        "type": "access",
        "iat": past,
        "exp": past + timedelta(minutes=5),
    }
    expired = jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM)
    with live_socket(client, token=expired) as socket:
        closed = socket.expect_close()
    assert (closed.code, closed.reason) == (4401, "token_expired")


def test_a_banned_user_is_refused_with_4403(client, make_user):
    banned = make_user("banned_one", is_banned=True)
    with live_socket(client, banned) as socket:
        assert socket.expect_close().code == 4403


def test_a_ban_closes_the_users_open_socket_with_4403(client, user, admin):
    with live_socket(client, user) as socket:
        socket.assert_quiet()  # connected and registered
        response = client.patch(
            f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers
        )
        assert response.status_code == 200
        assert socket.expect_close().code == 4403


def test_a_ban_closes_every_socket_of_the_user(client, user, admin):
    with live_socket(client, user) as first, live_socket(client, user) as second:
        first.assert_quiet()
        second.assert_quiet()
        client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
        assert (first.expect_close().code, second.expect_close().code) == (4403, 4403)


def test_a_ban_leaves_other_users_sockets_open(client, user, other_user, admin):
    with live_socket(client, other_user) as socket:
        client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
        socket.assert_quiet()


# --- sending -------------------------------------------------------------------------------


def test_the_sender_gets_an_ack_echoing_the_client_id(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send(send(conversation, "안녕하세요", client_id="abc-1"))
        ack = socket.wait_for("chat.ack")
    assert ack["client_id"] == "abc-1"
    assert ack["message"]["content"] == "안녕하세요"
    assert ack["message"]["user"] == {"id": user.id, "name": user.name}


def test_every_administrator_gets_the_message(client, user, admin, make_user, conversation):
    second_admin = make_user("second_admin", is_superuser=True)
    with (
        live_socket(client, user) as sender,
        live_socket(client, admin) as first,
        live_socket(client, second_admin) as second,
    ):
        sender.send(send(conversation, "help"))
        ack = sender.wait_for("chat.ack")
        for socket in (first, second):
            event = socket.wait_for("chat.message")
            assert event["message"] == ack["message"]


def test_the_opener_gets_an_administrators_answer_on_every_socket(client, user, admin, conversation):
    with (
        live_socket(client, admin) as sender,
        live_socket(client, user) as phone,
        live_socket(client, user) as laptop,
    ):
        sender.send(send(conversation, "how can I help?"))
        assert phone.wait_for("chat.message")["message"]["content"] == "how can I help?"
        assert laptop.wait_for("chat.message")["message"]["content"] == "how can I help?"


def test_the_senders_own_socket_also_gets_the_message(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send(send(conversation, "echo"))
        assert socket.wait_for("chat.message")["message"]["content"] == "echo"


def test_other_users_hear_nothing(client, user, other_user, conversation):
    with live_socket(client, user) as sender, live_socket(client, other_user) as outsider:
        sender.send(send(conversation))
        sender.wait_for("chat.ack")
        outsider.assert_quiet()


def test_a_delivered_message_is_already_stored(client, user, admin, conversation):
    with live_socket(client, user) as sender, live_socket(client, admin) as listener:
        sender.send(send(conversation, "stored first"))
        event = listener.wait_for("chat.message")
        response = client.get(f"{API}/chat/sessions/{conversation['id']}/messages", headers=admin.headers)
    assert [m["id"] for m in response.json()] == [event["message"]["id"]]


def test_a_resend_gets_the_same_ack_and_stores_nothing_twice(client, user, admin, conversation):
    with live_socket(client, user) as sender, live_socket(client, admin) as listener:
        sender.send(send(conversation, "once", client_id="same"))
        first = sender.wait_for("chat.ack")
        listener.wait_for("chat.message")
        sender.send(send(conversation, "once", client_id="same"))
        second = sender.wait_for("chat.ack")
        assert second == first
        listener.assert_quiet()  # the resend was not delivered again
    assert stored_messages() == 1


def test_a_rest_post_is_delivered_live(client, user, admin, conversation):
    with live_socket(client, admin) as listener:
        message = post_message(client, user, conversation["id"], "from the REST API")
        assert listener.wait_for("chat.message")["message"] == message


def test_a_new_conversation_is_announced_to_administrators(client, user, admin):
    with live_socket(client, admin) as listener:
        conversation = open_conversation(client, user, "new here")
        assert listener.wait_for("chat.session")["session"]["id"] == conversation["id"]


def test_closing_a_conversation_is_announced_to_its_opener(client, user, admin, conversation):
    with live_socket(client, user) as listener:
        client.patch(
            f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers
        )
        assert listener.wait_for("chat.session")["session"]["is_closed"] is True


def edit(client, person, message_id: int, content: str = "fixed") -> None:
    response = client.patch(
        f"{API}/chat/messages/{message_id}", json={"content": content}, headers=person.headers
    )
    assert response.status_code == 200, response.text


def delete(client, person, message_id: int) -> None:
    assert client.delete(f"{API}/chat/messages/{message_id}", headers=person.headers).status_code == 204


def test_an_edit_is_delivered_to_every_member_online(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "typo")
    with live_socket(client, admin) as administrator, live_socket(client, user) as other_device:
        edit(client, user, message["id"], "fixed")
        for socket in (administrator, other_device):
            edited = socket.wait_for("chat.edited")["message"]
            assert (edited["id"], edited["content"]) == (message["id"], "fixed")
            assert edited["edit_date"] is not None


def test_the_authors_deletion_reaches_the_opener_as_a_tombstone(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    with live_socket(client, user) as socket:
        delete(client, user, message["id"])
        deleted = socket.wait_for("chat.deleted")
    assert (deleted["session_id"], deleted["message_id"]) == (conversation["id"], message["id"])
    assert deleted["message"] == {**message, "content": None, "is_deleted": True, "is_visible": False}


def test_administrators_hear_of_a_deletion_with_the_content(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    with live_socket(client, admin) as socket:
        delete(client, user, message["id"])
        deleted = socket.wait_for("chat.deleted")["message"]
    assert (deleted["content"], deleted["is_deleted"]) == ("oops", True)


def test_an_administrators_deletion_reaches_the_opener_as_a_tombstone(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "spam")
    with live_socket(client, user) as socket:
        delete(client, admin, message["id"])
        deleted = socket.wait_for("chat.deleted")["message"]
    assert (deleted["id"], deleted["content"], deleted["is_deleted"]) == (message["id"], None, True)


def test_the_live_tombstone_is_what_the_history_shows(client, user, admin, conversation):
    message = post_message(client, admin, conversation["id"], "wrong answer")
    with live_socket(client, user) as socket:
        delete(client, admin, message["id"])
        deleted = socket.wait_for("chat.deleted")["message"]
    history = client.get(f"{API}/chat/sessions/{conversation['id']}/messages", headers=user.headers).json()
    assert history == [deleted]


def test_each_member_hears_of_a_deletion_once(client, user, admin, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    with live_socket(client, user) as opener, live_socket(client, admin) as administrator:
        delete(client, user, message["id"])
        opener.wait_for("chat.deleted")
        administrator.wait_for("chat.deleted")
        opener.assert_quiet()
        administrator.assert_quiet()


def test_an_administrator_who_opened_a_conversation_hears_of_a_deletion_once_with_the_content(client, admin):
    conversation = open_conversation(client, admin, "internal note")
    message = post_message(client, admin, conversation["id"], "draft")
    with live_socket(client, admin) as socket:
        delete(client, admin, message["id"])
        assert socket.wait_for("chat.deleted")["message"]["content"] == "draft"
        socket.assert_quiet()


def test_deleting_a_deleted_message_again_sends_nothing(client, user, conversation):
    message = post_message(client, user, conversation["id"], "oops")
    delete(client, user, message["id"])
    with live_socket(client, user) as socket:
        delete(client, user, message["id"])
        socket.assert_quiet()


def test_other_users_hear_nothing_of_edits_and_deletions(client, user, other_user, conversation):
    message = post_message(client, user, conversation["id"], "typo")
    with live_socket(client, other_user) as outsider:
        edit(client, user, message["id"])
        delete(client, user, message["id"])
        outsider.assert_quiet()


# --- read markers and typing ---------------------------------------------------------------


def test_chat_read_moves_the_read_marker(client, user, admin, conversation):
    message = post_message(client, admin, conversation["id"], "answer")
    with live_socket(client, user) as socket:
        socket.send({"type": "chat.read", "session_id": conversation["id"], "last_read_id": message["id"]})
        event = socket.wait_for("chat.read")
    assert (event["user"]["id"], event["last_read_id"]) == (user.id, message["id"])
    listing = client.get(f"{API}/chat/sessions", headers=user.headers).json()
    assert listing["items"][0]["unread_count"] == 0


def test_typing_is_relayed_to_the_other_members(client, user, admin, conversation):
    with live_socket(client, user) as typist, live_socket(client, admin) as listener:
        typist.send({"type": "chat.typing", "session_id": conversation["id"]})
        event = listener.wait_for("chat.typing")
    assert event == {
        "type": "chat.typing",
        "session_id": conversation["id"],
        "user": {"id": user.id, "name": user.name},
    }


def test_typing_is_not_echoed_to_the_typist(client, user, conversation):
    with live_socket(client, user) as typist:
        typist.send({"type": "chat.typing", "session_id": conversation["id"]})
        typist.assert_quiet()


def test_typing_is_not_stored(client, user, admin, conversation):
    with live_socket(client, user) as typist, live_socket(client, admin) as listener:
        typist.send({"type": "chat.typing", "session_id": conversation["id"]})
        listener.wait_for("chat.typing")
    assert stored_messages() == 0


# --- bad input never breaks the socket -----------------------------------------------------


def assert_error_then_still_open(socket, code: str) -> dict[str, Any]:
    error = socket.next_event()
    assert (error["type"], error["code"]) == ("error", code), error
    assert error["detail"]
    socket.assert_quiet()  # still open and answering
    return error


def test_invalid_json_is_an_error_event(client, user):
    with live_socket(client, user) as socket:
        socket.send_text("{not json")
        assert_error_then_still_open(socket, "invalid_json")


def test_a_binary_frame_is_an_error_event(client, user):
    with live_socket(client, user) as socket:
        socket.session.send_bytes(b"\x00\x01")
        assert_error_then_still_open(socket, "invalid_json")


def test_a_json_value_that_is_not_an_object_is_an_error_event(client, user):
    with live_socket(client, user) as socket:
        socket.send_text("[1, 2]")
        assert_error_then_still_open(socket, "invalid_input")


def test_an_unknown_type_is_an_error_event(client, user):
    with live_socket(client, user) as socket:
        socket.send({"type": "chat.shout", "session_id": 1})
        assert_error_then_still_open(socket, "unknown_type")


def test_missing_fields_are_an_error_event(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send({"type": "chat.send", "session_id": conversation["id"]})
        error = assert_error_then_still_open(socket, "invalid_input")
    assert "content" in error["detail"]


def test_content_over_256_characters_is_an_error_event_naming_the_client_id(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send(send(conversation, "a" * 257, client_id="long-1"))
        error = assert_error_then_still_open(socket, "invalid_input")
    assert error["client_id"] == "long-1"
    assert stored_messages() == 0


def test_an_oversized_frame_is_an_error_event(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send(send(conversation, "a" * 10_000))
        assert_error_then_still_open(socket, "too_large")


def test_another_users_conversation_is_an_error_event(client, other_user, conversation):
    with live_socket(client, other_user) as socket:
        socket.send(send(conversation, "let me in"))
        assert_error_then_still_open(socket, "not_found")
    assert stored_messages() == 0


def test_a_closed_conversation_refuses_a_socket_message(client, user, admin, conversation):
    client.patch(f"{API}/chat/sessions/{conversation['id']}", json={"is_closed": True}, headers=admin.headers)
    with live_socket(client, user) as socket:
        socket.send(send(conversation))
        assert_error_then_still_open(socket, "conversation_closed")
    assert stored_messages() == 0


def test_a_reopened_conversation_takes_socket_messages_again(client, user, admin, conversation):
    url = f"{API}/chat/sessions/{conversation['id']}"
    client.patch(url, json={"is_closed": True}, headers=admin.headers)
    with live_socket(client, user) as socket:
        socket.send(send(conversation, "anyone?", client_id="before"))
        assert_error_then_still_open(socket, "conversation_closed")
        client.patch(url, json={"is_closed": False}, headers=admin.headers)
        socket.send(send(conversation, "anyone?", client_id="after"))
        assert socket.wait_for("chat.ack")["message"]["content"] == "anyone?"


def test_a_flood_of_frames_gets_rate_limited_errors(client, user):
    burst = settings.CHAT_MESSAGES_PER_SECOND * 2
    with live_socket(client, user) as socket:
        for _ in range(burst):
            socket.send({"type": "ping"})
        answers = [socket.next_event() for _ in range(burst)]
    limited = [a for a in answers if a.get("code") == "rate_limited"]
    assert len(limited) >= burst - settings.CHAT_MESSAGES_PER_SECOND - 2
    assert answers[0] == {"type": "pong"}


# --- heartbeat and slow sockets ------------------------------------------------------------


def test_the_server_pings_an_idle_socket(client, user, monkeypatch):
    monkeypatch.setattr(settings, "CHAT_PING_SECONDS", 0.05)
    with live_socket(client, user) as socket:
        assert socket.next_event(skip=()) == {"type": "ping"}


def test_a_socket_that_never_answers_is_closed_with_4408(client, user, monkeypatch):
    monkeypatch.setattr(settings, "CHAT_PING_SECONDS", 0.05)
    with live_socket(client, user) as socket:
        assert socket.expect_close().code == 4408


def test_a_socket_that_cannot_keep_up_is_closed(user, monkeypatch):
    monkeypatch.setattr(settings, "CHAT_SEND_QUEUE", 2)

    async def overflow() -> int | None:
        connection = Connection(websocket=None, user=_StubUser(user.id))  # type: ignore[arg-type]
        for _ in range(3):
            connection.deliver("{}")
        return connection.close_code

    assert asyncio.run(overflow()) == chat.CLOSE_TOO_SLOW


class _StubUser:
    def __init__(self, user_id: int) -> None:
        self.id = user_id
        self.name = "stub"
        self.is_superuser = False
