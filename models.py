"""The tables: the seed's, with the changes docs/data-model.md lists and explains.

Relationships default to lazy="raise" so a stray per-row lazy load fails loudly in tests;
a query that needs related rows says so with an explicit load option or a join.
"""

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

import names
from database import UTCDateTime, utcnow

# Where an AI job (and a trained model's version) stands; a String(16) column, the values checked
# by the type checker and the response schemas.
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# MariaDB: full Unicode (Korean, emoji) and case-insensitive comparison, as users expect of
# names and search. unicode_520, not unicode_ci: the older UCA 4.0 weights give every emoji
# the same weight, so "🍕 맛집" and "🍔 맛집" would be one unique name. Other backends ignore these.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_520_ci",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def table_args(*items: Any) -> tuple[Any, ...]:
    return (*items, MYSQL_TABLE_OPTIONS)


USER_FK = "user.id"

board_access = Table(
    "board_access",
    Base.metadata,
    Column("user_id", ForeignKey(USER_FK, ondelete="CASCADE"), primary_key=True),
    Column("board_id", ForeignKey("board.id", ondelete="CASCADE"), primary_key=True, index=True),
    **MYSQL_TABLE_OPTIONS,
)


def _skeleton_of_inserted_name(context: Any) -> str:
    """For an INSERT that gives the name alone (a Core insert, as the benchmarks make users)."""
    return names.name_skeleton(context.get_current_parameters()["name"])


class User(Base):
    __tablename__ = "user"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique ignoring case on every backend: MariaDB's collation ignores it already; on SQLite
    # NOCASE does (ASCII letters, as SQLite's lower()), so the unique index itself refuses
    # "Minji" beside "minji", however close together two sign-ups come.
    name: Mapped[str] = mapped_column(
        String(64).with_variant(String(64, collation="NOCASE"), "sqlite"), unique=True
    )
    # The name's look-alike key (names.py), unique too: "admin" spelled with a Cyrillic a is
    # refused beside "admin", however close together the two sign-ups come. Set with every name
    # the ORM writes (below); a Core UPDATE of the name must set it as well. Compared exactly: a
    # _ci collation would take "jose" and "jose" + U+0301 for one key, which the skeleton keeps apart.
    name_skeleton: Mapped[str] = mapped_column(
        String(names.SKELETON_MAX_CHARS).with_variant(
            String(names.SKELETON_MAX_CHARS, collation="utf8mb4_bin"), "mysql", "mariadb"
        ),
        unique=True,
        default=_skeleton_of_inserted_name,
    )
    # Nullable so an anonymized (deleted) account frees its address; unique still holds.
    email: Mapped[str | None] = mapped_column(String(256), unique=True)
    # One Argon2id string (pwdlib): algorithm, cost and salt live inside the hash.
    password_hash: Mapped[str] = mapped_column(String(256))
    join_date: Mapped[datetime] = mapped_column(default=utcnow)
    is_superuser: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_banned: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Bumped by a password change, a reset or account deletion: every token carrying an
    # older version stops working.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    deleted_date: Mapped[datetime | None]

    boards: Mapped[list["Board"]] = relationship(secondary=board_access, back_populates="users", lazy="raise")

    @validates("name")
    def _set_name_skeleton(self, _key: str, name: str) -> str:
        self.name_skeleton = names.name_skeleton(name)
        return name


