"""Insert-or-ignore, the one dialect-specific statement the counters need."""

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

from crud import table_of


def insert_if_absent(session: Session, model: type[DeclarativeBase], values: dict[str, Any]) -> bool:
    """Inserts the row unless one with the same key exists; True when a row was inserted.

    One statement, so two requests racing to insert the same key cannot both win and neither
    gets a duplicate-key error. MySQL's INSERT IGNORE also turns other errors (a missing
    foreign key) into warnings: callers lock or load the parent row first, so those cannot happen.
    """
    statement = _insert_ignoring_duplicates(session.get_bind().dialect.name, model, tuple(values))
    # On the session's connection: a Core statement needs none of the ORM's execution machinery.
    return session.connection().execute(statement, values).rowcount == 1


@cache  # one statement per backend, table and set of columns, its values bound per call
def _insert_ignoring_duplicates(dialect: str, model: type[DeclarativeBase], columns: Sequence[str]) -> Insert:
    # On the Table, not the mapped class: run with a dict of values, an ORM insert would be an
    # ORM bulk insert, whose result has no rowcount.
    table = table_of(model)
    row: dict[str, Any] = {column: bindparam(column) for column in columns}
    if dialect == "sqlite":
        return sqlite.insert(table).values(row).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(table).values(row).on_conflict_do_nothing()
    if dialect in ("mysql", "mariadb"):
        return mysql.insert(table).values(row).prefix_with("IGNORE")
    return insert(table).values(row)  # pragma: no cover - a backend we do not ship
