"""Administration: finding users, banning, board access lists, creating and editing boards."""

import re
from collections.abc import Callable

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import models
from config import settings
from database import SessionLocal
from main import app
from tests.conftest import MakeUser, Person

# user search (LIKE and its escaping), paging and counts, names unique ignoring case
pytestmark = pytest.mark.db

API = settings.API_PREFIX
ADMIN_PREFIX = f"{API}/admin"
MakeBoard = Callable[..., models.Board]

# The known admin API. Every admin route the app serves is checked below, this table only
# guards against the route discovery finding nothing.
KNOWN_ADMIN_ROUTES = {
    ("GET", "/admin/users"),
    ("GET", "/admin/users/{user_id}"),
    ("PATCH", "/admin/users/{user_id}"),
    ("PUT", "/admin/users/{user_id}/boards"),
    ("POST", "/admin/boards"),
    ("PATCH", "/admin/boards/{board_id}"),
}


def admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) under /admin that the app serves, from its OpenAPI schema."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(ADMIN_PREFIX)
        for method in operations
    )


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    body = None if method in ("GET", "DELETE") else {}
    return client.request(method, concrete(path), json=body, headers=headers or {}).status_code


def test_route_discovery_finds_the_admin_api() -> None:
    found = {(method, path.removeprefix(API)) for method, path in admin_routes()}
    assert found >= KNOWN_ADMIN_ROUTES


@pytest.mark.parametrize(("method", "path"), admin_routes())
def test_admin_endpoint_refuses_an_anonymous_caller(client: TestClient, method: str, path: str) -> None:
    assert call(client, method, path) == 401


@pytest.mark.parametrize(("method", "path"), admin_routes())
def test_admin_endpoint_refuses_a_normal_user(
    client: TestClient, user: Person, method: str, path: str
) -> None:
    assert call(client, method, path, user.headers) == 403


# --- finding users -----------------------------------------------------------------------------


def user_names(response_json: dict) -> list[str]:
    return [item["name"] for item in response_json["items"]]


def test_admin_lists_users_as_a_page(client: TestClient, admin: Person, make_user: MakeUser) -> None:
    make_user("alice")
    make_user("bob")
    response = client.get(f"{API}/admin/users", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert (body["offset"], body["limit"]) == (0, 20)
    assert user_names(body) == ["root_admin", "alice", "bob"]


def test_admin_pages_through_users_with_offset_and_limit(
    client: TestClient, admin: Person, make_user: MakeUser
) -> None:
    for index in range(5):
        make_user(f"member{index}")
    response = client.get(f"{API}/admin/users", params={"offset": 2, "limit": 2}, headers=admin.headers)
    body = response.json()
    assert body["total"] == 6
    assert user_names(body) == ["member1", "member2"]


def test_admin_page_past_the_end_is_empty(client: TestClient, admin: Person) -> None:
    response = client.get(f"{API}/admin/users", params={"offset": 50}, headers=admin.headers)
    assert response.json() == {"items": [], "total": 1, "offset": 50, "limit": 20}


def test_admin_searches_users_by_part_of_the_name(
    client: TestClient, admin: Person, make_user: MakeUser
) -> None:
    make_user("haneul", email="sky@example.com")
    make_user("dahae", email="sea@example.com")
    response = client.get(f"{API}/admin/users", params={"q": "NEU"}, headers=admin.headers)
    assert user_names(response.json()) == ["haneul"]


def test_admin_searches_users_by_part_of_the_email(
    client: TestClient, admin: Person, make_user: MakeUser
) -> None:
    make_user("haneul", email="sky@example.com")
    make_user("dahae", email="sea@example.org")
    response = client.get(f"{API}/admin/users", params={"q": "example.org"}, headers=admin.headers)
    assert user_names(response.json()) == ["dahae"]


def test_admin_search_treats_like_wildcards_literally(
    client: TestClient, admin: Person, make_user: MakeUser
) -> None:
    make_user("under_score")
    make_user("underXscore")
    response = client.get(f"{API}/admin/users", params={"q": "r_s"}, headers=admin.headers)
    assert user_names(response.json()) == ["under_score"]


def test_admin_filters_banned_users(client: TestClient, admin: Person, make_user: MakeUser) -> None:
    make_user("troll", is_banned=True)
    make_user("friend")
    banned = client.get(f"{API}/admin/users", params={"is_banned": True}, headers=admin.headers)
    unbanned = client.get(f"{API}/admin/users", params={"is_banned": False}, headers=admin.headers)
    assert user_names(banned.json()) == ["troll"]
    assert user_names(unbanned.json()) == ["root_admin", "friend"]


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"offset": -1}, {"is_banned": "maybe"}])
def test_admin_user_list_rejects_bad_paging(client: TestClient, admin: Person, params: dict) -> None:
    response = client.get(f"{API}/admin/users", params=params, headers=admin.headers)
    assert response.status_code == 422