class Board(Base):
    __tablename__ = "board"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    information: Mapped[str] = mapped_column(String(512))
    is_public: Mapped[bool] = mapped_column(default=True, server_default=true())
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())
    create_date: Mapped[datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(secondary=board_access, back_populates="boards", lazy="raise")


class Post(Base):
    __tablename__ = "post"
    __table_args__ = table_args(
        Index("ix_post_board_listing", "board_id", "is_visible", "id"),
        # The other sort orders of a board's list: a page is read off the index, no sort.
        Index("ix_post_board_by_views", "board_id", "is_visible", "number_of_view", "id"),
        Index("ix_post_board_by_likes", "board_id", "is_visible", "number_of_like", "id"),
        Index("ix_post_board_by_comments", "board_id", "is_visible", "number_of_comment", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("board.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK), index=True)
    name: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    update_date: Mapped[datetime] = mapped_column(default=utcnow)
    number_of_view: Mapped[int] = mapped_column(default=0, server_default="0")
    number_of_comment: Mapped[int] = mapped_column(default=0, server_default="0")
    number_of_like: Mapped[int] = mapped_column(default=0, server_default="0")
    is_file_attached: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())

    user: Mapped[User] = relationship(lazy="raise")
    board: Mapped[Board] = relationship(lazy="raise")


class Comment(Base):
    __tablename__ = "comment"
    __table_args__ = table_args(
        Index("ix_comment_post_listing", "post_id", "is_visible", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK), index=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(String(256))
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    update_date: Mapped[datetime] = mapped_column(default=utcnow)
    is_file_attached: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())

    user: Mapped[User] = relationship(lazy="raise")
    post: Mapped[Post] = relationship(lazy="raise")


class PostLike(Base):
    __tablename__ = "post_like"
    __table_args__ = table_args()

    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"), primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("post.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    create_date: Mapped[datetime] = mapped_column(default=utcnow)


class PostView(Base):
    """The last time a user was counted as a reader of a post, to count each reader once
    per VIEW_DEDUPE_MINUTES."""

    __tablename__ = "post_view"
    __table_args__ = table_args()

    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"), primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("post.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    last_viewed_date: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachment"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comment.id", ondelete="CASCADE"), index=True)
    uploader_id: Mapped[int] = mapped_column(ForeignKey(USER_FK), index=True)
    original_name: Mapped[str] = mapped_column(String(255))
    # A random name on disk; never derived from what the user sent.
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    # Which backend holds the object ("local" or "s3"): a row moves only once its copy is verified.
    storage_backend: Mapped[str] = mapped_column(String(16), default="local", server_default="local")


class ChatSession(Base):
    __tablename__ = "chat_session"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    # The user who opened the conversation; administrators join every conversation.
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK), index=True)
    name: Mapped[str] = mapped_column(String(256))
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    update_date: Mapped[datetime] = mapped_column(default=utcnow)
    is_closed: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())

    user: Mapped[User] = relationship(lazy="raise")
    members: Mapped[list["ChatSessionMember"]] = relationship(back_populates="chat_session", lazy="raise")


