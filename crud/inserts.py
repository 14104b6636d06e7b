"""Insert-or-ignore, the one dialect-specific statement the counters need."""

from typing import Any

from sqlalchemy import Insert, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def insert_if_absent(session: Session, model: type[DeclarativeBase], values: dict[str, Any]) -> bool:
    """Inserts the row unless one with the same key exists; True when a row was inserted.

    One statement, so two requests racing to insert the same key cannot both win and neither
    gets a duplicate-key error. MySQL's INSERT IGNORE also turns other errors (a missing
    foreign key) into warnings: callers lock or load the parent row first, so those cannot happen.
    """
    dialect = session.get_bind().dialect.name
    statement: Insert
    if dialect == "sqlite":
        statement = sqlite.insert(model).values(values).on_conflict_do_nothing()
    elif dialect == "postgresql":
        statement = postgresql.insert(model).values(values).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(model).values(values).prefix_with("IGNORE")
    else:  # pragma: no cover - a backend we do not ship
        statement = insert(model).values(values)
    result = session.execute(statement)
    return result.rowcount == 1
