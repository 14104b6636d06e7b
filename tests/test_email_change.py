"""PATCH /users/me with a new email: whoever holds only an access token cannot take the account.
The current password must come in the same body, the old address is told, and reset codes
mailed to the old address stop working."""

import email
import email.policy
from concurrent.futures import Future

import pytest
from fastapi.testclient import TestClient

from config import settings
from services import mail
from tests.conftest import PASSWORD, Mailbox, Person

pytestmark = pytest.mark.db  # emails unique ignoring case

API = settings.API_PREFIX
NEW_ADDRESS = "new.minji@example.org"


def change_me(client: TestClient, person: Person, **body: str) -> object:
    return client.patch(f"{API}/users/me", json=body, headers=person.headers)


def my_email(client: TestClient, person: Person) -> str:
    return str(client.get(f"{API}/users/me", headers=person.headers).json()["email"])


def text_of(raw: str) -> str:
    message = email.message_from_string(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


@pytest.fixture
def sent_mail(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The recipients of every mail the server hands to the sender (delivery still happens)."""
    recipients: list[str] = []
    real_send_later = mail.send_later

    def recording_send_later(to: str, subject: str, body: str) -> Future[None]:
        recipients.append(to)
        return real_send_later(to, subject, body)

    monkeypatch.setattr(mail, "send_later", recording_send_later)
    return recipients


def test_a_new_email_without_the_password_is_refused_as_password_required(
    client: TestClient, user: Person
) -> None:
    response = change_me(client, user, email=NEW_ADDRESS)
    assert response.status_code == 422
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "password_required"
    assert my_email(client, user) == user.email


def test_a_new_email_with_a_wrong_password_is_refused(client: TestClient, user: Person) -> None:
    response = change_me(client, user, email=NEW_ADDRESS, password="not my password")
    assert response.status_code == 400
    assert response.json()["code"] == "wrong_password"
    assert my_email(client, user) == user.email


def test_a_taken_address_without_the_password_does_not_say_it_is_taken(
    client: TestClient, user: Person, other_user: Person
) -> None:
    response = change_me(client, user, email=other_user.email)
    assert response.json()["code"] == "password_required"


def test_a_new_email_with_the_password_is_changed_and_logs_in(client: TestClient, user: Person) -> None:
    response = change_me(client, user, email=NEW_ADDRESS.upper(), password=PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == NEW_ADDRESS
    assert my_email(client, user) == NEW_ADDRESS
    login = client.post(f"{API}/auth/login", data={"username": NEW_ADDRESS, "password": PASSWORD})
    assert login.status_code == 200


def test_the_old_address_is_told_of_the_change_with_the_new_one_masked(
    client: TestClient, user: Person, smtp_server: Mailbox
) -> None:
    assert change_me(client, user, email=NEW_ADDRESS, password=PASSWORD).status_code == 200
    raw = smtp_server.wait_for(1)[0]
    message = email.message_from_string(raw, policy=email.policy.default)
    assert message["To"] == user.email
    assert message["From"] == settings.MAIL_FROM
    body = text_of(raw)
    assert "n***@example.org" in body
    assert NEW_ADDRESS not in body


def test_the_name_alone_changes_without_the_password(
    client: TestClient, user: Person, sent_mail: list[str]
) -> None:
    response = change_me(client, user, name="minji.kim")
    assert response.status_code == 200
    assert response.json()["name"] == "minji.kim"
    assert sent_mail == []


def test_my_own_address_again_needs_no_password_and_changes_nothing(
    client: TestClient, user: Person, sent_mail: list[str]
) -> None:
    response = change_me(client, user, email=user.email.upper())
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert sent_mail == []


def test_a_taken_address_with_the_password_is_a_conflict(
    client: TestClient, user: Person, other_user: Person, sent_mail: list[str]
) -> None:
    response = change_me(client, user, email=other_user.email, password=PASSWORD)
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"
    assert my_email(client, user) == user.email
    assert sent_mail == []


def test_the_password_field_is_never_stored_or_echoed(client: TestClient, user: Person) -> None:
    response = change_me(client, user, name="minji.kim", password=PASSWORD)
    assert response.status_code == 200
    assert "password" not in response.json()


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("minji.kim@example.com", "m***@example.com"),
        ("a@example.com", "a***@example.com"),
        ("김민지@예시.한국", "김***@예시.한국"),
    ],
)
def test_an_address_is_masked_to_its_first_letter_and_domain(address: str, masked: str) -> None:
    assert mail.mask_address(address) == masked
