"""Control characters in what users write: a one-line name or title refuses every control
character (category Cc: NUL, tab, line breaks, escape, the C1 range) and the bidi controls that
reorder the text shown after it; multi-line text keeps tab and line breaks but refuses NUL and the
other controls. Either way a 422 in the house shape, and nothing stored."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

import models
from config import settings
from database import SessionLocal
from tests.conftest import Person

API = settings.API_PREFIX

# Each refused in a one-line field; \x85 is NEL (C1), U+2028 a line separator (Zl), U+202E the
# right-to-left override and U+2067 the right-to-left isolate.
ONE_LINE_REFUSED = [
    "a\x00b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x1bb",
    "a\x7fb",
    "a\x85b",
    "a\u2028b",
    "a\u202eb",
    "a\u2067b",
]
# Each refused in multi-line text too.
MULTI_LINE_REFUSED = ["a\x00b", "a\x1bb", "a\x07b", "a\x7fb", "a\x85b"]


def stored(model: type[models.Base]) -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def assert_invalid_input(response: Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"


@pytest.fixture
def board(make_board: Callable[..., models.Board]) -> models.Board:
    return make_board("free")


def write_post(
    client: TestClient, person: Person, board: models.Board, name: str, content: str = "hello"
) -> Response:
    return client.post(
        f"{API}/boards/{board.id}/posts", json={"name": name, "content": content}, headers=person.headers
    )


# --- one-line names and titles --------------------------------------------------------------------


@pytest.mark.parametrize("title", ONE_LINE_REFUSED)
def test_a_post_title_with_a_control_character_is_refused(
    client: TestClient, user: Person, board: models.Board, title: str
) -> None:
    assert_invalid_input(write_post(client, user, board, title))
    assert stored(models.Post) == 0


def test_renaming_a_post_to_a_title_with_a_nul_is_refused(
    client: TestClient, user: Person, board: models.Board, make_post: Callable[..., models.Post]
) -> None:
    post = make_post(board, user, name="before")
    assert_invalid_input(
        client.patch(f"{API}/posts/{post.id}", json={"name": "a\x00b"}, headers=user.headers)
    )
    assert client.get(f"{API}/posts/{post.id}", headers=user.headers).json()["name"] == "before"


@pytest.mark.parametrize("name", ONE_LINE_REFUSED)
def test_a_conversation_name_with_a_control_character_is_refused(
    client: TestClient, user: Person, name: str
) -> None:
    assert_invalid_input(client.post(f"{API}/chat/sessions", json={"name": name}, headers=user.headers))
    assert stored(models.ChatSession) == 0


@pytest.mark.parametrize("name", ONE_LINE_REFUSED)
def test_a_board_name_with_a_control_character_is_refused(
    client: TestClient, admin: Person, name: str
) -> None:
    assert_invalid_input(client.post(f"{API}/admin/boards", json={"name": name}, headers=admin.headers))
    assert stored(models.Board) == 0


@pytest.mark.parametrize("name", ["min\x00ji", "min\nji", "min\tji", "min\x85ji", "min\u202eji"])
def test_a_user_name_with_a_control_character_is_refused(client: TestClient, name: str) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": name, "email": "m@example.com", "password": "12345678"}
    )
    assert_invalid_input(response)
    assert stored(models.User) == 0


@pytest.mark.parametrize("target", ["pri\x00ce", "pri\nce", "pri\u202ece"])
def test_a_training_target_column_with_a_control_character_is_refused(
    client: TestClient, admin: Person, target: str
) -> None:
    response = client.post(
        f"{API}/admin/ai/models",
        data={"name": "prices", "target": target},
        files={"file": ("prices.csv", b"rooms,price\n1,2\n", "text/csv")},
        headers=admin.headers,
    )
    assert_invalid_input(response)
    with SessionLocal() as session:
        assert session.scalar(select(models.AI).where(models.AI.name == "prices")) is None


@pytest.mark.db
@pytest.mark.parametrize(
    "title",
    [
        "\U0001f469\u200d\U0001f4bb 질문 있습니다",  # an emoji joined by U+200D ZERO WIDTH JOINER
        "\u0646\u0627\u0645\u0647\u200c\u0647\u0627",  # Persian, with U+200C ZERO WIDTH NON-JOINER
        "\u05e9\u05dc\u05d5\u05dd\u200f!",  # Hebrew, with U+200F RIGHT-TO-LEFT MARK
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f flag",  # tag characters
    ],
)
def test_a_title_keeps_the_format_characters_real_text_needs(
    client: TestClient, user: Person, board: models.Board, title: str
) -> None:
    response = write_post(client, user, board, title)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == title


# --- multi-line text ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", MULTI_LINE_REFUSED)
def test_post_content_with_a_nul_or_another_control_character_is_refused(
    client: TestClient, user: Person, board: models.Board, content: str
) -> None:
    assert_invalid_input(write_post(client, user, board, "a title", content))
    assert stored(models.Post) == 0


@pytest.mark.db
def test_post_content_keeps_its_tabs_and_line_breaks(
    client: TestClient, user: Person, board: models.Board
) -> None:
    content = "first line\r\n\tindented\nlast \u202eline"
    response = write_post(client, user, board, "a title", content)
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]
    assert client.get(f"{API}/posts/{post_id}", headers=user.headers).json()["content"] == content


@pytest.mark.parametrize("content", MULTI_LINE_REFUSED)
def test_comment_content_with_a_control_character_is_refused(
    client: TestClient, user: Person, board: models.Board, make_post: Callable[..., models.Post], content: str
) -> None:
    post = make_post(board, user)
    response = client.post(f"{API}/posts/{post.id}/comments", json={"content": content}, headers=user.headers)
    assert_invalid_input(response)
    assert stored(models.Comment) == 0


def test_a_chat_message_with_a_nul_is_refused(client: TestClient, user: Person) -> None:
    conversation = client.post(f"{API}/chat/sessions", json={"name": "help"}, headers=user.headers).json()
    response = client.post(
        f"{API}/chat/sessions/{conversation['id']}/messages", json={"content": "a\x00b"}, headers=user.headers
    )
    assert_invalid_input(response)
    assert stored(models.Chat) == 0


@pytest.mark.db
def test_a_chat_message_keeps_its_line_breaks(client: TestClient, user: Person) -> None:
    conversation = client.post(f"{API}/chat/sessions", json={"name": "help"}, headers=user.headers).json()
    response = client.post(
        f"{API}/chat/sessions/{conversation['id']}/messages", json={"content": "a\n\tb"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["content"] == "a\n\tb"
