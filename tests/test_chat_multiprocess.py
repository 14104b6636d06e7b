"""Two API processes (uvicorn) sharing MariaDB and Redis: a message sent to one reaches a
socket on the other, and a ban through one closes the user's socket on the other.

The processes use a MariaDB database of their own (dropped and made anew here), whichever
database the rest of the suite runs on."""

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed

from models import User
from services import security
from tests.chat_support import ApiProcess, next_event, running_api
from tests.conftest import TEST_REDIS_URL, process_database, redis_or_skip

pytestmark = pytest.mark.db  # two API processes sharing the database

REDIS_URL = TEST_REDIS_URL


@pytest.fixture(scope="module")
def database() -> Iterator[Engine]:
    yield from process_database("_mp")


@pytest.fixture(scope="module")
def processes(database, tmp_path_factory) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    redis_or_skip(REDIS_URL).close()
    environment = {
        **os.environ,
        "DATABASE_URL": database.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "BROKER_CHANNEL": f"madang:test:{uuid.uuid4().hex}",
    }
    logs = tmp_path_factory.mktemp("api-logs")
    with (
        running_api(environment, logs / "api-a.log") as api_a,
        running_api(environment, logs / "api-b.log") as api_b,
    ):
        yield api_a, api_b


@dataclass
class Account:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_account(engine: Engine, *, is_superuser: bool = False) -> Account:
    name = f"mp_{uuid.uuid4().hex[:12]}"
    with Session(engine) as session:
        user = User(
            name=name,
            email=f"{name}@example.com",
            password_hash=security.unusable_password_hash(),
            is_superuser=is_superuser,
        )
        session.add(user)
        session.commit()
        return Account(user.id, security.create_access_token(user.id, user.token_version))


def test_a_message_sent_to_one_process_reaches_a_socket_on_the_other(database, processes):
    process_a, process_b = processes
    user, admin = make_account(database), make_account(database, is_superuser=True)
    conversation = httpx2.post(
        f"{process_a.http}/api/v1/chat/sessions", json={"name": "two processes"}, headers=user.headers
    ).json()
    with process_a.socket(user.token) as sender, process_b.socket(admin.token) as listener:
        sent_at = time.monotonic()
        sender.send(
            json.dumps(
                {"type": "chat.send", "session_id": conversation["id"], "content": "hi", "client_id": "mp-1"}
            )
        )
        event = next_event(listener, timeout=1.0)
        elapsed = time.monotonic() - sent_at
    assert event["type"] == "chat.message"
    assert event["message"]["content"] == "hi"
    assert elapsed < 1.0


def test_a_ban_through_one_process_closes_the_users_socket_on_the_other(database, processes):
    process_a, process_b = processes
    user, admin = make_account(database), make_account(database, is_superuser=True)
    with process_a.socket(user.token) as socket:
        response = httpx2.patch(
            f"{process_b.http}/api/v1/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers
        )
        assert response.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            next_event(socket, timeout=1.0)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
