"""post_embedding: an index by (model_name, update_date)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:30:00.000000

similar-posts keeps each model's vectors in memory and, before each batch, reads only those
written since it last looked (WHERE model_name = ? AND update_date >= ?): without the index
that read scans every vector (1.5 KB a post). The background re-embedding after a change of
EMBEDDING_MODEL counts and finds the posts without a vector of the current model by it too.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_post_embedding_model_date", "post_embedding", ["model_name", "update_date"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_post_embedding_model_date", table_name="post_embedding")
