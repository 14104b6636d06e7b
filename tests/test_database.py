"""The engine for a database server (database.make_server_engine): a pooled connection comes back
outside any transaction, with no round trip spent on that when its user ended the transaction
already, and a connection the server dropped while it sat idle is replaced before a request
gets it."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import database
from config import settings
from models import Board
from tests.conftest import IS_MARIADB, TEST_DATABASE_URL

pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.skipif(not IS_MARIADB, reason="a database server's pool (set TEST_DATABASE_URL)"),
]


@pytest.fixture
def server_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine of its own whose pool keeps one connection: used one at a time, as here, every
    checkout gets that same connection."""
    monkeypatch.setattr(settings, "DATABASE_POOL_SIZE", 1)
    engine = database.make_server_engine(TEST_DATABASE_URL)
    yield engine
    engine.dispose()


def rollbacks_so_far(engine: Engine) -> int:
    """ROLLBACKs the server has counted on the pool's one connection (this read adds one: its
    own transaction ends with it)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'")).one()[1])


def in_transaction(engine: Engine) -> bool:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT @@in_transaction")
        return bool(cursor.fetchone()[0])
    finally:
        raw.close()


def test_a_closed_session_ends_its_transaction_with_one_rollback(server_engine: Engine) -> None:
    before = rollbacks_so_far(server_engine)
    with Session(server_engine) as session:
        session.scalar(select(func.count()).select_from(Board))
    # One for the session, one for rollbacks_so_far's own read; the pool adds none.
    assert rollbacks_so_far(server_engine) == before + 2
    assert not in_transaction(server_engine)


def test_a_committed_session_sends_no_rollback(server_engine: Engine) -> None:
    before = rollbacks_so_far(server_engine)
    with Session(server_engine) as session:
        session.scalar(select(func.count()).select_from(Board))
        session.commit()
    assert rollbacks_so_far(server_engine) == before + 1  # rollbacks_so_far's own


def test_a_connection_returned_inside_a_transaction_is_rolled_back(server_engine: Engine) -> None:
    raw = server_engine.raw_connection()  # used without SQLAlchemy: the pool sees no statement
    cursor = raw.cursor()
    cursor.execute(
        "INSERT INTO board (name, information, is_public, is_visible, create_date) "
        "VALUES ('left open', '', 1, 1, UTC_TIMESTAMP())"
    )
    raw.close()
    assert not in_transaction(server_engine)
    with server_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Board).where(Board.name == "left open")) == 0


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    server_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server_engine.connect() as conn:
        dropped = conn.scalar(text("SELECT CONNECTION_ID()"))
    kill(dropped)
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle long enough
    with server_engine.connect() as conn:
        assert conn.scalar(text("SELECT CONNECTION_ID()")) != dropped


def test_a_connection_in_steady_use_is_not_pinged(
    server_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the trade: a connection returned a moment ago is trusted, so one the
    server dropped in that moment fails its next statement (and the pool then replaces it)."""
    with server_engine.connect() as conn:
        dropped = conn.scalar(text("SELECT CONNECTION_ID()"))
    kill(dropped)
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    conn = server_engine.connect()
    with pytest.raises(OperationalError):
        conn.scalar(text("SELECT 1"))
    conn.close()
    with server_engine.connect() as conn:
        assert conn.scalar(text("SELECT CONNECTION_ID()")) != dropped


def kill(connection_id: int) -> None:
    with database.engine.connect() as conn:
        conn.execute(text(f"KILL {int(connection_id)}"))
