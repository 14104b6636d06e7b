"""Password reset by mail: a single-use, 30-minute code sent through a real SMTP server."""

import email
import email.policy
import logging
import re
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from config import settings
from database import SessionLocal, utcnow
from models import PasswordResetToken
from services import mail
from tests.conftest import PASSWORD, Mailbox, MakeUser, Person

pytestmark = pytest.mark.db  # reset codes stored hashed and compared by stored dates

API = settings.API_PREFIX
NEW_PASSWORD = "a brand new secret"
TOKEN_LINE = re.compile(r"^([A-Za-z0-9_-]{43})\r?$", re.MULTILINE)  # mail lines end in CRLF


@dataclass
class Outbox:
    """Every mail the server hands to the sender, with the future of its delivery."""

    sent: list[tuple[str, Future[None]]] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return [to for to, _ in self.sent]

    def wait_until_delivered(self) -> None:
        for _, delivery in self.sent:
            delivery.result(timeout=5)


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box = Outbox()
    real_send_later = mail.send_later

    def recording_send_later(to: str, subject: str, body: str) -> Future[None]:
        delivery = real_send_later(to, subject, body)
        box.sent.append((to, delivery))
        return delivery

    monkeypatch.setattr(mail, "send_later", recording_send_later)
    return box


def ask_reset(client: TestClient, address: str) -> object:
    return client.post(f"{API}/auth/password-reset", json={"email": address})


def confirm(client: TestClient, token: str, new_password: str = NEW_PASSWORD) -> int:
    response = client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    return response.status_code


def login_status(client: TestClient, person: Person, password: str) -> int:
    return client.post(f"{API}/auth/login", data={"username": person.name, "password": password}).status_code


def parse(raw: str) -> email.message.EmailMessage:
    return email.message_from_string(raw, policy=email.policy.default)  # type: ignore[return-value]


def token_in(raw: str) -> str:
    body = parse(raw).get_body(preferencelist=("plain",))
    assert body is not None
    match = TOKEN_LINE.search(body.get_content())
    assert match, "no reset code in the mail"
    return match.group(1)


def mailed_token(client: TestClient, smtp_server: Mailbox, person: Person) -> str:
    ask_reset(client, person.email)
    return token_in(smtp_server.wait_for(1)[0])