class ChatSessionMember(Base):
    """The seed's N:M between users and chat sessions, with each member's read marker."""

    __tablename__ = "chat_session_member"
    __table_args__ = table_args()

    chat_session_id: Mapped[int] = mapped_column(
        ForeignKey("chat_session.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey(USER_FK, ondelete="CASCADE"), primary_key=True, index=True
    )
    last_read_chat_id: Mapped[int | None]
    join_date: Mapped[datetime] = mapped_column(default=utcnow)

    chat_session: Mapped[ChatSession] = relationship(back_populates="members", lazy="raise")


class Chat(Base):
    __tablename__ = "chat"
    __table_args__ = table_args(
        Index("ix_chat_session_listing", "chat_session_id", "id"),
        # A client resending a message with the same client_id gets the stored one back.
        UniqueConstraint("user_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK))
    chat_session_id: Mapped[int] = mapped_column(ForeignKey("chat_session.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(String(256))
    client_id: Mapped[str | None] = mapped_column(String(64))
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    edit_date: Mapped[datetime | None]
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())

    user: Mapped[User] = relationship(lazy="raise")


class AI(Base):
    __tablename__ = "ai"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    information: Mapped[str] = mapped_column(String(256))
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())
    # None: a model of the code's registry (services/ai/registry.py). "tabular-regression": a model an
    # administrator trains from a CSV; its weights are the versions below.
    kind: Mapped[str | None] = mapped_column(String(32))
    # A trained model takes jobs once a version has succeeded; registry models always do.
    is_ready: Mapped[bool] = mapped_column(default=True, server_default=true())


class AIModelVersion(Base):
    """One training run of a trained model and what it made: the files under MODEL_DIR named by
    `file_key` (random, never from user input), the parameters and the metrics. Inference uses
    the model's highest succeeded version; earlier versions stay, on disk and listed."""

    __tablename__ = "ai_model_version"
    __table_args__ = table_args(
        UniqueConstraint("ai_id", "version"),
        Index("ix_ai_model_version_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ai_id: Mapped[int] = mapped_column(ForeignKey("ai.id", ondelete="CASCADE"))
    version: Mapped[int]
    # queued, running, succeeded, failed, canceled: its training job's, settled in the same commit
    status: Mapped[JobStatus] = mapped_column(String(16), default="queued", server_default="queued")
    parameters: Mapped[str] = mapped_column(Text)  # JSON: target, features, epochs, learning rate, ...
    metrics: Mapped[str | None] = mapped_column(Text)  # JSON, once succeeded
    file_key: Mapped[str] = mapped_column(String(32), unique=True)
    training_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_log.id", ondelete="SET NULL"), unique=True
    )
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    finish_date: Mapped[datetime | None]


class AIlog(Base):
    """One AI job: the seed's columns (content is the input) plus its life cycle."""

    __tablename__ = "ai_log"
    __table_args__ = table_args(
        Index("ix_ai_log_user_listing", "user_id", "id"),
        # By user too: the per-user count of jobs in flight reads only those (migration 0003).
        Index("ix_ai_log_status_user", "status", "user_id"),
        UniqueConstraint("user_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK))
    ai_id: Mapped[int] = mapped_column(ForeignKey("ai.id"), index=True)
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[JobStatus] = mapped_column(String(16), default="queued", server_default="queued")
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    started_date: Mapped[datetime | None]
    finish_date: Mapped[datetime | None]
    is_finished: Mapped[bool] = mapped_column(default=False, server_default=false())
    # False once the owner clears it from their history; administrators still see it.
    is_visible: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The embedded runner's claim on a running job: which process, and until when without a renewal.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    ai: Mapped[AI] = relationship(lazy="raise")


class RefreshToken(Base):
    """A refresh token, stored only as its SHA-256. Tokens issued from one login share a
    family; presenting a rotated token again revokes the whole family."""

    __tablename__ = "refresh_token"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_version: Mapped[int]
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    expires_date: Mapped[datetime]
    rotated_date: Mapped[datetime | None]
    revoked_date: Mapped[datetime | None]


class PasswordResetToken(Base):
    __tablename__ = "password_reset_token"
    __table_args__ = table_args()

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    create_date: Mapped[datetime] = mapped_column(default=utcnow)
    expires_date: Mapped[datetime]
    used_date: Mapped[datetime | None]


class PostEmbedding(Base):
    """A post's sentence embedding for similar-posts: float32 bytes (1.5 KB for 384 numbers),
    with the name of the model that made it, so vectors of another model are never compared.
    Rewritten when the post is written; `python cli.py reindex` fills in what is missing."""

    __tablename__ = "post_embedding"
    # similar-posts reads the vectors of one model written since it last looked (0006).
    __table_args__ = table_args(Index("ix_post_embedding_model_date", "model_name", "update_date"))

    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    update_date: Mapped[datetime] = mapped_column(default=utcnow)


# The search index (search_text.py makes the terms, crud/search.py reads them). Each database reads
# these two tables through a full-text index of its own, named with FULL_TEXT_PREFIX: SQLite's FTS5
# tables (migration 0007, kept in step by triggers), MariaDB's posting tables (0009, written by
# crud/search.py). They are no models, and the migrations' comparison leaves them out.
FULL_TEXT_PREFIX = "fts_"
# Terms are compared exactly on MariaDB (its _ci collation would take "qwcafe" for "qwcafé", which
# SQLite's tokenizer keeps apart): the analyzer has folded case already.
SEARCH_TERMS = Text().with_variant(mysql.TEXT(collation="utf8mb4_bin"), "mysql", "mariadb")
# A post's content terms can outgrow TEXT's 64 KB: 10,000 characters of Hangul make 20,000 terms.
LONG_SEARCH_TERMS = Text().with_variant(mysql.MEDIUMTEXT(collation="utf8mb4_bin"), "mysql", "mariadb")


class PostSearch(Base):
    """A post's terms: its title's and its content's, each separated by spaces. Written in the
    transaction that writes the title or content; visibility and access are the post's and its
    board's, applied when searching."""

    __tablename__ = "post_search"
    __table_args__ = table_args()

    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), primary_key=True)
    title_terms: Mapped[str] = mapped_column(SEARCH_TERMS)
    content_terms: Mapped[str] = mapped_column(LONG_SEARCH_TERMS)


class CommentSearch(Base):
    """A comment's terms, written with its content. A comment is searched on its own: its post is
    found when one visible comment holds every word of the query."""

    __tablename__ = "comment_search"
    __table_args__ = table_args()

    comment_id: Mapped[int] = mapped_column(ForeignKey("comment.id", ondelete="CASCADE"), primary_key=True)
    terms: Mapped[str] = mapped_column(SEARCH_TERMS)
