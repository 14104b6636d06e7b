"""attachment.storage_backend; ai_log.lease_owner, ai_log.lease_until

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 00:00:00.000000

- attachment.storage_backend: which backend holds the row's object ("local" or "s3"). Every row
  written so far is on the local disk. `python cli.py storage migrate --to s3` switches a row only
  after its copy in the bucket is verified, so rows of both kinds are served while it runs.
- ai_log.lease_owner / lease_until: the process running a job of the embedded runner and how long
  its claim holds without a renewal. Start-up recovery re-queues only jobs whose lease expired, so
  a second API process starting never takes a job another one is running.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "attachment",
        sa.Column("storage_backend", sa.String(length=16), server_default="local", nullable=False),
    )
    op.add_column("ai_log", sa.Column("lease_owner", sa.String(length=64), nullable=True))
    op.add_column("ai_log", sa.Column("lease_until", database.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ai_log") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
    with op.batch_alter_table("attachment") as batch:
        batch.drop_column("storage_backend")
