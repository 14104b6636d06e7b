"""Accounts: sign-up, login, access and refresh tokens, logout, profile and password change."""

import unicodedata
from datetime import timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import update

from config import settings
from database import SessionLocal, utcnow
from main import app
from models import RefreshToken, User
from services import security
from tests.conftest import PASSWORD, MakeUser, Person

pytestmark = pytest.mark.db  # names and emails unique ignoring case, refresh-token families, dates of expiry

API = settings.API_PREFIX
NEW_PASSWORD = "a brand new secret"


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, object]:
    response = client.post(f"{API}/auth/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(client: TestClient, headers: dict[str, str]) -> int:
    return client.get(f"{API}/users/me", headers=headers).status_code


def access_claims(user_id: int, **overrides: object) -> dict[str, object]:
    now = utcnow()
    return {
        "sub": str(user_id),
        "ver": 0,
        "type": "access",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    } | overrides


# --- sign-up --------------------------------------------------------------------------------


def test_signup_creates_the_account_with_a_lowercased_email(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": "minji", "email": "Minji@Example.COM", "password": "12345678"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "minji"
    assert body["email"] == "minji@example.com"
    assert body["is_superuser"] is False and body["is_banned"] is False
    assert "password" not in body and "password_hash" not in body


def test_signup_stores_an_argon2id_hash_not_the_password(client: TestClient) -> None:
    client.post(
        f"{API}/auth/signup", json={"name": "minji", "email": "m@example.com", "password": "12345678"}
    )
    with SessionLocal() as session:
        stored = session.query(User).one().password_hash
    assert stored.startswith("$argon2id$")
    assert "12345678" not in stored


def test_signup_with_a_taken_name_is_a_conflict(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": user.name, "email": "new@example.com", "password": "12345678"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"


def test_signup_name_check_ignores_case(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": "Minji", "email": "new@example.com", "password": "12345678"}
    )
    assert user.name == "minji"
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"


def full_width(text: str) -> str:
    """ASCII letters as their full-width forms (U+FF01..U+FF5E), as East Asian keyboards type them."""
    return "".join(chr(ord(letter) + 0xFEE0) for letter in text)


def sign_up(client: TestClient, name: str, email: str) -> Response:
    return client.post(f"{API}/auth/signup", json={"name": name, "email": email, "password": "12345678"})


def test_signup_stores_a_full_width_name_in_its_compatible_form(client: TestClient) -> None:
    response = sign_up(client, full_width("Minji"), "m@example.com")
    assert response.status_code == 201
    assert response.json()["name"] == "Minji"


def test_a_full_width_name_is_taken_by_its_ascii_twin_on_every_database(
    client: TestClient, user: Person
) -> None:
    assert user.name == "minji"
    response = sign_up(client, full_width("minji"), "new@example.com")
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\ufdfa" * 4, "its compatible form is 72 characters, over the 64 allowed"),
        ("half\u00bd", "its compatible form holds U+2044 FRACTION SLASH, not a letter or digit"),
    ],
)
def test_a_name_is_judged_in_its_compatible_form(client: TestClient, name: str, why: str) -> None:
    response = sign_up(client, name, "n@example.com")
    assert response.status_code == 422, why
    assert response.json()["detail"]


def test_a_name_typed_in_decomposed_hangul_is_the_same_name(client: TestClient) -> None:
    composed, decomposed = "민지", unicodedata.normalize("NFD", "민지")
    assert composed != decomposed
    first = sign_up(client, decomposed, "a@example.com")
    assert first.status_code == 201
    assert first.json()["name"] == composed
    assert sign_up(client, composed, "b@example.com").status_code == 409


def test_signup_with_a_taken_email_is_a_conflict_whatever_its_case(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/auth/signup",
        json={"name": "newcomer", "email": user.email.upper(), "password": "12345678"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "1234567"),
        ("email", "not-an-email"),
        ("email", "a" * 250 + "@example.com"),
        ("name", "n" * 65),
        ("name", "x"),
        ("name", "min ji"),
        ("name", "minji@example.com"),
        ("name", "<script>"),
        ("name", None),
    ],
    ids=[
        "short-password",
        "bad-email",
        "too-long-email",
        "too-long-name",
        "too-short-name",
        "space-in-name",
        "at-sign-in-name",
        "markup-in-name",
        "null-name",
    ],
)
def test_signup_with_bad_input_is_unprocessable(client: TestClient, field: str, value: object) -> None:
    body = {"name": "minji", "email": "minji@example.com", "password": "12345678", field: value}
    response = client.post(f"{API}/auth/signup", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_signup_with_an_unknown_field_is_unprocessable(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/signup",
        json={"name": "minji", "email": "minji@example.com", "password": "12345678", "is_superuser": True},
    )
    assert response.status_code == 422


def test_signup_accepts_a_korean_name(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": "김민지", "email": "minji@example.com", "password": "12345678"}
    )
    assert response.status_code == 201
    assert response.json()["name"] == "김민지"


# --- login ----------------------------------------------------------------------------------


def test_login_by_name_returns_a_bearer_token_pair(client: TestClient, user: Person) -> None:
    body = login(client, user.name)
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.ACCESS_TOKEN_MINUTES * 60
    assert body["access_token"] and body["refresh_token"]
    assert me(client, bearer(body["access_token"])) == 200


def test_login_by_email_works(client: TestClient, user: Person) -> None:
    body = login(client, user.email.upper())
    assert me(client, bearer(body["access_token"])) == 200


def test_login_name_ignores_case(client: TestClient, user: Person) -> None:
    body = login(client, user.name.upper())
    assert body["token_type"] == "bearer"


def test_login_by_a_full_width_name_finds_the_account(client: TestClient, user: Person) -> None:
    assert me(client, bearer(login(client, full_width(user.name))["access_token"])) == 200


def test_access_token_carries_subject_version_and_expiry(client: TestClient, user: Person) -> None:
    token = login(client, user.name)["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, settings.signing_key, algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert claims["sub"] == str(user.id)
    assert claims["ver"] == 0
    assert claims["exp"] - claims["iat"] == settings.ACCESS_TOKEN_MINUTES * 60


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient, user: Person) -> None:
    wrong_password = client.post(f"{API}/auth/login", data={"username": user.name, "password": "nope-nope"})
    unknown_user = client.post(f"{API}/auth/login", data={"username": "nobody", "password": "nope-nope"})
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["code"] == "invalid_credentials"


class Argon2Spy:
    """Records every Argon2 hash and verify, still doing the real work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[str] = []
        self.verified: list[str] = []
        real_hash, real_verify = Argon2Hasher.hash, Argon2Hasher.verify

        def hash_spy(hasher: Argon2Hasher, password: str, **kwargs: object) -> str:
            self.hashed.append(password)
            return real_hash(hasher, password, **kwargs)

        def verify_spy(hasher: Argon2Hasher, password: str, hash: str) -> bool:
            self.verified.append(hash)
            return real_verify(hasher, password, hash)

        monkeypatch.setattr(Argon2Hasher, "hash", hash_spy)
        monkeypatch.setattr(Argon2Hasher, "verify", verify_spy)


def cost_of(argon2_hash: str) -> str:
    return argon2_hash.split("$")[3]  # "m=...,t=...,p=..."


def test_login_of_an_unknown_user_verifies_against_a_dummy_hash_of_the_same_cost(
    client: TestClient, user: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell whether an account exists: an unknown name costs one real Argon2
    verification with the same parameters as a real account's hash."""
    argon2 = Argon2Spy(monkeypatch)
    client.post(f"{API}/auth/login", data={"username": user.name, "password": "nope-nope"})
    client.post(f"{API}/auth/login", data={"username": "nobody", "password": "nope-nope"})
    real_hash, dummy_hash = argon2.verified
    assert dummy_hash.startswith("$argon2id$") and dummy_hash != real_hash
    assert cost_of(dummy_hash) == cost_of(real_hash)


def test_the_dummy_hash_is_made_at_startup_not_by_the_first_unknown_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    security._dummy_hash.cache_clear()
    with TestClient(app) as fresh_client:
        argon2 = Argon2Spy(monkeypatch)
        fresh_client.post(f"{API}/auth/login", data={"username": "nobody", "password": "nope-nope"})
    assert argon2.hashed == []
    assert len(argon2.verified) == 1


def test_an_account_without_a_usable_password_costs_a_dummy_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argon2 = Argon2Spy(monkeypatch)
    assert security.verify_password("anything", security.unusable_password_hash()) is False
    assert len(argon2.verified) == 1
    assert argon2.verified[0].startswith("$argon2id$")


def test_banned_user_with_the_right_password_is_forbidden(client: TestClient, make_user: MakeUser) -> None:
    banned = make_user("banned", is_banned=True)
    response = client.post(f"{API}/auth/login", data={"username": banned.name, "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["code"] == "banned"


def test_banned_user_with_a_wrong_password_learns_nothing_of_the_ban(
    client: TestClient, make_user: MakeUser
) -> None:
    banned = make_user("banned", is_banned=True)
    response = client.post(f"{API}/auth/login", data={"username": banned.name, "password": "nope-nope"})
    assert response.status_code == 401


def test_banned_users_existing_access_token_is_refused(
    client: TestClient, user: Person, admin: Person
) -> None:
    assert me(client, user.headers) == 200
    ban = client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
    assert ban.status_code == 200
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "banned"


def test_banned_users_refresh_token_is_refused(client: TestClient, user: Person, admin: Person) -> None:
    refresh_token = login(client, user.name)["refresh_token"]
    client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 403


def test_login_needs_username_and_password_fields(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "minji"})
    assert response.status_code == 422


# --- refresh and logout ---------------------------------------------------------------------


def test_refresh_returns_a_new_working_pair(client: TestClient, user: Person) -> None:
    first = login(client, user.name)
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["token_type"] == "bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert me(client, bearer(second["access_token"])) == 200
    again = client.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 200


def test_a_rotated_refresh_token_is_refused(client: TestClient, user: Person) -> None:
    old = login(client, user.name)["refresh_token"]
    client.post(f"{API}/auth/refresh", json={"refresh_token": old})
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": old})
    assert response.status_code == 401
    assert response.json()["code"] == "refresh_token_reused"


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client: TestClient, user: Person) -> None:
    old = login(client, user.name)["refresh_token"]
    newer = client.post(f"{API}/auth/refresh", json={"refresh_token": old}).json()["refresh_token"]
    client.post(f"{API}/auth/refresh", json={"refresh_token": old})  # the thief, or the victim
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": newer})
    assert response.status_code == 401


def test_reuse_of_a_rotated_refresh_token_ends_every_session_of_the_user(
    client: TestClient, user: Person
) -> None:
    """A reused refresh token leaked, and nobody knows since when: the access token of the
    pair it was traded for, and every other device's tokens, stop working too."""
    phone = login(client, user.name)
    laptop = login(client, user.name)
    rotated = client.post(f"{API}/auth/refresh", json={"refresh_token": phone["refresh_token"]}).json()
    reuse = client.post(f"{API}/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert reuse.json()["code"] == "refresh_token_reused"
    for headers in (bearer(rotated["access_token"]), bearer(laptop["access_token"]), user.headers):
        assert me(client, headers) == 401
    for refresh_token in (rotated["refresh_token"], laptop["refresh_token"]):
        assert client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
    assert me(client, bearer(login(client, user.name)["access_token"])) == 200  # a new login works


def test_an_expired_refresh_token_is_refused(client: TestClient, user: Person) -> None:
    refresh_token = login(client, user.name)["refresh_token"]
    with SessionLocal() as session:
        session.execute(update(RefreshToken).values(expires_date=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


def test_an_unknown_refresh_token_is_refused(client: TestClient) -> None:
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401


def test_refresh_tokens_are_stored_hashed(client: TestClient, user: Person) -> None:
    refresh_token = login(client, user.name)["refresh_token"]
    with SessionLocal() as session:
        stored = session.query(RefreshToken).one().token_hash
    assert stored != refresh_token and refresh_token not in stored


def test_logout_revokes_the_refresh_token(client: TestClient, user: Person) -> None:
    refresh_token = login(client, user.name)["refresh_token"]
    assert client.post(f"{API}/auth/logout", json={"refresh_token": refresh_token}).status_code == 204
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401


def test_logout_with_an_unknown_token_still_answers_204(client: TestClient) -> None:
    assert client.post(f"{API}/auth/logout", json={"refresh_token": "made-up"}).status_code == 204


# --- access token hygiene -------------------------------------------------------------------


def test_an_expired_access_token_is_refused(client: TestClient, user: Person) -> None:
    past = utcnow() - timedelta(hours=1)
    token = jwt.encode(
        access_claims(user.id, iat=past, exp=past + timedelta(minutes=5)), settings.signing_key, "HS256"
    )
    response = client.get(f"{API}/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_a_token_signed_with_another_key_is_refused(client: TestClient, user: Person) -> None:
    token = jwt.encode(access_claims(user.id), "another-key-that-is-also-long-enough-for-hs256", "HS256")
    assert me(client, bearer(token)) == 401


def test_an_unsigned_alg_none_token_is_refused(client: TestClient, user: Person) -> None:
    token = jwt.encode(access_claims(user.id), key=None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert me(client, bearer(token)) == 401


def test_a_refresh_token_is_not_an_access_token(client: TestClient, user: Person) -> None:
    refresh_token = login(client, user.name)["refresh_token"]
    assert me(client, bearer(refresh_token)) == 401


def test_a_signed_token_of_another_type_is_refused(client: TestClient, user: Person) -> None:
    token = jwt.encode(access_claims(user.id, type="password-reset"), settings.signing_key, "HS256")
    assert me(client, bearer(token)) == 401


def test_a_token_without_a_version_is_refused(client: TestClient, user: Person) -> None:
    claims = access_claims(user.id)
    del claims["ver"]
    assert me(client, bearer(jwt.encode(claims, settings.signing_key, "HS256"))) == 401


def test_a_token_of_an_older_token_version_is_refused(client: TestClient, user: Person) -> None:
    with SessionLocal() as session:
        session.execute(update(User).where(User.id == user.id).values(token_version=User.token_version + 1))
        session.commit()
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_a_token_of_a_user_that_does_not_exist_is_refused(client: TestClient) -> None:
    token = jwt.encode(access_claims(123456), settings.signing_key, "HS256")
    assert me(client, bearer(token)) == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic bWluamk6c2VjcmV0"},
        {"Authorization": "Bearer a.b.c"},
    ],
    ids=["missing", "garbage", "empty", "basic-scheme", "three-junk-parts"],
)
def test_missing_or_garbage_authorization_is_401_with_www_authenticate(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get(f"{API}/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


# --- profile --------------------------------------------------------------------------------


def test_read_me_shows_my_profile(client: TestClient, user: Person) -> None:
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.id
    assert body["name"] == user.name
    assert body["email"] == user.email
    assert set(body) == {"id", "name", "email", "join_date", "is_superuser", "is_banned"}


def test_update_me_changes_name_and_email(client: TestClient, user: Person) -> None:
    response = client.patch(
        f"{API}/users/me",
        json={"name": "minji2", "email": "New@Example.com", "password": PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["name"] == "minji2"
    assert response.json()["email"] == "new@example.com"
    assert client.get(f"{API}/users/me", headers=user.headers).json()["name"] == "minji2"


def test_update_me_with_only_one_field_keeps_the_other(client: TestClient, user: Person) -> None:
    response = client.patch(f"{API}/users/me", json={"name": "minji2"}, headers=user.headers)
    assert response.json()["email"] == user.email


def test_update_me_may_change_the_case_of_my_own_name(client: TestClient, user: Person) -> None:
    response = client.patch(f"{API}/users/me", json={"name": "MinJi"}, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["name"] == "MinJi"


def test_update_me_to_a_taken_name_is_a_conflict(
    client: TestClient, user: Person, other_user: Person
) -> None:
    response = client.patch(f"{API}/users/me", json={"name": other_user.name.upper()}, headers=user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"


def test_update_me_to_a_taken_email_is_a_conflict(
    client: TestClient, user: Person, other_user: Person
) -> None:
    response = client.patch(
        f"{API}/users/me", json={"email": other_user.email, "password": PASSWORD}, headers=user.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize("field", ["name", "email"])
def test_update_me_with_an_explicit_null_is_unprocessable(
    client: TestClient, user: Person, field: str
) -> None:
    response = client.patch(f"{API}/users/me", json={field: None}, headers=user.headers)
    assert response.status_code == 422


def test_update_me_cannot_make_me_an_administrator(client: TestClient, user: Person) -> None:
    response = client.patch(f"{API}/users/me", json={"is_superuser": True}, headers=user.headers)
    assert response.status_code == 422


def test_update_me_needs_a_token(client: TestClient) -> None:
    assert client.patch(f"{API}/users/me", json={"name": "x"}).status_code == 401


# --- password change ------------------------------------------------------------------------


def change_password(client: TestClient, person: Person, current: str = PASSWORD) -> int:
    response = client.put(
        f"{API}/users/me/password",
        json={"current_password": current, "new_password": NEW_PASSWORD},
        headers=person.headers,
    )
    return response.status_code


def test_password_change_answers_204(client: TestClient, user: Person) -> None:
    assert change_password(client, user) == 204


def test_password_change_ends_every_earlier_token(client: TestClient, user: Person) -> None:
    pair = login(client, user.name)
    change_password(client, user)
    assert me(client, user.headers) == 401
    assert me(client, bearer(pair["access_token"])) == 401
    refresh = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401


def test_after_a_password_change_only_the_new_password_logs_in(client: TestClient, user: Person) -> None:
    change_password(client, user)
    old = client.post(f"{API}/auth/login", data={"username": user.name, "password": PASSWORD})
    assert old.status_code == 401
    assert me(client, bearer(login(client, user.name, NEW_PASSWORD)["access_token"])) == 200


def test_password_change_with_a_wrong_current_password_is_a_bad_request(
    client: TestClient, user: Person
) -> None:
    response = client.put(
        f"{API}/users/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "wrong_password"
    assert me(client, user.headers) == 200


def test_password_change_to_a_short_password_is_unprocessable(client: TestClient, user: Person) -> None:
    response = client.put(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=user.headers,
    )
    assert response.status_code == 422