def test_reset_request_answers_202_with_the_same_body_for_known_and_unknown_addresses(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    known = ask_reset(client, user.email)
    unknown = ask_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert known.json()["detail"]


def test_reset_mail_reaches_the_smtp_server_with_a_code(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    ask_reset(client, user.email)
    message = parse(smtp_server.wait_for(1)[0])
    assert message["To"] == user.email
    assert message["From"] == settings.MAIL_FROM
    assert token_in(smtp_server.messages[0])


def test_reset_request_address_is_matched_ignoring_case(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    ask_reset(client, user.email.upper())
    assert parse(smtp_server.wait_for(1)[0])["To"] == user.email


def test_no_mail_is_sent_for_an_unknown_address(client: TestClient, outbox: Outbox) -> None:
    assert ask_reset(client, "nobody@example.com").status_code == 202
    assert outbox.recipients == []


def test_no_mail_is_sent_to_a_banned_user(client: TestClient, make_user: MakeUser, outbox: Outbox) -> None:
    banned = make_user("banned", is_banned=True)
    assert ask_reset(client, banned.email).status_code == 202
    assert outbox.recipients == []


def test_without_smtp_host_the_mail_is_written_to_the_log(
    client: TestClient, user: Person, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.SMTP_HOST == ""
    caplog.set_level(logging.INFO, logger="madang.mail")
    ask_reset(client, user.email)
    outbox.wait_until_delivered()
    logged = [r.getMessage() for r in caplog.records if r.name == "madang.mail"]
    assert len(logged) == 1
    assert user.email in logged[0]
    assert TOKEN_LINE.search(logged[0])


def test_reset_tokens_are_stored_hashed(client: TestClient, user: Person, smtp_server: Mailbox) -> None:
    token = mailed_token(client, smtp_server, user)
    with SessionLocal() as session:
        stored = session.scalars(select(PasswordResetToken.token_hash)).one()
    assert token not in stored


def test_reset_token_is_valid_for_thirty_minutes(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    mailed_token(client, smtp_server, user)
    with SessionLocal() as session:
        stored = session.scalars(select(PasswordResetToken)).one()
    assert stored.expires_date - stored.create_date == timedelta(minutes=30)


def test_confirming_with_the_mailed_code_sets_the_new_password(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    token = mailed_token(client, smtp_server, user)
    assert confirm(client, token) == 204
    assert login_status(client, user, NEW_PASSWORD) == 200


def test_a_code_mailed_before_a_ban_cannot_change_the_banned_users_password(
    client: TestClient, user: Person, admin: Person, smtp_server: Mailbox
) -> None:
    token = mailed_token(client, smtp_server, user)
    client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": True}, headers=admin.headers)
    assert confirm(client, token) == 403
    client.patch(f"{API}/admin/users/{user.id}", json={"is_banned": False}, headers=admin.headers)
    assert login_status(client, user, PASSWORD) == 200


def test_after_a_reset_the_old_password_fails(client: TestClient, user: Person, smtp_server: Mailbox) -> None:
    confirm(client, mailed_token(client, smtp_server, user))
    assert login_status(client, user, PASSWORD) == 401


def test_a_reset_ends_every_token_issued_before_it(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    pair = client.post(f"{API}/auth/login", data={"username": user.name, "password": PASSWORD}).json()
    confirm(client, mailed_token(client, smtp_server, user))
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get(f"{API}/users/me", headers=bearer).status_code == 401
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 401
    refresh = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401


def test_a_reset_code_works_only_once(client: TestClient, user: Person, smtp_server: Mailbox) -> None:
    token = mailed_token(client, smtp_server, user)
    assert confirm(client, token) == 204
    response = client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_reset_token"
    assert login_status(client, user, NEW_PASSWORD) == 200


def test_a_reset_voids_the_users_other_outstanding_codes(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    ask_reset(client, user.email)
    ask_reset(client, user.email)
    first, second = (token_in(raw) for raw in smtp_server.wait_for(2))
    assert confirm(client, first) == 204
    assert confirm(client, second, "yet another one") == 400


def test_an_expired_reset_code_is_refused(client: TestClient, user: Person, smtp_server: Mailbox) -> None:
    token = mailed_token(client, smtp_server, user)
    with SessionLocal() as session:
        session.execute(update(PasswordResetToken).values(expires_date=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert confirm(client, token) == 400
    assert login_status(client, user, PASSWORD) == 200


def test_an_unknown_reset_code_is_refused(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/password-reset/confirm", json={"token": "made-up", "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_short_new_password_is_unprocessable_and_keeps_the_code_usable(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    token = mailed_token(client, smtp_server, user)
    assert confirm(client, token, "short") == 422
    assert confirm(client, token) == 204


def test_reset_request_with_a_bad_address_is_unprocessable(client: TestClient) -> None:
    assert ask_reset(client, "not-an-address").status_code == 422


def test_a_password_change_voids_the_pending_reset_codes(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    token = mailed_token(client, smtp_server, user)
    change = client.put(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert change.status_code == 204
    assert confirm(client, token, "a thiefs new password") == 400
    assert login_status(client, user, NEW_PASSWORD) == 200


def test_an_email_change_voids_the_reset_codes_mailed_to_the_old_address(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    token = mailed_token(client, smtp_server, user)
    change = client.patch(
        f"{API}/users/me", json={"email": "new.minji@example.org", "password": PASSWORD}, headers=user.headers
    )
    assert change.status_code == 200
    assert confirm(client, token) == 400
    assert login_status(client, user, PASSWORD) == 200
