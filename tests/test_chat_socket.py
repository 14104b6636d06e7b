"""The live socket on one process (in-process broker), with real WebSockets through TestClient;
one test drives a uvicorn process instead (bytes that are not UTF-8 in a text frame)."""

import asyncio
import json
import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed

from config import settings
from database import SessionLocal, utcnow
from models import Chat, User
from routers.chat_socket import MAX_FRAME_CHARS, Connection
from services import chat
from services.security import JWT_ALGORITHM
from tests.chat_support import (
    API,
    live_socket,
    open_conversation,
    post_message,
    running_api,
    sleep_until,
    token_expiring_in,
    token_of,
)


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


# --- a socket lives as long as its token, or the fresh one it sent in `auth` ---------------


def stored_contents() -> list[str]:
    with SessionLocal() as session:
        return list(session.scalars(select(Chat.content).order_by(Chat.id)))


def unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_ready_names_when_the_sockets_token_expires(client, user):
    token, expires = token_expiring_in(user, 60)
    with client.websocket_connect(f"{API}/ws?token={token}") as session:
        ready = session.receive_json()
    assert ready["type"] == "ready"
    assert unix_time(ready["expires_at"]) == expires


def test_a_socket_is_closed_with_4401_when_its_token_expires(client, user):
    token, _ = token_expiring_in(user, 2)
    with live_socket(client, token=token) as socket:
        socket.assert_quiet()  # open and answering while the token is valid
        closed = socket.expect_close(timeout=4)
    assert (closed.code, closed.reason) == (4401, "token_expired")


def test_a_message_sent_after_the_token_expired_is_not_stored(client, user, conversation):
    token, expires = token_expiring_in(user, 2)
    with live_socket(client, token=token) as socket:
        socket.send(send(conversation, "in time", client_id="in-time"))
        socket.wait_for("chat.ack")
        sleep_until(expires)
        socket.send(send(conversation, "too late", client_id="too-late"))
        closed = socket.expect_close()
    assert closed.code == 4401
    assert stored_contents() == ["in time"]


def test_a_frame_that_arrives_after_the_deadline_is_not_acted_on(user, conversation):
    """The timer that closes the socket at the deadline may not have run yet when a frame
    arrives: the frame itself is refused."""
    with SessionLocal() as session:
        member = session.get(User, user.id)
        session.expunge(member)

    async def late_frame() -> int | None:
        connection = Connection(websocket=None, user=member, expires_at=time.time() - 1)  # type: ignore[arg-type]
        await connection._handle(json.dumps(send(conversation, "too late")))
        return connection.close_code

    assert asyncio.run(late_frame()) == chat.CLOSE_UNAUTHORIZED
    assert stored_messages() == 0


def test_auth_with_a_fresh_token_keeps_the_socket_open_past_the_first_expiry(client, user, conversation):
    token, expires = token_expiring_in(user, 3)
    fresh, fresh_expires = token_expiring_in(user, 60)
    with live_socket(client, token=token) as socket:
        socket.send({"type": "auth", "token": fresh})
        ok = socket.next_event()
        sleep_until(expires)
        socket.send(send(conversation, "still signed in", client_id="after-expiry"))
        ack = socket.wait_for("chat.ack")
    assert ok["type"] == "auth.ok"
    assert unix_time(ok["expires_at"]) == fresh_expires
    assert ack["client_id"] == "after-expiry"
    assert stored_contents() == ["still signed in"]


def test_auth_with_another_users_token_closes_the_socket_with_4401(client, user, other_user):
    with live_socket(client, user) as socket:
        socket.send({"type": "auth", "token": token_of(other_user)})
        closed = socket.expect_close()
    assert (closed.code, closed.reason) == (4401, "wrong_user")


