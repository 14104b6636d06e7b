"""trained models: the AI table's kind and readiness, and the versions of a trained model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:08:52.645337
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on every backend: SQLite's batch mode would copy `ai` and drop
    # the original, which ai_log's foreign key forbids while jobs exist.
    op.add_column("ai", sa.Column("kind", sa.String(length=32), nullable=True))
    op.add_column("ai", sa.Column("is_ready", sa.Boolean(), server_default=sa.text("1"), nullable=False))

    op.create_table(
        "ai_model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ai_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("file_key", sa.String(length=32), nullable=False),
        sa.Column("training_job_id", sa.Integer(), nullable=True),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("finish_date", database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ai_id"], ["ai.id"], name=op.f("fk_ai_model_version_ai_id_ai"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["training_job_id"],
            ["ai_log.id"],
            name=op.f("fk_ai_model_version_training_job_id_ai_log"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_model_version")),
        sa.UniqueConstraint("ai_id", "version", name=op.f("uq_ai_model_version_ai_id_version")),
        sa.UniqueConstraint("file_key", name=op.f("uq_ai_model_version_file_key")),
        sa.UniqueConstraint("training_job_id", name=op.f("uq_ai_model_version_training_job_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("ai_model_version", schema=None) as batch_op:
        batch_op.create_index("ix_ai_model_version_status", ["status"], unique=False)


def downgrade() -> None:
    # The trained models' rows go with their versions: without `kind` they would pass for models of
    # the registry. Their jobs go first (ai_log points at ai). The files under MODEL_DIR stay.
    op.execute("DELETE FROM ai_log WHERE ai_id IN (SELECT id FROM ai WHERE kind IS NOT NULL)")
    op.drop_table("ai_model_version")
    op.execute("DELETE FROM ai WHERE kind IS NOT NULL")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in upgrade.
    op.drop_column("ai", "is_ready")
    op.drop_column("ai", "kind")
