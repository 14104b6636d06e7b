"""Every error answers a clear 4xx in one shape, and no input of any shape gives a 500."""

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

import models
from config import settings
from tests.conftest import MakeUser, Person

API = settings.API_PREFIX
MakeBoard = Callable[..., models.Board]


def assert_error_shape(body: dict, code: str) -> None:
    assert set(body) == {"detail", "code"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["code"] == code


# --- the shape of framework errors ----------------------------------------------------------------


def test_unknown_route_answers_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get(f"{API}/no-such-thing")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


def test_unknown_route_outside_the_api_answers_404_in_the_error_shape(client: TestClient) -> None:
    response = client.post("/wp-login.php")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


def test_wrong_method_answers_405_in_the_error_shape(client: TestClient) -> None:
    response = client.delete(f"{API}/auth/signup")
    assert response.status_code == 405
    assert_error_shape(response.json(), "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_missing_token_answers_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get(f"{API}/users/me")
    assert response.status_code == 401
    assert_error_shape(response.json(), "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_domain_error_answers_in_the_error_shape(client: TestClient, admin: Person) -> None:
    response = client.get(f"{API}/admin/users/424242", headers=admin.headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "user not found", "code": "not_found"}


# --- malformed and oversized bodies ---------------------------------------------------------------


def post_raw(client: TestClient, content: bytes, content_type: str = "application/json") -> int:
    return client.post(
        f"{API}/auth/signup", content=content, headers={"content-type": content_type}
    ).status_code


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "minji",',
        b"",
        b"null",
        b"[]",
        b'"a string"',
        b"\xff\xfe not utf-8",
        b'{"name": NaN, "email": Infinity, "password": -Infinity}',
        b'{"name": "\\ud800"}',
    ],
    ids=["cut-off", "empty", "null", "list", "string", "not-utf8", "nan", "lone-surrogate"],
)
def test_malformed_json_answers_422(client: TestClient, content: bytes) -> None:
    assert post_raw(client, content) == 422


def test_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    secret = "p" * 200
    response = client.post(
        f"{API}/auth/signup", json={"name": "minji", "email": "m@example.com", "password": secret}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert secret not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    "content", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000], ids=["list", "object"]
)
def test_deeply_nested_json_is_refused_in_the_error_shape(client: TestClient, content: bytes) -> None:
    response = client.post(
        f"{API}/auth/signup", content=content, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"detail", "code"}


def test_json_sent_as_plain_text_is_refused(client: TestClient) -> None:
    body = b'{"name": "minji", "email": "m@example.com", "password": "12345678"}'
    assert post_raw(client, body, "text/plain") == 422


