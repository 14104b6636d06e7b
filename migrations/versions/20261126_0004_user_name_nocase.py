"""user.name unique ignoring case on SQLite too (COLLATE NOCASE)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:50:00.000000

MariaDB's collation compares names ignoring case, so its unique index refuses "Minji" beside
"minji". SQLite compared them exactly: the service's check came first, and two sign-ups close
together could both pass it. With NOCASE the index refuses the second on SQLite as well. (A
database already holding two names that differ only in case stops this upgrade: rename one.)
Nothing changes on MariaDB.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _change_name_type(to=sa.String(64, collation="NOCASE"), existing=sa.String(64))


def downgrade() -> None:
    _change_name_type(to=sa.String(64), existing=sa.String(64, collation="NOCASE"))


def _change_name_type(*, to: sa.String, existing: sa.String) -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    with op.batch_alter_table("user") as batch:
        batch.alter_column("name", type_=to, existing_type=existing, existing_nullable=False)
