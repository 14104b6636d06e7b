"""Look-alike user names: a name a reader cannot tell from a taken one is taken too (Unicode's
confusable skeleton, UTS #39), on sign-up, on rename and in the administrator CLI; the database's
unique index says the last word. Genuine names of any script still work."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from config import settings
from database import SessionLocal, UTCDateTime, make_engine
from models import User
from names import name_skeleton
from tests.conftest import (
    IS_MARIADB,
    TEST_DATABASE_URL,
    MakeUser,
    Person,
    alembic_config,
    recreate_mariadb_database,
)
from tests.test_cli import create_with_stdin, user_count
from tests.test_migrations import drop_mariadb_database

pytestmark = pytest.mark.db  # the skeleton column, its collation and its migration

API = settings.API_PREFIX
CYRILLIC_A = "\u0430"


def sign_up(client: TestClient, name: str, email: str = "new@example.com") -> tuple[int, str | None]:
    response = client.post(f"{API}/auth/signup", json={"name": name, "email": email, "password": "12345678"})
    return response.status_code, response.json().get("code")


# --- sign-up --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "look_alike"),
    [
        ("admin", f"{CYRILLIC_A}dmin"),  # U+0430 CYRILLIC SMALL LETTER A
        ("admin", "\u0410dmin"),  # U+0410: looks like "Admin", the same name as "admin"
        ("Admin", f"{CYRILLIC_A}dmin"),  # names ignore case, look-alikes too
        ("HOST", "\u041dOST"),  # U+041D; its lower case U+043D looks like no Latin letter
        ("host", "\u041dOST"),
        ("paypal", f"p{CYRILLIC_A}yp{CYRILLIC_A}l"),
        ("Ian", "lan"),  # capital I, small L
        ("minji", "rninji"),  # "rn" reads as "m"
        ("admin", "admin\u200d"),  # an invisible zero-width joiner
        ("minji", "min\u0458i"),  # U+0458 CYRILLIC SMALL LETTER JE
    ],
)
def test_a_look_alike_of_a_taken_name_is_taken(
    client: TestClient, make_user: MakeUser, taken: str, look_alike: str
) -> None:
    make_user(taken, email="taken@example.com")
    assert sign_up(client, look_alike) == (409, "name_taken")
    assert user_count() == 1


@pytest.mark.parametrize("name", ["민지", "minji_민지", "민수", "jisoo", "min.ji", "Мария", "ジス"])
def test_genuine_names_of_any_script_still_sign_up_beside_minji(
    client: TestClient, user: Person, name: str
) -> None:
    assert sign_up(client, name) == (201, None)


def test_an_accent_tells_names_apart_on_every_database(client: TestClient, make_user: MakeUser) -> None:
    """ "lan" and "Ían" share no key ("ĺan" is not "lan"): MariaDB compares the keys exactly, where
    its accent-blind collation of names would take them for one."""
    make_user("lan")
    assert sign_up(client, "\u00cdan") == (201, None)


def test_korean_names_that_differ_by_one_syllable_are_different_names(client: TestClient) -> None:
    assert sign_up(client, "민지", "a@example.com") == (201, None)
    assert sign_up(client, "민수", "b@example.com") == (201, None)
    assert sign_up(client, "민시", "c@example.com") == (201, None)


# --- rename ---------------------------------------------------------------------------------------


def test_renaming_to_a_look_alike_of_another_users_name_is_a_conflict(
    client: TestClient, user: Person, make_user: MakeUser
) -> None:
    make_user("admin")
    response = client.patch(f"{API}/users/me", json={"name": f"{CYRILLIC_A}dmin"}, headers=user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"
    assert client.get(f"{API}/users/me", headers=user.headers).json()["name"] == user.name


def test_renaming_myself_to_a_look_alike_of_my_own_name_is_fine(
    client: TestClient, make_user: MakeUser
) -> None:
    me = make_user("admin")
    response = client.patch(f"{API}/users/me", json={"name": f"{CYRILLIC_A}dmin"}, headers=me.headers)
    assert response.status_code == 200
    assert response.json()["name"] == f"{CYRILLIC_A}dmin"


def test_a_renamed_users_old_look_alikes_are_free_again(client: TestClient, make_user: MakeUser) -> None:
    me = make_user("admin")
    assert client.patch(f"{API}/users/me", json={"name": "minji"}, headers=me.headers).status_code == 200
    assert sign_up(client, f"{CYRILLIC_A}dmin") == (201, None)


# --- the administrator CLI --------------------------------------------------------------------------


def test_create_superuser_refuses_a_look_alike_of_a_taken_name(make_user: MakeUser) -> None:
    make_user("admin", email="someone@example.com")
    result = create_with_stdin(name=f"{CYRILLIC_A}dmin")
    assert result.exit_code == 1
    assert "taken" in result.output
    assert user_count() == 1


# --- deleted accounts' placeholder names ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["d\u0435leted-user-7", "DELETED-USER-7", "deIeted-user-7", "de1eted-user-7"]
)
def test_a_look_alike_of_the_deleted_user_placeholder_is_reserved(client: TestClient, name: str) -> None:
    """Otherwise user 7 could not delete the account later: its placeholder would be taken."""
    status, code = sign_up(client, name)
    assert (status, code) == (422, "invalid_input")


def test_deleted_accounts_placeholders_never_collide(client: TestClient, make_user: MakeUser) -> None:
    people = [make_user() for _ in range(12)]  # ids with 0 and 1, whose skeletons are O and l
    for person in people:
        response = client.request(
            "DELETE", f"{API}/users/me", json={"password": person.password}, headers=person.headers
        )
        assert response.status_code == 204
    with SessionLocal() as session:
        names = set(session.scalars(select(User.name)))
    assert names == {f"deleted-user-{person.id}" for person in people}


# --- the database ---------------------------------------------------------------------------------


def test_the_database_itself_refuses_a_look_alike_name(user: Person) -> None:
    """Two sign-ups close together both pass the service's check; the unique index on the
    skeleton is the last word, as it is for the name."""
    with SessionLocal() as session, pytest.raises(IntegrityError):
        session.execute(insert(User).values(name="m\u0456nji", email="twin@example.com", password_hash="!x"))
        session.flush()


def test_the_skeleton_follows_a_rename_made_through_the_orm(user: Person) -> None:
    with SessionLocal() as session:
        row = session.get(User, user.id)
        assert row is not None
        row.name = "Jisoo"
        session.commit()
        assert row.name_skeleton == name_skeleton("jisoo")


def test_the_skeleton_of_a_name_is_that_of_its_folded_look_alike() -> None:
    assert name_skeleton("admin") == name_skeleton(f"{CYRILLIC_A}dmin") == name_skeleton("Admin")
    assert name_skeleton("admin") == "adrnin"


def test_the_longest_skeleton_fits_its_column_with_room_for_a_migration_suffix() -> None:
    longest = name_skeleton("쮔" * 64)  # one Hangul syllable is up to seven code points
    assert len(longest) == 448
    assert len(longest) + len("#2147483647") <= User.name_skeleton.type.length


# --- migration 0005 -------------------------------------------------------------------------------

# The user table as revision 0004 left it: enough columns to insert rows.
USER_AT_0004 = sa.table(
    "user",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("email", sa.String),
    sa.column("password_hash", sa.String),
    sa.column("join_date", UTCDateTime()),
    sa.column("deleted_date", UTCDateTime()),
)


@pytest.fixture(params=["sqlite", "mariadb"] if IS_MARIADB else ["sqlite"])
def database_at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'at-0004.sqlite3'}"
    else:
        parsed = make_url(TEST_DATABASE_URL)
        url = parsed.set(database=f"{parsed.database}_0005").render_as_string(hide_password=False)
        recreate_mariadb_database(url)
    command.upgrade(alembic_config(url), "0004")
    yield url
    if request.param == "mariadb":
        drop_mariadb_database(url)


def test_migration_0005_gives_existing_users_unique_skeletons(database_at_0004: str) -> None:
    now = datetime.now(UTC)
    rows = [
        (1, "admin", None),
        (2, f"{CYRILLIC_A}dmin", None),  # collides with admin: keeps its name, its skeleton gets #2
        (3, "deleted-user-3", now),  # a deleted account's placeholder
        (4, "d\u0435leted-user-9", None),  # a look-alike of user 9's future placeholder
        (5, "minji", None),
    ]
    engine = make_engine(database_at_0004)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(USER_AT_0004),
                [
                    {
                        "id": id_,
                        "name": name,
                        "email": f"u{id_}@example.com",
                        "password_hash": "!x",
                        "join_date": now,
                        "deleted_date": deleted,
                    }
                    for id_, name, deleted in rows
                ],
            )
        command.upgrade(alembic_config(database_at_0004), "0005")
        with engine.connect() as conn:
            stored = dict(conn.execute(sa.text("SELECT id, name_skeleton FROM user ORDER BY id")).all())
        assert stored == {
            1: "adrnin",
            2: "adrnin#2",
            3: name_skeleton("deleted-user-3"),
            4: f"{name_skeleton('deleted-user-9')}#4",
            5: name_skeleton("minji"),
        }
        # A taken skeleton is refused, and the name stays unique ignoring case (SQLite's copy of
        # the table keeps NOCASE).
        for name, skeleton in [("another", "adrnin"), ("ADMIN", "adrnln")]:
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO user (name, name_skeleton, email, password_hash, join_date) "
                        "VALUES (:name, :skeleton, 'x@example.com', '!x', '2026-01-01 00:00:00')"
                    ),
                    {"name": name, "skeleton": skeleton},
                )
        command.downgrade(alembic_config(database_at_0004), "0004")
        assert "name_skeleton" not in {column["name"] for column in inspect(engine).get_columns("user")}
    finally:
        engine.dispose()
