"""`python cli.py create-superuser`: the only way to make an administrator."""

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

import models
from cli import app as cli_app
from config import BASE_DIR, settings
from database import SessionLocal
from tests.conftest import TEST_DATABASE_URL, MakeUser

# accounts written and names unique ignoring case, through a process of its own too
pytestmark = pytest.mark.db

API = settings.API_PREFIX
PASSWORD = "a long admin secret"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli_app, ["create-superuser", *args], input=input)


def create_with_stdin(
    name: str = "boss", email: str = "boss@example.com", password: str = PASSWORD
) -> Result:
    return run("--name", name, "--email", email, "--password-stdin", input=f"{password}\n")


def stored_user(name: str) -> models.User | None:
    with SessionLocal() as session:
        return session.scalar(select(models.User).where(models.User.name == name))


def user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(models.User)) or 0


def login(client: TestClient, name: str, password: str) -> dict[str, str]:
    response = client.post(f"{API}/auth/login", data={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_create_superuser_with_password_from_stdin_makes_an_administrator() -> None:
    result = create_with_stdin()
    assert result.exit_code == 0, result.output
    assert "administrator boss" in result.output
    created = stored_user("boss")
    assert created is not None
    assert created.is_superuser is True
    assert created.email == "boss@example.com"


def test_created_administrator_can_log_in_and_call_the_admin_api(client: TestClient) -> None:
    create_with_stdin()
    headers = login(client, "boss", PASSWORD)
    response = client.get(f"{API}/admin/users", headers=headers)
    assert response.status_code == 200
    assert [item["name"] for item in response.json()["items"]] == ["boss"]


def test_create_superuser_asks_for_the_password_twice() -> None:
    result = run("--name", "boss", "--email", "boss@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1
    assert "Repeat for confirmation" in result.output
    assert stored_user("boss") is not None


def test_interactive_password_is_not_echoed() -> None:
    result = run("--name", "boss", "--email", "boss@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert PASSWORD not in result.output


def test_create_superuser_asks_for_name_and_email_when_not_given(client: TestClient) -> None:
    result = run(input=f"boss\nboss@example.com\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    login(client, "boss@example.com", PASSWORD)


def test_mismatched_passwords_are_refused() -> None:
    result = run("--name", "boss", "--email", "boss@example.com", input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert user_count() == 0


@pytest.mark.parametrize("password", ["short", ""])
def test_short_password_is_refused(password: str) -> None:
    result = create_with_stdin(password=password)
    assert result.exit_code == 2
    assert user_count() == 0


@pytest.mark.parametrize("email", ["not-an-email", "boss@", "a" * 250 + "@example.com"])
def test_bad_email_is_refused(email: str) -> None:
    result = create_with_stdin(email=email)
    assert result.exit_code == 2
    assert user_count() == 0


@pytest.mark.parametrize("name", ["x", "has space", "semi;colon", "n" * 65])
def test_bad_name_is_refused(name: str) -> None:
    result = create_with_stdin(name=name)
    assert result.exit_code == 2
    assert user_count() == 0


def test_taken_name_is_refused(make_user: MakeUser) -> None:
    make_user("boss", email="someone@example.com")
    result = create_with_stdin(name="BOSS")
    assert result.exit_code == 1
    assert "taken" in result.output
    assert user_count() == 1
    assert stored_user("boss").is_superuser is False  # type: ignore[union-attr]


def test_taken_email_is_refused(make_user: MakeUser) -> None:
    make_user("someone", email="boss@example.com")
    result = create_with_stdin(email="Boss@Example.com")
    assert result.exit_code == 1
    assert "taken" in result.output
    assert user_count() == 1


def test_promote_makes_an_existing_user_an_administrator(client: TestClient, make_user: MakeUser) -> None:
    person = make_user("minji")
    result = run("--name", "minji", "--promote")
    assert result.exit_code == 0, result.output
    assert stored_user("minji").is_superuser is True  # type: ignore[union-attr]
    assert client.get(f"{API}/admin/users", headers=person.headers).status_code == 200


def test_promote_asks_for_no_password(make_user: MakeUser) -> None:
    make_user("minji")
    result = run("--name", "minji", "--promote", input="")
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output


def test_promoting_an_unknown_user_is_refused() -> None:
    result = run("--name", "nobody", "--promote")
    assert result.exit_code == 1
    assert "no user named nobody" in result.output


def test_cli_script_creates_an_administrator_as_documented(client: TestClient) -> None:
    """The real script in a real process, as the README tells an operator to run it."""
    env = {
        **os.environ,
        "DATABASE_URL": TEST_DATABASE_URL,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "PASSWORD_HASH_PARALLELISM": "1",
    }
    completed = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "create-superuser",
            "--name",
            "boss",
            "--email",
            "boss@example.com",
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "administrator boss" in completed.stdout
    headers = login(client, "boss", PASSWORD)
    assert client.get(f"{API}/admin/users", headers=headers).status_code == 200
