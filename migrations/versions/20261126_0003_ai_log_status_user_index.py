"""ai_log: the status index also by user, for the per-user count of jobs in flight

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 13:20:00.000000

Every submission counts the user's jobs queued or running (AI_MAX_JOBS_PER_USER). By (status)
alone, or by (user_id, id), that count reads every queued job, or every job the user ever ran;
by (status, user_id) it reads only the user's jobs in flight. The index still serves the
queries by status alone (the queue's depth, recovery at startup).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ai_log_status_user", "ai_log", ["status", "user_id"], unique=False)
    op.drop_index("ix_ai_log_status", table_name="ai_log")


def downgrade() -> None:
    op.create_index("ix_ai_log_status", "ai_log", ["status"], unique=False)
    op.drop_index("ix_ai_log_status_user", table_name="ai_log")
