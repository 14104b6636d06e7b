"""Issue 8 (parity with the original system): what the other modules do not already show.

A deleted account as administrators see it and as final; what a deleted user leaves behind
(likes, views, comments, activity counts); what the administrators' user view counts; two last
administrators deleting themselves at the same moment. Chat edits and deletions are in
tests/test_chat_rest.py, test_chat_socket.py and test_chat_page.py, closing conversations
there too, AI history in tests/test_ai_jobs.py, the rest of account deletion in
tests/test_account_deletion.py.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from fastapi.testclient import TestClient

import models
from database import SessionLocal
from tests.conftest import IS_MARIADB, PASSWORD, MakeUser, Person

pytestmark = pytest.mark.db  # counts and rows of deleted accounts; row locks

API = "/api/v1"

MakeBoard = Callable[..., models.Board]
MakePost = Callable[..., models.Post]


def delete_account(client: TestClient, person: Person) -> httpx2.Response:
    return client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=person.headers)


@pytest.fixture
def deleted_user(client: TestClient, make_user: MakeUser) -> Person:
    person = make_user("leaving")
    assert delete_account(client, person).status_code == 204
    return person


# --- administrators see a deleted account as deleted ---------------------------------------------


def test_administrators_see_that_a_user_was_deleted(
    client: TestClient, admin: Person, deleted_user: Person
) -> None:
    body = client.get(f"{API}/admin/users/{deleted_user.id}", headers=admin.headers).json()
    assert (body["name"], body["email"], body["is_deleted"]) == (
        f"deleted-user-{deleted_user.id}",
        None,
        True,
    )
    assert body["deleted_date"] is not None


def test_a_live_account_is_not_marked_deleted(client: TestClient, admin: Person, user: Person) -> None:
    body = client.get(f"{API}/admin/users/{user.id}", headers=admin.headers).json()
    assert (body["deleted_date"], body["is_deleted"]) == (None, False)


def test_the_user_list_marks_deleted_accounts(
    client: TestClient, admin: Person, user: Person, deleted_user: Person
) -> None:
    page = client.get(f"{API}/admin/users", headers=admin.headers).json()
    marks = {item["id"]: item["is_deleted"] for item in page["items"]}
    assert marks == {admin.id: False, user.id: False, deleted_user.id: True}


def test_a_deleted_users_activity_stays_counted(
    client: TestClient, admin: Person, make_user: MakeUser, make_board: MakeBoard, make_post: MakePost
) -> None:
    leaving = make_user("leaving")
    make_post(make_board("free"), leaving)
    client.post(f"{API}/chat/sessions", json={"name": "bye"}, headers=leaving.headers)
    delete_account(client, leaving)
    counts = client.get(f"{API}/admin/users/{leaving.id}", headers=admin.headers).json()["counts"]
    assert counts == {"posts": 1, "comments": 0, "conversations": 1, "ai_jobs": 0}


def test_the_admin_counts_include_what_the_user_deleted_or_cleared(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard, make_post: MakePost
) -> None:
    post = make_post(make_board("free"), user, is_visible=False)
    with SessionLocal() as session:
        model = models.AI(name="echo", information="repeats")
        session.add(model)
        session.flush()
        session.add(models.Comment(user_id=user.id, post_id=post.id, content="gone", is_visible=False))
        session.add(models.AIlog(user_id=user.id, ai_id=model.id, content="input", is_visible=False))
        session.commit()
    counts = client.get(f"{API}/admin/users/{user.id}", headers=admin.headers).json()["counts"]
    assert counts == {"posts": 1, "comments": 1, "conversations": 0, "ai_jobs": 1}


def test_the_admin_counts_are_the_users_own(
    client: TestClient,
    admin: Person,
    user: Person,
    other_user: Person,
    make_board: MakeBoard,
    make_post: MakePost,
) -> None:
    make_post(make_board("free"), other_user)
    client.post(f"{API}/chat/sessions", json={"name": "not minji's"}, headers=other_user.headers)
    counts = client.get(f"{API}/admin/users/{user.id}", headers=admin.headers).json()["counts"]
    assert counts == {"posts": 0, "comments": 0, "conversations": 0, "ai_jobs": 0}


# --- a deleted account is final ----------------------------------------------------------------------


@pytest.mark.parametrize("is_banned", [True, False])
def test_a_deleted_account_cannot_be_banned_or_unbanned(
    client: TestClient, admin: Person, deleted_user: Person, is_banned: bool
) -> None:
    response = client.patch(
        f"{API}/admin/users/{deleted_user.id}", json={"is_banned": is_banned}, headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "user_deleted"


def test_unbanning_a_deleted_account_does_not_let_it_sign_in(
    client: TestClient, admin: Person, deleted_user: Person
) -> None:
    client.patch(f"{API}/admin/users/{deleted_user.id}", json={"is_banned": False}, headers=admin.headers)
    response = client.post(f"{API}/auth/login", data={"username": deleted_user.name, "password": PASSWORD})
    assert response.status_code == 401


def test_a_deleted_account_cannot_be_given_board_access(
    client: TestClient, admin: Person, deleted_user: Person, make_board: MakeBoard
) -> None:
    staff = make_board("staff", is_public=False)
    response = client.put(
        f"{API}/admin/users/{deleted_user.id}/boards", json={"board_ids": [staff.id]}, headers=admin.headers
    )
    assert response.status_code == 409
    assert client.get(f"{API}/admin/users/{deleted_user.id}", headers=admin.headers).json()["boards"] == []


# --- what a deleted user leaves behind ---------------------------------------------------------------


def test_a_deleted_users_likes_and_views_stay_counted(
    client: TestClient, user: Person, other_user: Person, make_board: MakeBoard, make_post: MakePost
) -> None:
    board = make_board("free")
    post = make_post(board, other_user)
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).status_code == 200  # a view
    assert client.put(f"{API}/posts/{post.id}/like", headers=user.headers).status_code == 200
    delete_account(client, user)
    (listed,) = client.get(f"{API}/boards/{board.id}/posts", headers=other_user.headers).json()["items"]
    assert (listed["number_of_like"], listed["number_of_view"]) == (1, 1)


def test_a_deleted_users_comment_stays_with_the_author_shown_as_deleted(
    client: TestClient, user: Person, other_user: Person, make_board: MakeBoard, make_post: MakePost
) -> None:
    post = make_post(make_board("free"), other_user)
    client.post(f"{API}/posts/{post.id}/comments", json={"content": "thanks!"}, headers=user.headers)
    delete_account(client, user)
    (comment,) = client.get(f"{API}/posts/{post.id}/comments", headers=other_user.headers).json()["items"]
    assert (comment["content"], comment["author"]) == (
        "thanks!",
        {"id": user.id, "name": f"deleted-user-{user.id}"},
    )


def test_a_deleted_users_chat_messages_show_the_placeholder_name(
    client: TestClient, admin: Person, user: Person
) -> None:
    opened = client.post(f"{API}/chat/sessions", json={"name": "help"}, headers=user.headers).json()
    client.post(f"{API}/chat/sessions/{opened['id']}/messages", json={"content": "hi"}, headers=user.headers)
    delete_account(client, user)
    history = client.get(f"{API}/chat/sessions/{opened['id']}/messages", headers=admin.headers).json()
    (message,) = history["items"]
    assert message["user"] == {"id": user.id, "name": f"deleted-user-{user.id}"}


# --- the last administrator ---------------------------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.skipif(not IS_MARIADB, reason="needs MariaDB's row locks (set TEST_DATABASE_URL)")
def test_two_last_administrators_deleting_themselves_at_once_leave_one(
    client: TestClient, make_user: MakeUser
) -> None:
    admins = [make_user(f"admin{n}", is_superuser=True) for n in (1, 2)]
    barrier = threading.Barrier(len(admins))

    def leave(person: Person) -> int:
        barrier.wait()
        return delete_account(client, person).status_code

    with ThreadPoolExecutor(max_workers=len(admins)) as pool:
        statuses = sorted(pool.map(leave, admins))
    assert statuses == [204, 409]
    with SessionLocal() as session:
        remaining = [a.id for a in admins if session.get(models.User, a.id).deleted_date is None]  # type: ignore[union-attr]
    assert len(remaining) == 1
