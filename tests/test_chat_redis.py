"""The Redis pub/sub broker inside one process: delivery, bans, and coming back after losing Redis.
Two processes sharing Redis are in test_chat_multiprocess.py."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from services import broker
from tests.chat_support import API, live_socket, open_conversation, post_message
from tests.conftest import TEST_REDIS_URL, app_with, free_port, redis_or_skip

REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def redis_admin() -> Iterator[redis.Redis]:
    connection = redis_or_skip()
    yield connection
    connection.close()


@pytest.fixture
def client(redis_admin, app_settings) -> Iterator[TestClient]:
    """An app with the Redis broker, on a channel of this test's own."""
    app_settings.update(REDIS_URL=REDIS_URL, BROKER_CHANNEL=f"madang:test:{uuid.uuid4().hex}")
    with TestClient(app_with([], app_settings)) as test_client:
        assert isinstance(test_client.app.state.runtime.broker, broker.RedisBroker)
        yield test_client


def test_a_message_reaches_another_socket_through_redis(client, user, admin):
    conversation = open_conversation(client, user)
    with live_socket(client, user) as sender, live_socket(client, admin) as listener:
        sender.send(
            {"type": "chat.send", "session_id": conversation["id"], "content": "via redis", "client_id": "r1"}
        )
        assert listener.wait_for("chat.message")["message"]["content"] == "via redis"


def test_a_ban_travels_through_redis(client, user, admin):
    with live_socket(client, user) as socket:
        client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
        assert socket.expect_close().code == 4403


def test_the_broker_comes_back_after_losing_redis_and_asks_sockets_to_resync(
    client, redis_admin, user, admin
):
    conversation = open_conversation(client, user)
    with live_socket(client, admin) as listener:
        killed = kill_broker_subscriptions(redis_admin)
        assert killed >= 1
        listener.wait_for("resync", timeout=5)
        post_message(client, user, conversation["id"], "after the outage")
        assert listener.wait_for("chat.message")["message"]["content"] == "after the outage"


def kill_broker_subscriptions(connection: redis.Redis) -> int:
    """Drops this process's broker subscription, as a Redis restart or a network cut would
    (only ours: other processes on the same Redis, such as a soak, keep theirs)."""
    killed = 0
    for entry in connection.client_list():
        if entry.get("name") == broker.RedisBroker.CLIENT_NAME and int(entry.get("sub", 0)) > 0:
            killed += int(connection.execute_command("CLIENT", "KILL", "ID", entry["id"]))
    return killed


def test_publishing_while_redis_is_down_drops_the_event_without_failing():
    async def publish_to_nowhere() -> None:
        nowhere = broker.RedisBroker(f"redis://127.0.0.1:{free_port()}/0", "madang:test:nowhere")
        await nowhere.publish(broker.close_envelope(1, code=4403, reason="banned"))
        await nowhere.stop()

    asyncio.run(publish_to_nowhere())
