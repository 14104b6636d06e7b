"""Who sees which board: public visible boards for everyone signed in, restricted boards for the
users on their access list, everything (hidden boards too) for administrators."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

import models
from config import settings
from tests.conftest import Person

pytestmark = pytest.mark.db  # the access rule's conditions on boards

API = settings.API_PREFIX
BOARD_LISTS = [f"{API}/boards", f"{API}/users/me/boards"]
MakeBoard = Callable[..., models.Board]


@pytest.fixture
def boards(make_board: MakeBoard, user: Person, other_user: Person) -> dict[str, models.Board]:
    """One board of each kind; `user` is on the access list of `members_only`."""
    return {
        "public": make_board("public"),
        "members_only": make_board("members only", is_public=False, members=(user,)),
        "others_only": make_board("others only", is_public=False, members=(other_user,)),
        "hidden": make_board("hidden", is_visible=False),
        "hidden_members_only": make_board(
            "hidden members", is_public=False, is_visible=False, members=(user,)
        ),
    }


def listed(client: TestClient, url: str, person: Person) -> list[int]:
    response = client.get(url, headers=person.headers)
    assert response.status_code == 200
    return [board["id"] for board in response.json()["items"]]


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_user_sees_public_visible_boards_and_restricted_boards_they_may_use(
    client: TestClient, user: Person, boards: dict[str, models.Board], url: str
) -> None:
    assert listed(client, url, user) == [boards["public"].id, boards["members_only"].id]


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_user_without_access_sees_only_public_visible_boards(
    client: TestClient, make_user: Callable[..., Person], boards: dict[str, models.Board], url: str
) -> None:
    outsider = make_user("outsider")
    assert listed(client, url, outsider) == [boards["public"].id]


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_admin_sees_every_board_including_hidden_ones(
    client: TestClient, admin: Person, boards: dict[str, models.Board], url: str
) -> None:
    assert listed(client, url, admin) == sorted(board.id for board in boards.values())


def test_board_list_and_my_boards_answer_the_same(
    client: TestClient, user: Person, other_user: Person, admin: Person, boards: dict[str, models.Board]
) -> None:
    for person in (user, other_user, admin):
        assert listed(client, BOARD_LISTS[0], person) == listed(client, BOARD_LISTS[1], person)


def test_board_list_answers_the_board_fields(client: TestClient, user: Person, make_board: MakeBoard) -> None:
    board = make_board("free")
    assert client.get(f"{API}/boards", headers=user.headers).json()["items"] == [
        {"id": board.id, "name": "free", "information": "about free", "is_public": True, "is_visible": True}
    ]


@pytest.mark.parametrize("url", BOARD_LISTS)
def test_board_list_refuses_an_anonymous_caller(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- one board -----------------------------------------------------------------------------------


def read_board(client: TestClient, person: Person, board_id: object) -> int:
    return client.get(f"{API}/boards/{board_id}", headers=person.headers).status_code


def test_user_reads_a_public_board(client: TestClient, user: Person, boards: dict[str, models.Board]) -> None:
    response = client.get(f"{API}/boards/{boards['public'].id}", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["name"] == "public"


def test_user_on_the_access_list_reads_a_restricted_board(
    client: TestClient, user: Person, boards: dict[str, models.Board]
) -> None:
    assert read_board(client, user, boards["members_only"].id) == 200


def test_user_without_access_cannot_read_a_restricted_board(
    client: TestClient, user: Person, boards: dict[str, models.Board]
) -> None:
    response = client.get(f"{API}/boards/{boards['others_only'].id}", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "no_board_access"


def test_hidden_board_is_not_found_for_a_user(
    client: TestClient, user: Person, boards: dict[str, models.Board]
) -> None:
    assert read_board(client, user, boards["hidden"].id) == 404


def test_hidden_board_is_not_found_even_for_a_user_on_its_access_list(
    client: TestClient, user: Person, boards: dict[str, models.Board]
) -> None:
    assert read_board(client, user, boards["hidden_members_only"].id) == 404


@pytest.mark.parametrize("kind", ["hidden", "others_only", "hidden_members_only"])
def test_admin_reads_any_board(
    client: TestClient, admin: Person, boards: dict[str, models.Board], kind: str
) -> None:
    assert read_board(client, admin, boards[kind].id) == 200


def test_unknown_board_is_not_found(client: TestClient, user: Person) -> None:
    response = client.get(f"{API}/boards/999999", headers=user.headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "board not found", "code": "not_found"}


@pytest.mark.parametrize("board_id", ["0", "-5", str(2**31), str(2**63), str(10**30), "abc", "1.5"])
def test_impossible_board_id_is_rejected_not_a_server_error(
    client: TestClient, user: Person, board_id: str
) -> None:
    assert read_board(client, user, board_id) == 422


def test_reading_a_board_refuses_an_anonymous_caller(
    client: TestClient, boards: dict[str, models.Board]
) -> None:
    assert client.get(f"{API}/boards/{boards['public'].id}").status_code == 401


def test_banned_user_cannot_list_boards(
    client: TestClient, make_user: Callable[..., Person], make_board: MakeBoard
) -> None:
    make_board("free")
    troll = make_user("troll", is_banned=True)
    assert client.get(f"{API}/boards", headers=troll.headers).status_code == 403


def test_garbage_token_is_refused(client: TestClient) -> None:
    response = client.get(f"{API}/boards", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
