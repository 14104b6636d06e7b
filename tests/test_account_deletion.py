"""DELETE /users/me: the account is anonymized, not erased (issue 8, item 1)."""

import pytest
from fastapi.testclient import TestClient

from database import SessionLocal
from models import User, board_access
from tests.chat_support import live_socket
from tests.conftest import PASSWORD, MakeUser, Person

pytestmark = pytest.mark.db  # anonymized rows, a freed name and email unique again, cleared access rows

API = "/api/v1"


def delete_account(client: TestClient, person: Person, password: str = PASSWORD) -> int:
    response = client.request(
        "DELETE", f"{API}/users/me", json={"password": password}, headers=person.headers
    )
    return response.status_code


def test_deleting_my_account_answers_204(client: TestClient, user: Person) -> None:
    assert delete_account(client, user) == 204


def test_deleting_needs_the_current_password(client: TestClient, user: Person) -> None:
    response = client.request(
        "DELETE", f"{API}/users/me", json={"password": "wrong one"}, headers=user.headers
    )
    assert response.status_code == 400
    assert response.json()["code"] == "wrong_password"
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200


def test_deleting_without_a_password_is_unprocessable(client: TestClient, user: Person) -> None:
    response = client.request("DELETE", f"{API}/users/me", json={}, headers=user.headers)
    assert response.status_code == 422


def test_a_deleted_account_is_anonymized(client: TestClient, user: Person) -> None:
    delete_account(client, user)
    with SessionLocal() as session:
        row = session.get(User, user.id)
        assert row is not None
        assert row.name == f"deleted-user-{user.id}"
        assert row.email is None
        assert row.deleted_date is not None
        assert not row.password_hash.startswith("$argon2")


def test_a_deleted_user_cannot_log_in(client: TestClient, user: Person) -> None:
    delete_account(client, user)
    for login in (user.name, user.email, f"deleted-user-{user.id}"):
        response = client.post(f"{API}/auth/login", data={"username": login, "password": PASSWORD})
        assert response.status_code == 401, login


def test_a_deleted_users_old_access_token_is_refused(client: TestClient, user: Person) -> None:
    delete_account(client, user)
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 401


def test_a_deleted_users_refresh_token_is_refused(client: TestClient, user: Person) -> None:
    pair = client.post(f"{API}/auth/login", data={"username": user.name, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (
        client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=headers).status_code
        == 204
    )
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401


def test_the_freed_name_and_email_can_sign_up_again(client: TestClient, user: Person) -> None:
    delete_account(client, user)
    response = client.post(
        f"{API}/auth/signup", json={"name": user.name, "email": user.email, "password": "another secret"}
    )
    assert response.status_code == 201
    assert response.json()["id"] != user.id


def test_the_placeholder_name_cannot_be_taken_by_anyone(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/signup",
        json={"name": "deleted-user-1", "email": "x@example.com", "password": "a secret pw"},
    )
    assert response.status_code == 422


def test_a_deleted_users_post_still_loads_with_the_author_shown_as_deleted(
    client: TestClient, user: Person, other_user: Person, make_board, make_post
) -> None:
    board = make_board("자유게시판")
    post = make_post(board, user, name="남겨질 글")
    delete_account(client, user)
    response = client.get(f"{API}/posts/{post.id}", headers=other_user.headers)
    assert response.status_code == 200
    assert response.json()["author"] == {"id": user.id, "name": f"deleted-user-{user.id}"}
    listing = client.get(f"{API}/boards/{board.id}/posts", headers=other_user.headers).json()
    assert listing["items"][0]["author"]["name"] == f"deleted-user-{user.id}"


def test_a_deleted_users_board_access_is_cleared(client: TestClient, make_board, make_user: MakeUser) -> None:
    member = make_user("member")
    make_board("운영진", is_public=False, members=(member,))
    delete_account(client, member)
    with SessionLocal() as session:
        rows = session.execute(board_access.select().where(board_access.c.user_id == member.id)).all()
    assert rows == []


def test_a_deleted_users_conversation_stays_for_administrators(
    client: TestClient, user: Person, admin: Person
) -> None:
    opened = client.post(f"{API}/chat/sessions", json={"name": "환불 문의"}, headers=user.headers).json()
    client.post(
        f"{API}/chat/sessions/{opened['id']}/messages", json={"content": "안녕하세요"}, headers=user.headers
    )
    delete_account(client, user)
    history = client.get(f"{API}/chat/sessions/{opened['id']}/messages", headers=admin.headers)
    assert history.status_code == 200
    assert [m["content"] for m in history.json()["items"]] == ["안녕하세요"]


def test_deleting_my_account_closes_my_sockets_with_4401(client: TestClient, user: Person) -> None:
    with live_socket(client, user) as socket:
        socket.assert_quiet()
        assert delete_account(client, user) == 204
        assert socket.expect_close().code == 4401


def test_the_last_administrator_cannot_delete_their_account(client: TestClient, admin: Person) -> None:
    response = client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "last_administrator"
    assert client.get(f"{API}/users/me", headers=admin.headers).status_code == 200


def test_an_administrator_may_delete_their_account_while_another_remains(
    client: TestClient, admin: Person, make_user: MakeUser
) -> None:
    make_user("second_admin", is_superuser=True)
    assert delete_account(client, admin) == 204


def test_a_password_change_closes_my_sockets_with_4401(client: TestClient, user: Person) -> None:
    with live_socket(client, user) as socket:
        socket.assert_quiet()
        response = client.put(
            f"{API}/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=user.headers,
        )
        assert response.status_code == 204
        assert socket.expect_close().code == 4401