def test_json_body_over_the_limit_answers_413(client: TestClient) -> None:
    oversized = b'{"name": "' + b"x" * (settings.MAX_JSON_BODY_KB * 1024) + b'"}'
    response = client.post(
        f"{API}/auth/signup", content=oversized, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_error_shape(response.json(), "payload_too_large")


def test_streamed_json_body_over_the_limit_answers_413(client: TestClient) -> None:
    chunk = b"x" * 1024

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server only learns the size by counting
        yield b'{"name": "'
        for _ in range(settings.MAX_JSON_BODY_KB + 1):
            yield chunk
        yield b'"}'

    response = client.post(
        f"{API}/auth/signup", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_error_shape(response.json(), "payload_too_large")


def test_json_body_over_the_limit_is_refused_before_authentication(client: TestClient, admin: Person) -> None:
    oversized = b'{"name": "' + b"x" * (settings.MAX_JSON_BODY_KB * 1024) + b'"}'
    response = client.post(
        f"{API}/admin/boards",
        content=oversized,
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert response.status_code == 413


def test_json_body_just_under_the_limit_is_read(client: TestClient) -> None:
    padding = "x" * (settings.MAX_JSON_BODY_KB * 1024 - 200)
    response = client.post(
        f"{API}/auth/signup",
        json={"name": "minji", "email": "m@example.com", "password": "12345678", "pad": padding},
    )
    assert response.status_code == 422  # read and validated: the unknown field is refused, not the size


# --- unicode, emoji and Korean --------------------------------------------------------------------


def signup(client: TestClient, name: str, email: str, password: str = "a long secret") -> int:
    response = client.post(f"{API}/auth/signup", json={"name": name, "email": email, "password": password})
    return response.status_code


@pytest.mark.db
def test_korean_user_name_signs_up_and_logs_in(client: TestClient) -> None:
    assert signup(client, "김민지", "minji@example.com") == 201
    response = client.post(f"{API}/auth/login", data={"username": "김민지", "password": "a long secret"})
    assert response.status_code == 200


@pytest.mark.db
def test_users_with_different_korean_names_coexist(client: TestClient) -> None:
    assert signup(client, "하늘", "sky@example.com") == 201
    assert signup(client, "바다", "sea@example.com") == 201


@pytest.mark.db
def test_korean_email_address_is_accepted(client: TestClient) -> None:
    assert signup(client, "minji", "민지@example.com") == 201


@pytest.mark.db
def test_emoji_in_a_user_name_is_refused(client: TestClient) -> None:
    assert signup(client, "minji😀", "minji@example.com") == 422


@pytest.mark.db
def test_admin_finds_a_user_by_a_korean_name(client: TestClient, admin: Person, make_user: MakeUser) -> None:
    make_user("김민지", email="minji@example.com")
    make_user("이지수", email="jisoo@example.com")
    response = client.get(f"{API}/admin/users", params={"q": "민지"}, headers=admin.headers)
    assert [item["name"] for item in response.json()["items"]] == ["김민지"]


def create_board(client: TestClient, admin: Person, name: str, information: str = "") -> int:
    response = client.post(
        f"{API}/admin/boards", json={"name": name, "information": information}, headers=admin.headers
    )
    return response.status_code


@pytest.mark.db
def test_board_name_in_korean_with_emoji_round_trips(client: TestClient, admin: Person) -> None:
    client.post(
        f"{API}/admin/boards",
        json={"name": "🍕 맛집 게시판", "information": "먹방 🎉"},
        headers=admin.headers,
    )
    listed = client.get(f"{API}/boards", headers=admin.headers).json()["items"]
    assert [(board["name"], board["information"]) for board in listed] == [("🍕 맛집 게시판", "먹방 🎉")]


@pytest.mark.db
def test_boards_named_with_different_emoji_are_different_boards(client: TestClient, admin: Person) -> None:
    assert create_board(client, admin, "🍕 맛집") == 201
    assert create_board(client, admin, "🍔 맛집") == 201


@pytest.mark.db
def test_boards_with_different_korean_names_are_different_boards(client: TestClient, admin: Person) -> None:
    assert create_board(client, admin, "질문") == 201
    assert create_board(client, admin, "질문과 답") == 201
    assert create_board(client, admin, "잡담") == 201


@pytest.mark.db
def test_board_name_of_128_emoji_fits(client: TestClient, admin: Person) -> None:
    assert create_board(client, admin, "😀" * 128) == 201


@pytest.mark.db
@pytest.mark.parametrize(
    "name",
    [
        "\u200fright-to-left mark",  # a mark; the overrides are refused (tests/test_control_characters.py)
        "e\u0301 combining",
        "zero\u200bwidth",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
        "\uff46\uff55\uff4c\uff4c width",
    ],
)
def test_unusual_unicode_board_names_are_accepted(client: TestClient, admin: Person, name: str) -> None:
    assert create_board(client, admin, name) == 201


# --- NUL bytes, control characters and very long strings ------------------------------------------


@pytest.mark.parametrize("name", ["free\x00board", "\x00", "tab\tname", "line\nbreak", "bell\x07"])
def test_board_name_with_control_characters_is_refused(client: TestClient, admin: Person, name: str) -> None:
    assert create_board(client, admin, name) == 422


def test_board_name_with_a_lone_surrogate_is_refused(client: TestClient, admin: Person) -> None:
    response = client.post(
        f"{API}/admin/boards",
        content=b'{"name": "broken \\ud800 name"}',
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422


def test_password_with_a_lone_surrogate_is_refused(client: TestClient) -> None:
    body = b'{"name": "minji", "email": "minji@example.com", "password": "\\ud800\\udfff-\\ud800-broken"}'
    assert post_raw(client, body) == 422


def test_login_with_a_lone_surrogate_password_is_a_plain_401(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/auth/login",
        content=f"username={user.name}&password=%ED%A0%80broken".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


def test_board_information_with_a_nul_byte_is_refused(client: TestClient, admin: Person) -> None:
    assert create_board(client, admin, "free", information="about\x00this") == 422


def test_board_information_may_span_lines(client: TestClient, admin: Person) -> None:
    assert create_board(client, admin, "free", information="first line\nsecond line") == 201


def test_board_rename_with_a_nul_byte_is_refused(
    client: TestClient, admin: Person, make_board: MakeBoard
) -> None:
    board = make_board("free")
    response = client.patch(f"{API}/admin/boards/{board.id}", json={"name": "a\x00b"}, headers=admin.headers)
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("name", "email", "password"),
    [
        ("min\x00ji", "minji@example.com", "a long secret"),
        ("minji", "min\x00ji@example.com", "a long secret"),
        ("n" * 65, "minji@example.com", "a long secret"),
        ("minji", "m" * 300 + "@example.com", "a long secret"),
        ("minji", "minji@example.com", "p" * 129),
        ("minji", "minji@example.com", "p" * 100_000),
    ],
    ids=["nul-name", "nul-email", "long-name", "long-email", "long-password", "huge-password"],
)
def test_bad_sign_up_fields_are_refused(client: TestClient, name: str, email: str, password: str) -> None:
    assert signup(client, name, email, password) == 422


def test_password_with_a_nul_byte_still_works(client: TestClient) -> None:
    assert signup(client, "minji", "minji@example.com", "secret\x00secret") == 201
    response = client.post(f"{API}/auth/login", data={"username": "minji", "password": "secret\x00secret"})
    assert response.status_code == 200


@pytest.mark.db
@pytest.mark.parametrize("username", ["min\x00ji", "😀", "김" * 10_000, "' OR 1=1 --", "%", "a@b@c"])
def test_odd_login_names_are_a_plain_401(client: TestClient, username: str) -> None:
    response = client.post(f"{API}/auth/login", data={"username": username, "password": "whatever1"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


@pytest.mark.db
@pytest.mark.parametrize("q", ["\x00", "%", "_", "\\", "'; DROP TABLE user; --", "😀", "q" * 257])
def test_odd_user_searches_never_fail(client: TestClient, admin: Person, q: str) -> None:
    response = client.get(f"{API}/admin/users", params={"q": q}, headers=admin.headers)
    assert response.status_code == (422 if len(q) > 256 else 200)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer " + "x" * 8000, "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer \u00e9"],
    ids=["no-token", "empty-token", "long-token", "basic", "not-a-jwt", "latin1"],
)
def test_odd_authorization_headers_are_a_401(client: TestClient, authorization: str) -> None:
    response = client.get(f"{API}/users/me", headers={"Authorization": authorization.encode("latin-1")})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "params", [{"offset": 2**63}, {"limit": 10**30}, {"offset": "1e3"}, {"limit": "NaN"}]
)
def test_odd_paging_is_a_422(client: TestClient, admin: Person, params: dict) -> None:
    response = client.get(f"{API}/admin/users", params=params, headers=admin.headers)
    assert response.status_code == 422