def test_auth_with_an_expired_token_is_refused_and_the_old_deadline_stands(client, user):
    token, _ = token_expiring_in(user, 3)
    expired, _ = token_expiring_in(user, -60)
    with live_socket(client, token=token) as socket:
        socket.send({"type": "auth", "token": expired})
        assert_error_then_still_open(socket, "token_expired")
        closed = socket.expect_close(timeout=5)
    assert (closed.code, closed.reason) == (4401, "token_expired")


@pytest.mark.parametrize(
    "bad_token, code",
    [
        (lambda person: "not-a-token", "invalid_token"),
        (lambda person: token_expiring_in(person, 60, token_version=7)[0], "token_revoked"),
    ],
    ids=["garbage", "a token version the user does not have"],
)
def test_auth_with_a_bad_token_is_an_error_event(client, user, bad_token, code):
    with live_socket(client, user) as socket:
        socket.send({"type": "auth", "token": bad_token(user)})
        assert_error_then_still_open(socket, code)


def test_auth_with_a_banned_users_token_closes_the_socket_with_4403(client, user, monkeypatch):
    """A ban closes the user's sockets at once; should one slip through (the ban is committed
    while the socket signs in), its next `auth` closes it."""
    with live_socket(client, user) as socket:
        with SessionLocal() as session:
            session.get(User, user.id).is_banned = True  # the row only: no live event
            session.commit()
        socket.send({"type": "auth", "token": token_of(user)})
        assert socket.expect_close().code == 4403


# --- sending -------------------------------------------------------------------------------


@pytest.mark.db
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


@pytest.mark.db
def test_a_delivered_message_is_already_stored(client, user, admin, conversation):
    with live_socket(client, user) as sender, live_socket(client, admin) as listener:
        sender.send(send(conversation, "stored first"))
        event = listener.wait_for("chat.message")
        response = client.get(f"{API}/chat/sessions/{conversation['id']}/messages", headers=admin.headers)
    assert [m["id"] for m in response.json()["items"]] == [event["message"]["id"]]


@pytest.mark.db
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


@pytest.mark.db
def test_the_live_tombstone_is_what_the_history_shows(client, user, admin, conversation):
    message = post_message(client, admin, conversation["id"], "wrong answer")
    with live_socket(client, user) as socket:
        delete(client, admin, message["id"])
        deleted = socket.wait_for("chat.deleted")["message"]
    history = client.get(f"{API}/chat/sessions/{conversation['id']}/messages", headers=user.headers).json()
    assert history["items"] == [deleted]


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


@pytest.mark.db
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


# Frames built to break a parser or an error message: each gets one error event, the socket
# stays open, and the log holds at most one line for it and no traceback.
HOSTILE_FRAMES = {
    "arrays nested 2000 deep": ("[" * 2000 + "]" * 2000, "invalid_json"),
    "a nested field in an event": (
        '{"type": "chat.send", "session_id": ' + "[" * 1900 + "]" * 1900 + "}",
        "invalid_json",
    ),
    "a number of 4000 digits": (
        '{"type": "chat.send", "session_id": ' + "1" * 4000 + ', "content": "x", "client_id": "c"}',
        "invalid_input",
    ),
    "an infinite number": (
        '{"type": "chat.send", "session_id": 1e999999, "content": "x", "client_id": "c"}',
        "invalid_input",
    ),
    "NaN": ('{"type": "chat.send", "session_id": NaN, "content": "x", "client_id": "c"}', "invalid_input"),
    "a lone surrogate in the content": (
        '{"type": "chat.send", "session_id": 1, "content": "\\ud800", "client_id": "c"}',
        "invalid_input",
    ),
    "a lone surrogate in the client_id": ('{"type": "chat.shout", "client_id": "\\ud800"}', "unknown_type"),
    "a lone surrogate as the type": ('{"type": "\\ud800"}', "unknown_type"),
    "a 4000-character type": ('{"type": "' + "x" * 4000 + '"}', "unknown_type"),
    "a nested type": ('{"type": ' + "[" * 400 + "]" * 400 + "}", "unknown_type"),
    "a string": ('"chat.send"', "invalid_input"),
    "null": ("null", "invalid_input"),
}


