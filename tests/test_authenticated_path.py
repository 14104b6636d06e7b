"""What an authenticated request costs: one SQL statement for the user, no password hashing."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import IntegrityError

from config import settings
from crud import users as users_crud
from database import SessionLocal, engine
from models import User
from tests.conftest import IS_MARIADB, Person

pytestmark = pytest.mark.db  # statements counted; the unique index that ignores case

API = settings.API_PREFIX
# Transaction bookkeeping, should a driver ever send it as a statement; it is not a query.
BOOKKEEPING = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent through the engine while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def queries(statements: list[str]) -> list[str]:
    return [s for s in statements if not s.lstrip().upper().startswith(BOOKKEEPING)]


def test_an_authenticated_request_costs_one_statement(
    client: TestClient, user: Person, statements: list[str]
) -> None:
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200
    (query,) = queries(statements)
    assert query.lstrip().upper().startswith("SELECT")
    assert "user" in query.lower()


def test_a_refused_token_costs_no_statement(client: TestClient, statements: list[str]) -> None:
    response = client.get(f"{API}/users/me", headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 401
    assert statements == []


def test_an_authenticated_request_computes_no_password_hash(
    client: TestClient, user: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def spy(*_: Any, **__: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"Argon2 {name} on the authenticated path")

        return spy

    monkeypatch.setattr(Argon2Hasher, "hash", refuse("hash"))
    monkeypatch.setattr(Argon2Hasher, "verify", refuse("verify"))
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200
    assert calls == []


def test_login_by_name_is_an_index_lookup(user: Person) -> None:
    """A login by name must not scan every user: the name's unique index serves it, ignoring case,
    on both backends (the column's collation, not LOWER(), does the case)."""
    with SessionLocal() as session:
        query = select(User.id).where(users_crud.name_is("MINJI"))
        sql = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        if IS_MARIADB:
            plan = session.execute(text(f"EXPLAIN {sql}")).mappings().one()
            assert plan["key"] == "uq_user_name"
            assert plan["type"] in ("const", "eq_ref", "ref")
        else:
            steps = [row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
            assert len(steps) == 1
            assert steps[0].startswith("SEARCH user USING COVERING INDEX"), steps
        assert session.scalar(query) is not None  # "MINJI" finds minji


def test_the_database_itself_refuses_a_name_differing_only_in_case(user: Person) -> None:
    """Two sign-ups close together both pass the service's check; the unique index is the last
    word, on SQLite as on MariaDB."""
    with SessionLocal() as session, pytest.raises(IntegrityError):
        session.execute(
            insert(User).values(name=user.name.upper(), email="twin@example.com", password_hash="!x")
        )
        session.flush()
