"""Tokens the app did not issue, or no longer honours, open nothing: neither a REST endpoint
(401 with {"detail", "code"} and `WWW-Authenticate: Bearer`) nor the live socket (closed with
4401), as docs/security.md says. The bad tokens are built here with PyJWT, next to a control: the
same construction, unmodified, is accepted, so each refusal is the bad part's doing.

A ban is the one refusal with its own answer: 403 "banned" on REST, 4403 on the socket.
"""

import base64
import json
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from jwt.warnings import InsecureKeyLengthWarning

from config import settings
from database import SessionLocal, utcnow
from models import PasswordResetToken
from services import security
from tests.chat_support import SocketClosed, live_socket
from tests.conftest import PASSWORD, Person

API = settings.API_PREFIX
# An administrator's endpoint: a forged token naming an administrator must not open it.
ADMIN_ENDPOINT = f"{API}/admin/users"
ANOTHER_KEY = "another-secret-key-that-is-long-enough-for-hs256"
SOCKET_READY = "ready"


def claims_of(person: Person, **changes: Any) -> dict[str, Any]:
    """The claims the app puts in an access token (services/security.py), with changes; a
    change to None drops the claim."""
    now = utcnow()
    claims = {
        "sub": str(person.id),
        "ver": 0,
        "type": security.ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + timedelta(minutes=settings.ACCESS_TOKEN_MINUTES),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], *, key: str | None = None, algorithm: str = security.JWT_ALGORITHM) -> str:
    with warnings.catch_warnings():  # HS512 would like a longer key; the app refuses HS512 anyway
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key or settings.signing_key, algorithm=algorithm)