# --- one user ------------------------------------------------------------------------------------


def add_activity(person: Person, board: models.Board) -> None:
    """Two posts, one comment, one conversation and one AI job by this person."""
    with SessionLocal() as session:
        posts = [
            models.Post(board_id=board.id, user_id=person.id, name=f"post {n}", content="text")
            for n in (1, 2)
        ]
        session.add_all(posts)
        session.flush()
        session.add(models.Comment(user_id=person.id, post_id=posts[0].id, content="a comment"))
        session.add(models.ChatSession(user_id=person.id, name="help"))
        model = models.AI(name="echo", information="repeats")
        session.add(model)
        session.flush()
        session.add(models.AIlog(user_id=person.id, ai_id=model.id, content="input"))
        session.commit()


def test_admin_reads_a_user_with_activity_counts(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    add_activity(user, make_board("free"))
    response = client.get(f"{API}/admin/users/{user.id}", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["email"]) == (user.id, user.name, user.email)
    assert body["counts"] == {"posts": 2, "comments": 1, "conversations": 1, "ai_jobs": 1}


def test_admin_reads_a_users_board_access(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    make_board("public")
    staff = make_board("staff", is_public=False, members=(user,))
    response = client.get(f"{API}/admin/users/{user.id}", headers=admin.headers)
    assert [board["id"] for board in response.json()["boards"]] == [staff.id]


def test_admin_reading_an_unknown_user_gets_404(client: TestClient, admin: Person) -> None:
    response = client.get(f"{API}/admin/users/999999", headers=admin.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("user_id", ["0", "-1", str(2**63), "abc"])
def test_admin_reading_an_impossible_user_id_gets_422(
    client: TestClient, admin: Person, user_id: str
) -> None:
    response = client.get(f"{API}/admin/users/{user_id}", headers=admin.headers)
    assert response.status_code == 422


# --- banning -------------------------------------------------------------------------------------


def ban(client: TestClient, admin: Person, person: Person, is_banned: bool = True) -> dict:
    response = client.patch(
        f"{API}/admin/users/{person.id}", json={"is_banned": is_banned}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_admin_bans_a_user(client: TestClient, admin: Person, user: Person) -> None:
    assert ban(client, admin, user)["is_banned"] is True


def test_banned_users_existing_token_is_refused_at_the_next_request(
    client: TestClient, admin: Person, user: Person
) -> None:
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    ban(client, admin, user)
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "banned"


def test_banned_user_cannot_log_in(client: TestClient, admin: Person, user: Person) -> None:
    ban(client, admin, user)
    response = client.post(f"{API}/auth/login", data={"username": user.name, "password": user.password})
    assert response.status_code == 403


def test_banned_users_refresh_token_is_refused(client: TestClient, admin: Person, user: Person) -> None:
    login = client.post(f"{API}/auth/login", data={"username": user.name, "password": user.password})
    ban(client, admin, user)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
    assert response.status_code == 403


def test_unban_does_not_revive_tokens_issued_before_the_ban(
    client: TestClient, admin: Person, user: Person
) -> None:
    ban(client, admin, user)
    assert ban(client, admin, user, is_banned=False)["is_banned"] is False
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_an_unbanned_user_can_log_in_again(client: TestClient, admin: Person, user: Person) -> None:
    ban(client, admin, user)
    ban(client, admin, user, is_banned=False)
    response = client.post(f"{API}/auth/login", data={"username": user.name, "password": user.password})
    assert response.status_code == 200
    fresh = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert client.get(f"{API}/users/me", headers=fresh).status_code == 200


def test_admin_cannot_ban_themself(client: TestClient, admin: Person) -> None:
    response = client.patch(f"{API}/admin/users/{admin.id}", json={"is_banned": True}, headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "cannot_ban_self"
    assert client.get(f"{API}/users/me", headers=admin.headers).status_code == 200


def test_banning_an_unknown_user_gets_404(client: TestClient, admin: Person) -> None:
    response = client.patch(f"{API}/admin/users/999999", json={"is_banned": True}, headers=admin.headers)
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"is_banned": None}, {"is_banned": "sometimes"}, {"is_superuser": True}])
def test_admin_user_update_rejects_bad_fields(
    client: TestClient, admin: Person, user: Person, body: dict
) -> None:
    response = client.patch(f"{API}/admin/users/{user.id}", json=body, headers=admin.headers)
    assert response.status_code == 422


# --- board access lists ---------------------------------------------------------------------------


def access_list(person: Person) -> list[int]:
    with SessionLocal() as session:
        query = select(models.board_access.c.board_id).where(models.board_access.c.user_id == person.id)
        return sorted(session.scalars(query))


def put_access(client: TestClient, admin: Person, person: Person, board_ids: list[int]) -> httpx.Response:
    return client.put(
        f"{API}/admin/users/{person.id}/boards", json={"board_ids": board_ids}, headers=admin.headers
    )


def test_admin_replaces_a_users_board_access_list(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    old = make_board("old", is_public=False, members=(user,))
    first = make_board("first", is_public=False)
    second = make_board("second", is_public=False)
    response = put_access(client, admin, user, [second.id, first.id, second.id])
    assert response.status_code == 200
    assert response.json()["user_id"] == user.id
    assert [board["id"] for board in response.json()["boards"]] == [first.id, second.id]
    assert access_list(user) == [first.id, second.id]
    assert old.id not in access_list(user)


def test_admin_empties_a_users_board_access_list(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    make_board("staff", is_public=False, members=(user,))
    assert put_access(client, admin, user, []).json()["boards"] == []
    assert access_list(user) == []


def test_board_access_with_an_unknown_board_changes_nothing(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    staff = make_board("staff", is_public=False, members=(user,))
    other = make_board("other", is_public=False)
    response = put_access(client, admin, user, [other.id, 999999])
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]
    assert access_list(user) == [staff.id]


def test_board_access_of_one_user_leaves_others_alone(
    client: TestClient, admin: Person, user: Person, other_user: Person, make_board: MakeBoard
) -> None:
    staff = make_board("staff", is_public=False, members=(user, other_user))
    put_access(client, admin, user, [])
    assert access_list(other_user) == [staff.id]


def test_granted_access_opens_a_restricted_board(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    staff = make_board("staff", is_public=False)
    assert client.get(f"{API}/boards/{staff.id}", headers=user.headers).status_code == 403
    put_access(client, admin, user, [staff.id])
    assert client.get(f"{API}/boards/{staff.id}", headers=user.headers).status_code == 200


@pytest.mark.parametrize("board_ids", [[0], [2**63], ["x"], None])
def test_board_access_rejects_impossible_ids(
    client: TestClient, admin: Person, user: Person, board_ids: object
) -> None:
    response = client.put(
        f"{API}/admin/users/{user.id}/boards", json={"board_ids": board_ids}, headers=admin.headers
    )
    assert response.status_code == 422


def test_board_access_for_an_unknown_user_gets_404(client: TestClient, admin: Person) -> None:
    response = client.put(f"{API}/admin/users/999999/boards", json={"board_ids": []}, headers=admin.headers)
    assert response.status_code == 404


# --- boards ---------------------------------------------------------------------------------------


def create_board(client: TestClient, admin: Person, **fields: object) -> httpx.Response:
    return client.post(f"{API}/admin/boards", json=fields, headers=admin.headers)


def test_admin_creates_a_public_board(client: TestClient, admin: Person) -> None:
    response = create_board(client, admin, name="자유게시판", information="아무 이야기나")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "자유게시판"
    assert body["information"] == "아무 이야기나"
    assert (body["is_public"], body["is_visible"]) == (True, True)


def test_admin_creates_a_restricted_board(client: TestClient, admin: Person) -> None:
    response = create_board(client, admin, name="staff", information="", is_public=False)
    assert response.status_code == 201
    assert response.json()["is_public"] is False


def test_new_board_appears_in_a_users_board_list(client: TestClient, admin: Person, user: Person) -> None:
    board_id = create_board(client, admin, name="news").json()["id"]
    listed = client.get(f"{API}/boards", headers=user.headers).json()["items"]
    assert [board["id"] for board in listed] == [board_id]


def test_creating_a_board_with_a_taken_name_gets_409(client: TestClient, admin: Person) -> None:
    create_board(client, admin, name="free")
    response = create_board(client, admin, name="free")
    assert response.status_code == 409
    assert response.json()["code"] == "board_name_taken"


def test_board_names_differing_only_in_case_are_the_same_name(client: TestClient, admin: Person) -> None:
    create_board(client, admin, name="Free")
    assert create_board(client, admin, name="fREE").status_code == 409


def test_board_name_is_stripped_of_surrounding_spaces(client: TestClient, admin: Person) -> None:
    create_board(client, admin, name="free")
    assert create_board(client, admin, name="  free  ").status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 129},
        {"name": "ok", "information": "x" * 513},
        {"name": "ok", "is_public": None},
        {"name": "ok", "is_visible": False},
        {"name": None},
    ],
)
def test_creating_a_board_rejects_bad_input(client: TestClient, admin: Person, body: dict) -> None:
    assert create_board(client, admin, **body).status_code == 422


def edit_board(client: TestClient, admin: Person, board: models.Board, **changes: object) -> httpx.Response:
    return client.patch(f"{API}/admin/boards/{board.id}", json=changes, headers=admin.headers)


def test_admin_renames_a_board(client: TestClient, admin: Person, make_board: MakeBoard) -> None:
    board = make_board("old name")
    response = edit_board(client, admin, board, name="new name", information="new words")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["information"]) == ("new name", "new words")


def test_renaming_a_board_to_its_own_name_is_allowed(
    client: TestClient, admin: Person, make_board: MakeBoard
) -> None:
    board = make_board("free")
    assert edit_board(client, admin, board, name="free").status_code == 200


def test_renaming_a_board_to_a_taken_name_gets_409(
    client: TestClient, admin: Person, make_board: MakeBoard
) -> None:
    make_board("free")
    board = make_board("news")
    response = edit_board(client, admin, board, name="free")
    assert response.status_code == 409
    with SessionLocal() as session:
        assert session.get(models.Board, board.id).name == "news"


def test_admin_hides_a_board_from_users(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    board = make_board("free")
    assert edit_board(client, admin, board, is_visible=False).json()["is_visible"] is False
    assert client.get(f"{API}/boards/{board.id}", headers=user.headers).status_code == 404
    assert client.get(f"{API}/boards", headers=user.headers).json()["items"] == []


def test_admin_makes_a_board_restricted(
    client: TestClient, admin: Person, user: Person, make_board: MakeBoard
) -> None:
    board = make_board("free")
    assert edit_board(client, admin, board, is_public=False).json()["is_public"] is False
    assert client.get(f"{API}/boards/{board.id}", headers=user.headers).status_code == 403


def test_editing_an_unknown_board_gets_404(client: TestClient, admin: Person) -> None:
    response = client.patch(f"{API}/admin/boards/999999", json={"name": "x"}, headers=admin.headers)
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"name": None}, {"is_visible": None}, {"name": ""}, {"color": "red"}])
def test_editing_a_board_rejects_bad_input(
    client: TestClient, admin: Person, make_board: MakeBoard, body: dict
) -> None:
    board = make_board("free")
    response = client.patch(f"{API}/admin/boards/{board.id}", json=body, headers=admin.headers)
    assert response.status_code == 422
