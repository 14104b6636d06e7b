"""fts_post_term, fts_comment_term: MariaDB's search index as posting tables, for InnoDB's FULLTEXT

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 00:00:00.000000

MariaDB only (SQLite keeps its FTS5 tables of 0007). A row per term of each post (with the term's
weight there: crud/search.post_term_weights) and per term of each comment, keyed (term, id), so the
newest posts holding a term are a range of the key read backwards and a search ranks a common word's
newest matches without reading its older ones. InnoDB's FULLTEXT indexes read every posting of each
word before any LIMIT: 65 ms for a word in 12,000 posts, 460 ms for 감사합니다's four pairs in the
comments, on a quiet machine; through these tables 1-6 ms. The FULLTEXT indexes of 0007 go.

The app writes a post's or a comment's rows with its post_search / comment_search row, in the same
transaction (crud/search.index_posts, index_comments); a deleted post or comment takes its rows with
it (foreign keys, ON DELETE CASCADE). Filled here from post_search and comment_search.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from crud.search import post_term_weights

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Terms compare exactly (the analyzer has folded case); the longest is 42 characters.
TERM = mysql.VARCHAR(44, charset="utf8mb4", collation="utf8mb4_bin")
MYSQL_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_520_ci"}
BATCH = 1000

POST_SEARCH = sa.table(
    "post_search", sa.column("post_id", sa.Integer), sa.column("title_terms"), sa.column("content_terms")
)
COMMENT_SEARCH = sa.table("comment_search", sa.column("comment_id", sa.Integer), sa.column("terms"))
POST_TERM = sa.table("fts_post_term", sa.column("term"), sa.column("post_id"), sa.column("weight"))
COMMENT_TERM = sa.table("fts_comment_term", sa.column("term"), sa.column("comment_id"))
# 0007's, as (index, table, columns).
FULLTEXT_INDEXES = [
    ("fts_post_search_text", "post_search", ["title_terms", "content_terms"]),
    ("fts_post_search_title", "post_search", ["title_terms"]),
    ("fts_comment_search_terms", "comment_search", ["terms"]),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    _posting_table("fts_post_term", "post_id", "post", sa.Column("weight", sa.SmallInteger(), nullable=False))
    _posting_table("fts_comment_term", "comment_id", "comment")
    _fill()
    for name, table, _ in FULLTEXT_INDEXES:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for name, table, columns in FULLTEXT_INDEXES:
        op.create_index(name, table, columns, mysql_prefix="FULLTEXT")
    op.drop_table("fts_comment_term")
    op.drop_table("fts_post_term")


def _posting_table(name: str, key: str, parent: str, *columns: sa.Column[int]) -> None:
    op.create_table(
        name,
        sa.Column("term", TERM, nullable=False),
        sa.Column(key, sa.Integer(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("term", key, name=f"pk_{name}"),
        sa.ForeignKeyConstraint(
            [key], [f"{parent}.id"], name=f"fk_{name}_{key}_{parent}", ondelete="CASCADE"
        ),
        sa.Index(f"ix_{name}_{key}", key),
        **MYSQL_TABLE_OPTIONS,
    )


def _fill() -> None:
    """The posting rows of every post_search and comment_search row, BATCH of those at a time."""
    connection = op.get_bind()
    last = 0
    while batch := connection.execute(
        sa.select(POST_SEARCH.c.post_id, POST_SEARCH.c.title_terms, POST_SEARCH.c.content_terms)
        .where(POST_SEARCH.c.post_id > last)
        .order_by(POST_SEARCH.c.post_id)
        .limit(BATCH)
    ).all():
        rows = [
            {"term": term, "post_id": post_id, "weight": weight}
            for post_id, title, content in batch
            for term, weight in post_term_weights(title, content).items()
        ]
        if rows:
            connection.execute(POST_TERM.insert(), rows)
        last = batch[-1][0]
    last = 0
    while batch := connection.execute(
        sa.select(COMMENT_SEARCH.c.comment_id, COMMENT_SEARCH.c.terms)
        .where(COMMENT_SEARCH.c.comment_id > last)
        .order_by(COMMENT_SEARCH.c.comment_id)
        .limit(BATCH)
    ).all():
        rows = [
            {"term": term, "comment_id": comment_id}
            for comment_id, terms in batch
            for term in set(terms.split())
        ]
        if rows:
            connection.execute(COMMENT_TERM.insert(), rows)
        last = batch[-1][0]
