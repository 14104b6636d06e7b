"""Alembic environment: the URL comes from Settings unless a caller passes a connection."""

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

import models
from config import settings
from database import make_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Our UTC datetime type renders as itself, so migrations keep its behaviour."""
    if type_ == "type" and obj.__class__.__name__ == "UTCDateTime":
        autogen_context.imports.add("import database")
        return "database.UTCDateTime()"
    return False


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """The search index's full-text structures (models.FULL_TEXT_PREFIX: SQLite's FTS5 tables,
    MariaDB's posting tables) are made by their migration for one database each and described by
    no model: they are left out of the comparison with models.py."""
    return not (name or "").startswith(models.FULL_TEXT_PREFIX)


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        render_item=render_item,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or settings.DATABASE_URL
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