@pytest.mark.parametrize("frame, code", HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
def test_a_hostile_frame_is_one_error_event_and_at_most_one_log_line(client, user, caplog, frame, code):
    assert len(frame) <= MAX_FRAME_CHARS  # under the size cap: the parser itself must cope
    caplog.set_level(logging.INFO)
    with live_socket(client, user) as socket:
        caplog.clear()
        socket.send_text(frame)
        error = assert_error_then_still_open(socket, code)
        records = list(caplog.records)
    assert len(error["detail"]) <= 200  # the detail never echoes the frame back
    assert len(records) <= 1, [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info], "a bad frame is not a server error"


def test_a_socket_still_stores_messages_after_a_deeply_nested_frame(client, user, conversation):
    with live_socket(client, user) as socket:
        socket.send_text("[" * 2000 + "]" * 2000)
        assert socket.next_event()["code"] == "invalid_json"
        socket.send(send(conversation, "still here", client_id="after-nesting"))
        assert socket.wait_for("chat.ack")["client_id"] == "after-nesting"
    assert stored_messages() == 1


def test_a_binary_frame_of_invalid_utf8_is_an_error_event(client, user):
    with live_socket(client, user) as socket:
        socket.session.send_bytes(b"\xff\xfe{\x80}")
        assert_error_then_still_open(socket, "invalid_json")


def test_an_error_names_only_a_valid_client_id(client, user):
    """An error event echoes the client_id only when it is one (short, plain ASCII): a lone
    surrogate echoed back could not even be encoded, and the writer would die on it."""
    with live_socket(client, user) as socket:
        for client_id in ("\ud800", "x" * 65, "no spaces please", 42):
            socket.send_text(json.dumps({"type": "chat.shout", "client_id": client_id}))
            assert "client_id" not in assert_error_then_still_open(socket, "unknown_type")
        socket.send({"type": "chat.shout", "client_id": "ok-1"})
        assert assert_error_then_still_open(socket, "unknown_type")["client_id"] == "ok-1"


def test_invalid_utf8_in_a_text_frame_closes_the_socket_and_logs_one_line(user, tmp_path):
    """A text frame must be UTF-8 (RFC 6455 §8.1): uvicorn closes the connection with 1007
    before the app sees the frame. The log says so in one line, without a traceback, also when
    the client's close frame comes in the same packet (uvicorn then trips over the closing
    connection). Through a real uvicorn process: TestClient's sockets carry strings, not bytes."""
    invalid = masked_frame(0x1, b'{"type": "\xff"}')  # text
    close = masked_frame(0x8, (1000).to_bytes(2, "big"))
    with running_api({**os.environ, "REDIS_URL": ""}, tmp_path / "api.log") as api:
        for packet in (invalid, invalid + close):
            with api.socket(token_of(user)) as connection:
                connection.socket.sendall(packet)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        connection.recv(timeout=3)
            if packet == invalid:
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        wait_for_log_lines(api.log, "WEBSOCKET /api/v1/ws", count=2)  # both sockets' access lines
    lines = api.log.read_text().splitlines()
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 2 and all("Invalid UTF-8" in line for line in errors), errors
    assert all(line.startswith("20") for line in lines), "a record of more than one line (a traceback)"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final WebSocket frame as a client sends it (masked), however wrong its payload."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def wait_for_log_lines(log: Path, text: str, *, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log.read_text().splitlines() if text in line]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


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
        connection = Connection(  # type: ignore[arg-type]
            websocket=None, user=_StubUser(user.id), expires_at=time.time() + 60
        )
        for _ in range(3):
            connection.deliver("{}")
        return connection.close_code

    assert asyncio.run(overflow()) == chat.CLOSE_TOO_SLOW


class _StubUser:
    def __init__(self, user_id: int) -> None:
        self.id = user_id
        self.name = "stub"
        self.is_superuser = False
