"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 05:32:25.308368
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ai",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("information", sa.String(length=256), nullable=False),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai")),
        sa.UniqueConstraint("name", name=op.f("uq_ai_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    op.create_table(
        "board",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("information", sa.String(length=512), nullable=False),
        sa.Column("is_public", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_board")),
        sa.UniqueConstraint("name", name=op.f("uq_board_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=256), nullable=True),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("join_date", database.UTCDateTime(), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_banned", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deleted_date", database.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("email", name=op.f("uq_user_email")),
        sa.UniqueConstraint("name", name=op.f("uq_user_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    op.create_table(
        "ai_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ai_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("started_date", database.UTCDateTime(), nullable=True),
        sa.Column("finish_date", database.UTCDateTime(), nullable=True),
        sa.Column("is_finished", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(["ai_id"], ["ai.id"], name=op.f("fk_ai_log_ai_id_ai")),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_ai_log_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_log")),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_ai_log_user_id_idempotency_key")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("ai_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_log_ai_id"), ["ai_id"], unique=False)
        batch_op.create_index("ix_ai_log_status", ["status"], unique=False)
        batch_op.create_index("ix_ai_log_user_listing", ["user_id", "id"], unique=False)

    op.create_table(
        "board_access",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["board.id"],
            name=op.f("fk_board_access_board_id_board"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_board_access_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "board_id", name=op.f("pk_board_access")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("board_access", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_board_access_board_id"), ["board_id"], unique=False)

    op.create_table(
        "chat_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("update_date", database.UTCDateTime(), nullable=False),
        sa.Column("is_closed", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_chat_session_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_session")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("chat_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "password_reset_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("expires_date", database.UTCDateTime(), nullable=False),
        sa.Column("used_date", database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_password_reset_token_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_token_token_hash")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("password_reset_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_password_reset_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "post",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("update_date", database.UTCDateTime(), nullable=False),
        sa.Column("number_of_view", sa.Integer(), server_default="0", nullable=False),
        sa.Column("number_of_comment", sa.Integer(), server_default="0", nullable=False),
        sa.Column("number_of_like", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "is_file_attached",
            sa.Boolean(),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["board.id"],
            name=op.f("fk_post_board_id_board"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_post_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.create_index("ix_post_board_listing", ["board_id", "is_visible", "id"], unique=False)
        batch_op.create_index(
            "ix_post_board_by_views", ["board_id", "is_visible", "number_of_view", "id"], unique=False
        )
        batch_op.create_index(
            "ix_post_board_by_likes", ["board_id", "is_visible", "number_of_like", "id"], unique=False
        )
        batch_op.create_index(
            "ix_post_board_by_comments", ["board_id", "is_visible", "number_of_comment", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_post_user_id"), ["user_id"], unique=False)

    op.create_table(
        "refresh_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("expires_date", database.UTCDateTime(), nullable=False),
        sa.Column("rotated_date", database.UTCDateTime(), nullable=True),
        sa.Column("revoked_date", database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_refresh_token_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_token_token_hash")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_token_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "chat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_session_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.String(length=256), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("edit_date", database.UTCDateTime(), nullable=True),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_session_id"],
            ["chat_session.id"],
            name=op.f("fk_chat_chat_session_id_chat_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_chat_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat")),
        sa.UniqueConstraint("user_id", "client_id", name=op.f("uq_chat_user_id_client_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("chat", schema=None) as batch_op:
        batch_op.create_index("ix_chat_session_listing", ["chat_session_id", "id"], unique=False)

    op.create_table(
        "chat_session_member",
        sa.Column("chat_session_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("last_read_chat_id", sa.Integer(), nullable=True),
        sa.Column("join_date", database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_session_id"],
            ["chat_session.id"],
            name=op.f("fk_chat_session_member_chat_session_id_chat_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_chat_session_member_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_session_id", "user_id", name=op.f("pk_chat_session_member")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("chat_session_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_session_member_user_id"), ["user_id"], unique=False)

    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.String(length=256), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.Column("update_date", database.UTCDateTime(), nullable=False),
        sa.Column(
            "is_file_attached",
            sa.Boolean(),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("is_visible", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["post.id"],
            name=op.f("fk_comment_post_id_post"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_comment_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("comment", schema=None) as batch_op:
        batch_op.create_index("ix_comment_post_listing", ["post_id", "is_visible", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_comment_user_id"), ["user_id"], unique=False)

    op.create_table(
        "post_like",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["post.id"],
            name=op.f("fk_post_like_post_id_post"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_post_like_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "post_id", name=op.f("pk_post_like")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("post_like", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_like_post_id"), ["post_id"], unique=False)

    op.create_table(
        "post_view",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("last_viewed_date", database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["post.id"],
            name=op.f("fk_post_view_post_id_post"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_post_view_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "post_id", name=op.f("pk_post_view")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("post_view", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_view_post_id"), ["post_id"], unique=False)

    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("uploader_id", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("create_date", database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comment.id"],
            name=op.f("fk_attachment_comment_id_comment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["post.id"],
            name=op.f("fk_attachment_post_id_post"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["uploader_id"], ["user.id"], name=op.f("fk_attachment_uploader_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_attachment_storage_key")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_comment_id"), ["comment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachment_post_id"), ["post_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachment_uploader_id"), ["uploader_id"], unique=False)

    op.create_table(
        "post_embedding",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("update_date", database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["post.id"],
            name=op.f("fk_post_embedding_post_id_post"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_post_embedding")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_520_ci",
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MySQL refuses to drop an FK's index on its own.
    op.drop_table("post_embedding")
    op.drop_table("attachment")
    op.drop_table("post_view")
    op.drop_table("post_like")
    op.drop_table("comment")
    op.drop_table("chat_session_member")
    op.drop_table("chat")
    op.drop_table("refresh_token")
    op.drop_table("post")
    op.drop_table("password_reset_token")
    op.drop_table("chat_session")
    op.drop_table("board_access")
    op.drop_table("ai_log")
    op.drop_table("user")
    op.drop_table("board")
    op.drop_table("ai")
