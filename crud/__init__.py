"""Queries: the only package that builds SQL. No commits here: the calling service owns the
transaction (docs/architecture.md).

SQLAlchemy's stubs type two things more loosely than they are, and these helpers say once what
they are: a mapped class's `__table__` (a `FromClause` in the stubs, a `Table` for every model
here) and what `Session.execute` returns for an INSERT, UPDATE or DELETE (a `Result` in the
stubs, a `CursorResult`, which counts rows and knows the inserted key)."""

from typing import Any

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.orm import DeclarativeBase, Session


def table_of(model: type[DeclarativeBase]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _run_statement(session: Session, statement: Executable, params: Any) -> CursorResult[Any]:
    result = session.execute(statement, params)
    assert isinstance(result, CursorResult)
    return result


def changed_rows(session: Session, statement: Executable, params: dict[str, Any] | None = None) -> int:
    """Runs an UPDATE or DELETE; how many rows it changed (matched, on MariaDB: SQLAlchemy's
    MySQL drivers count found rows)."""
    return _run_statement(session, statement, params).rowcount


def inserted_id(session: Session, statement: Executable, params: dict[str, Any]) -> int:
    """Runs a one-row INSERT; the new row's primary key."""
    key = _run_statement(session, statement, params).inserted_primary_key
    assert key is not None
    return int(key[0])