def base64url(data: dict[str, Any]) -> str:
    text = json.dumps(data, default=lambda value: int(value.timestamp()))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`: a header, the claims and an empty signature."""
    return f"{base64url({'alg': 'none', 'typ': 'JWT'})}.{base64url(claims)}."


def with_claims_of(token: str, claims: dict[str, Any]) -> str:
    """A genuine token whose claims were swapped for others, its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{base64url(claims)}.{signature}"


Forgery = Callable[[Person], str]

FORGERIES: dict[str, Forgery] = {
    "alg none": lambda admin: unsigned(claims_of(admin)),
    "signed with another key": lambda admin: signed(claims_of(admin), key=ANOTHER_KEY),
    "an algorithm the app does not accept (HS512)": lambda admin: signed(claims_of(admin), algorithm="HS512"),
    "expired": lambda admin: signed(
        claims_of(admin, iat=utcnow() - timedelta(hours=2), exp=utcnow() - timedelta(hours=1))
    ),
    "not valid yet (nbf)": lambda admin: signed(claims_of(admin, nbf=utcnow() + timedelta(hours=1))),
    "claims swapped under a genuine signature": lambda admin: with_claims_of(
        signed(claims_of(admin, sub="999999")), claims_of(admin)
    ),
    "of another type (typ refresh)": lambda admin: signed(claims_of(admin, type="refresh")),
    "without a type": lambda admin: signed(claims_of(admin, type=None)),
    "for another audience": lambda admin: signed(claims_of(admin, aud="another-service")),
    "without a subject": lambda admin: signed(claims_of(admin, sub=None)),
    "a subject that is no user id": lambda admin: signed(claims_of(admin, sub="root_admin")),
    "without a token version": lambda admin: signed(claims_of(admin, ver=None)),
    "without an expiry": lambda admin: signed(claims_of(admin, exp=None)),
    "a token version the user never had": lambda admin: signed(claims_of(admin, ver=7)),
    "for a user who does not exist": lambda admin: signed(claims_of(admin, sub="999999")),
    "malformed: not a JWT": lambda admin: "not-a-token",
    "malformed: three junk parts": lambda admin: "a.b.c",
    "malformed: a cut-off token": lambda admin: signed(claims_of(admin))[:-10],
}


def assert_refused_as_unauthenticated(response: Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] != "banned"
    assert response.headers.get("WWW-Authenticate") == "Bearer"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(person: Person) -> str:
    return person.headers["Authorization"].removeprefix("Bearer ")


def socket_answer(client: TestClient, token: str) -> str | int:
    """SOCKET_READY when the socket signs the token's user in, else the code it closes with."""
    with live_socket(client, token=token) as socket:
        if token and socket.closed_early is None:
            return SOCKET_READY
        return socket.expect_close().code


# --- tokens the app never issued ------------------------------------------------------------


def test_a_token_built_as_the_app_builds_them_is_accepted(client: TestClient, admin: Person) -> None:
    token = signed(claims_of(admin))
    assert client.get(ADMIN_ENDPOINT, headers=bearer(token)).status_code == 200
    assert socket_answer(client, token) == SOCKET_READY


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_or_broken_token_is_refused_on_rest(
    client: TestClient, admin: Person, forge: Forgery
) -> None:
    assert_refused_as_unauthenticated(client.get(ADMIN_ENDPOINT, headers=bearer(forge(admin))))


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_or_broken_token_closes_the_socket_with_4401(
    client: TestClient, admin: Person, forge: Forgery
) -> None:
    assert socket_answer(client, forge(admin)) == 4401


def auth_answer(client: TestClient, person: Person, token: str) -> str | int:
    """What a socket signed in as `person` answers an `auth` event carrying `token`: "auth.ok",
    the error event's code (the socket still open and answering), or the code it closes with."""
    with live_socket(client, person) as socket:
        socket.send({"type": "auth", "token": token})
        try:
            event = socket.next_event()
        except SocketClosed as closed:
            return closed.code
        if event["type"] == "error":
            socket.assert_quiet()
            return str(event["code"])
        return str(event["type"])


def test_a_token_built_as_the_app_builds_them_is_accepted_in_an_auth_event(
    client: TestClient, admin: Person
) -> None:
    assert auth_answer(client, admin, signed(claims_of(admin))) == "auth.ok"


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_or_broken_token_in_an_auth_event_is_refused(
    client: TestClient, admin: Person, forge: Forgery
) -> None:
    """Refused as on the handshake: an error event (the socket keeps its deadline), or 4401
    for a genuine signature naming another account."""
    assert auth_answer(client, admin, forge(admin)) in {
        "invalid_token",
        "token_expired",
        "token_revoked",
        4401,
    }


def test_an_expired_token_says_so(client: TestClient, user: Person) -> None:
    response = client.get(f"{API}/users/me", headers=bearer(FORGERIES["expired"](user)))
    assert_refused_as_unauthenticated(response)
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize(
    "authorization",
    ["Basic cm9vdF9hZG1pbjpzZWNyZXQ=", "Bearer", "{token}", "Token {token}"],
    ids=["basic scheme", "bearer without a token", "no scheme", "another scheme"],
)
def test_a_token_not_sent_as_a_bearer_token_is_refused(
    client: TestClient, admin: Person, authorization: str
) -> None:
    headers = {"Authorization": authorization.format(token=token_of(admin))}
    assert_refused_as_unauthenticated(client.get(ADMIN_ENDPOINT, headers=headers))


def test_a_socket_without_a_token_is_closed_with_4401(client: TestClient) -> None:
    assert socket_answer(client, "") == 4401


# --- tokens the app issued and no longer honours ------------------------------------------------


def login(client: TestClient, person: Person, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post(f"{API}/auth/login", data={"username": person.name, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_refresh_token_is_not_an_access_token(client: TestClient, user: Person) -> None:
    refresh_token = login(client, user)["refresh_token"]
    assert_refused_as_unauthenticated(client.get(f"{API}/users/me", headers=bearer(refresh_token)))
    assert socket_answer(client, refresh_token) == 4401


def test_an_access_token_is_not_a_refresh_token(client: TestClient, user: Person) -> None:
    access_token = login(client, user)["access_token"]
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": access_token})
    assert_refused_as_unauthenticated(response)


def test_a_token_from_before_a_password_change_is_refused(client: TestClient, user: Person) -> None:
    change = client.put(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=user.headers,
    )
    assert change.status_code == 204
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert_refused_as_unauthenticated(response)
    assert response.json()["code"] == "token_revoked"
    assert socket_answer(client, token_of(user)) == 4401


def test_a_token_from_before_a_password_reset_is_refused(client: TestClient, user: Person) -> None:
    code = security.new_opaque_token()
    with SessionLocal() as session:
        now = utcnow()
        session.add(
            PasswordResetToken(
                user_id=user.id,
                token_hash=security.hash_opaque_token(code),
                create_date=now,
                expires_date=now + timedelta(minutes=settings.PASSWORD_RESET_MINUTES),
            )
        )
        session.commit()
    reset = client.post(
        f"{API}/auth/password-reset/confirm", json={"token": code, "new_password": "a brand new secret"}
    )
    assert reset.status_code == 204
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert_refused_as_unauthenticated(response)
    assert response.json()["code"] == "token_revoked"
    assert socket_answer(client, token_of(user)) == 4401


def test_a_refresh_token_reuse_closes_the_users_open_sockets_with_4401(
    client: TestClient, user: Person
) -> None:
    stolen = login(client, user)["refresh_token"]
    assert client.post(f"{API}/auth/refresh", json={"refresh_token": stolen}).status_code == 200
    with live_socket(client, user) as socket:
        socket.assert_quiet()
        reuse = client.post(f"{API}/auth/refresh", json={"refresh_token": stolen})
        assert reuse.json()["code"] == "refresh_token_reused"
        assert socket.expect_close().code == 4401
    assert socket_answer(client, token_of(user)) == 4401


def test_a_deleted_users_token_is_refused(client: TestClient, user: Person) -> None:
    deletion = client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=user.headers)
    assert deletion.status_code == 204
    assert_refused_as_unauthenticated(client.get(f"{API}/users/me", headers=user.headers))
    assert socket_answer(client, token_of(user)) == 4401


def test_a_banned_users_token_is_refused_as_banned(client: TestClient, user: Person, admin: Person) -> None:
    ban = client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
    assert ban.status_code == 200
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "this account is banned", "code": "banned"},
    )
    assert socket_answer(client, token_of(user)) == 4403
