"""post_search, comment_search: the search index, filled from the posts and comments there are

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:00:00.000000

Each post's title and content terms and each comment's terms (search_text.py: words, pairs of
Hangul syllables, symbols, each with a prefix that keeps it whole), in two tables, read through a
full-text index that depends on the database:

- SQLite: an FTS5 table over each (external content: the terms are stored once, in post_search and
  comment_search), kept in step by triggers on them, so every write to a terms table updates the
  index in the same transaction, and deleting a row (a cascade from its post too) takes its terms out.
  Words are what unicode61 takes for them, with no diacritics removed: the terms are folded already.
- MariaDB: InnoDB FULLTEXT indexes: the title and content together (which posts match), the title
  alone (ranking), the comment's terms. Made after the rows are in, one per ALTER (InnoDB builds
  one at a time).

Their names begin with models.FULL_TEXT_PREFIX ("fts_"): they are no models, and migrations/env.py
leaves them out of the comparison with models.py. The rows are filled here with the analyzer the
app uses (`python cli.py search reindex` writes them all again, after a change to it).
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import search_text

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMS = sa.Text().with_variant(mysql.TEXT(collation="utf8mb4_bin"), "mysql", "mariadb")
LONG_TERMS = sa.Text().with_variant(mysql.MEDIUMTEXT(collation="utf8mb4_bin"), "mysql", "mariadb")
MYSQL_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_520_ci"}
BATCH = 1000

POST = sa.table(
    "post", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("content", sa.Text)
)
COMMENT = sa.table("comment", sa.column("id", sa.Integer), sa.column("content", sa.String))
POST_SEARCH = sa.table(
    "post_search", sa.column("post_id", sa.Integer), sa.column("title_terms"), sa.column("content_terms")
)
COMMENT_SEARCH = sa.table("comment_search", sa.column("comment_id", sa.Integer), sa.column("terms"))

# SQLite: an external-content FTS5 table per terms table, and the triggers that keep it in step.
SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE fts_post USING fts5(title_terms, content_terms, content='post_search', "
    "content_rowid='post_id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER fts_post_insert AFTER INSERT ON post_search BEGIN "
    "INSERT INTO fts_post(rowid, title_terms, content_terms) "
    "VALUES (new.post_id, new.title_terms, new.content_terms); END",
    "CREATE TRIGGER fts_post_delete AFTER DELETE ON post_search BEGIN "
    "INSERT INTO fts_post(fts_post, rowid, title_terms, content_terms) "
    "VALUES ('delete', old.post_id, old.title_terms, old.content_terms); END",
    "CREATE TRIGGER fts_post_update AFTER UPDATE ON post_search BEGIN "
    "INSERT INTO fts_post(fts_post, rowid, title_terms, content_terms) "
    "VALUES ('delete', old.post_id, old.title_terms, old.content_terms); "
    "INSERT INTO fts_post(rowid, title_terms, content_terms) "
    "VALUES (new.post_id, new.title_terms, new.content_terms); END",
    "CREATE VIRTUAL TABLE fts_comment USING fts5(terms, content='comment_search', "
    "content_rowid='comment_id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER fts_comment_insert AFTER INSERT ON comment_search BEGIN "
    "INSERT INTO fts_comment(rowid, terms) VALUES (new.comment_id, new.terms); END",
    "CREATE TRIGGER fts_comment_delete AFTER DELETE ON comment_search BEGIN "
    "INSERT INTO fts_comment(fts_comment, rowid, terms) VALUES ('delete', old.comment_id, old.terms); END",
    "CREATE TRIGGER fts_comment_update AFTER UPDATE ON comment_search BEGIN "
    "INSERT INTO fts_comment(fts_comment, rowid, terms) VALUES ('delete', old.comment_id, old.terms); "
    "INSERT INTO fts_comment(rowid, terms) VALUES (new.comment_id, new.terms); END",
]
SQLITE_DOWNGRADE = [
    *(
        f"DROP TRIGGER IF EXISTS fts_{table}_{event}"
        for table in ("post", "comment")
        for event in ("insert", "delete", "update")
    ),
    "DROP TABLE IF EXISTS fts_post",
    "DROP TABLE IF EXISTS fts_comment",
]
# MariaDB: (index, table, columns).
FULLTEXT_INDEXES = [
    ("fts_post_search_text", "post_search", ["title_terms", "content_terms"]),
    ("fts_post_search_title", "post_search", ["title_terms"]),
    ("fts_comment_search_terms", "comment_search", ["terms"]),
]


def upgrade() -> None:
    op.create_table(
        "post_search",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("title_terms", TERMS, nullable=False),
        sa.Column("content_terms", LONG_TERMS, nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["post.id"], name=op.f("fk_post_search_post_id_post"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_post_search")),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "comment_search",
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("terms", TERMS, nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comment.id"],
            name=op.f("fk_comment_search_comment_id_comment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comment_id", name=op.f("pk_comment_search")),
        **MYSQL_TABLE_OPTIONS,
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for statement in SQLITE_UPGRADE:
            op.execute(statement)
    _fill()
    if not sqlite:
        for name, table, columns in FULLTEXT_INDEXES:
            op.create_index(name, table, columns, mysql_prefix="FULLTEXT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
    op.drop_table("comment_search")
    op.drop_table("post_search")


def _fill() -> None:
    """Every post's and comment's terms, a thousand rows a statement."""
    connection = op.get_bind()
    for batch in _pages(POST.c.id, POST.c.name, POST.c.content):
        rows = [
            {
                "post_id": post_id,
                "title_terms": search_text.terms(name),
                "content_terms": search_text.terms(content),
            }
            for post_id, name, content in batch
        ]
        connection.execute(POST_SEARCH.insert(), rows)
    for batch in _pages(COMMENT.c.id, COMMENT.c.content):
        rows = [
            {"comment_id": comment_id, "terms": search_text.terms(content)} for comment_id, content in batch
        ]
        connection.execute(COMMENT_SEARCH.insert(), rows)


def _pages(key: sa.ColumnClause[int], *columns: sa.ColumnClause[str]) -> Iterator[Sequence[sa.Row[Any]]]:
    """The rows by key, BATCH at a time (a driver that buffers a whole result would otherwise hold
    every post's content at once)."""
    connection = op.get_bind()
    last = 0
    while batch := connection.execute(
        sa.select(key, *columns).where(key > last).order_by(key).limit(BATCH)
    ).all():
        yield batch
        last = batch[-1][0]
