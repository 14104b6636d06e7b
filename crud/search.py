"""Text search: the search index, and the LIKE helpers of the lists that match a substring.

The index holds each post's title and content terms (post_search) and each comment's (comment_search),
as search_text.py makes them, and each database reads them through a full-text index of its own
(migration 0007): SQLite's FTS5 tables, InnoDB's FULLTEXT indexes on MariaDB. Both take every term
whole, so the same query finds the same posts on both; each ranks them by its own relevance (FTS5's
BM25, InnoDB's TF-IDF). A post matches when its title and content together hold every term of the
query, or one of its visible comments does. Visibility and access are read from the posts, comments
and boards by the statements that match (a comment's here, a post's and its board's in
crud/posts.py), never stored in the index. No commits: services own the transaction.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    Integer,
    Select,
    String,
    Subquery,
    bindparam,
    column,
    func,
    literal,
    or_,
    select,
    table,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session

import search_text
from crud import table_of
from models import Comment, CommentSearch, Post, PostSearch
from search_text import Query

# Relevance: a match in the title counts above one in the content, which counts above one in a
# comment (how much above is each database's own scale).
TITLE_WEIGHT = 4.0
CONTENT_WEIGHT = 1.0
COMMENT_WEIGHT = 0.5

# The bind parameter of the matching statements (match_params fills it).
MATCH = "search_match"


def database_kind(session: Session) -> str:
    """Which full-text index the session's database has: "sqlite", or "mysql" (MariaDB, MySQL)."""
    name = session.get_bind().dialect.name
    kind = "mysql" if name in ("mysql", "mariadb") else name
    assert kind in ("sqlite", "mysql"), f"no search index on {name}"
    return kind


# --- writing the index --------------------------------------------------------------------------


def index_post(session: Session, *, post_id: int, title: str, content: str) -> None:
    """Writes the post's terms (a new post's, or an edited one's)."""
    index_posts(session, [(post_id, title, content)])


def index_comment(session: Session, *, comment_id: int, content: str) -> None:
    """Writes the comment's terms (a new comment's, or an edited one's)."""
    index_comments(session, [(comment_id, content)])


def index_posts(session: Session, posts: Iterable[tuple[int, str, str]]) -> None:
    """Writes the terms of these posts: (id, title, content) each."""
    rows = [
        {
            "post_id": post_id,
            "title_terms": search_text.terms(title),
            "content_terms": search_text.terms(content),
        }
        for post_id, title, content in posts
    ]
    if rows:
        session.connection().execute(_upsert(database_kind(session), PostSearch), rows)


def index_comments(session: Session, comments: Iterable[tuple[int, str]]) -> None:
    """Writes the terms of these comments: (id, content) each."""
    rows = [
        {"comment_id": comment_id, "terms": search_text.terms(content)} for comment_id, content in comments
    ]
    if rows:
        session.connection().execute(_upsert(database_kind(session), CommentSearch), rows)


@cache  # one statement per database and table
def _upsert(kind: str, model: type[DeclarativeBase]) -> Insert:
    """INSERT, or UPDATE the row of the same key: one statement either way."""
    source = table_of(model)
    values = [c.name for c in source.columns if not c.primary_key]
    if kind == "sqlite":
        insert_or_update = sqlite.insert(source)
        keys = [c.name for c in source.primary_key.columns]
        return insert_or_update.on_conflict_do_update(
            index_elements=keys, set_={name: insert_or_update.excluded[name] for name in values}
        )
    insert_or_replace = mysql.insert(source)
    return insert_or_replace.on_duplicate_key_update(
        {name: insert_or_replace.inserted[name] for name in values}
    )


def posts_after(session: Session, *, after_id: int, limit: int) -> Sequence[Any]:
    """(id, title, content) of the next `limit` posts after after_id, by id: a rebuild's batch."""
    query = select(Post.id, Post.name, Post.content).where(Post.id > after_id).order_by(Post.id).limit(limit)
    return session.connection().execute(query).all()


def comments_after(session: Session, *, after_id: int, limit: int) -> Sequence[Any]:
    """(id, content) of the next `limit` comments after after_id, by id."""
    query = select(Comment.id, Comment.content).where(Comment.id > after_id).order_by(Comment.id).limit(limit)
    return session.connection().execute(query).all()


def counts(session: Session) -> tuple[int, int]:
    """How many posts and comments there are (what a rebuild goes through)."""
    posts = session.scalar(select(func.count()).select_from(Post)) or 0
    comments = session.scalar(select(func.count()).select_from(Comment)) or 0
    return posts, comments


# --- reading it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keywords:
    """A query as one database's index takes it: which database, and the terms."""

    kind: str  # database_kind's
    query: Query

    @property
    def params(self) -> dict[str, str]:
        return match_params(self.kind, self.query)


def match_params(kind: str, query: Query) -> dict[str, str]:
    """The matching statements' parameters for this query: FTS5's query syntax (every term, a
    lone paired character as a prefix) or InnoDB's boolean mode (+ for required, * for a prefix).
    Terms hold letters and digits only (search_text.py): nothing in them needs escaping."""
    if kind == "sqlite":
        phrases = [f'"{term}"' for term in query.terms] + [f'"{prefix}" *' for prefix in query.prefixes]
        return {MATCH: " AND ".join(phrases)}
    words = [*query.terms, *(f"{prefix}*" for prefix in query.prefixes)]
    return {MATCH: " ".join(f"+{word}" for word in words)}


# SQLite: the FTS5 tables (not models: see models.FULL_TEXT_PREFIX). A column named after its
# table is the whole row, what MATCH takes; `rank` is the relevance, lowest first.
_FTS_POST = table("fts_post", column("rowid", Integer), column("rank", Float), column("fts_post", String))
_FTS_COMMENT = table(
    "fts_comment", column("rowid", Integer), column("rank", Float), column("fts_comment", String)
)
_POST_RANK = f"bm25({TITLE_WEIGHT}, {CONTENT_WEIGHT})"  # BM25 with the title weighted above the content


def _fts_match(fts_table: Any) -> ColumnElement[bool]:
    return fts_table.c[fts_table.name].op("MATCH")(bindparam(MATCH))  # type: ignore[no-any-return]


def _innodb_match(*columns: InstrumentedAttribute[str]) -> ColumnElement[float]:
    """MATCH (columns) AGAINST (the MATCH parameter IN BOOLEAN MODE): a FULLTEXT index of exactly
    these columns answers it. Its value is InnoDB's relevance; the same MATCH in a statement's
    filter and in its score is searched once."""
    return mysql.match(*(column.expression for column in columns), against=bindparam(MATCH)).in_boolean_mode()


def _post_hits(kind: str, *, scored: bool) -> Select[*tuple[Any, ...]]:
    """post_id (and score) of each post whose title and content together hold the query."""
    if kind == "sqlite":
        hits = select(_FTS_POST.c.rowid.label("post_id")).where(_fts_match(_FTS_POST))
        if not scored:
            return hits
        ranked = _FTS_POST.c.rank.op("MATCH")(literal(_POST_RANK))
        return hits.add_columns((-_FTS_POST.c.rank).label("score")).where(ranked)
    hits = select(PostSearch.post_id).where(_innodb_match(PostSearch.title_terms, PostSearch.content_terms))
    if not scored:
        return hits
    # The filter's MATCH again (searched once for both); the title's counts when it holds every term.
    title = _innodb_match(PostSearch.title_terms)
    text = _innodb_match(PostSearch.title_terms, PostSearch.content_terms)
    return hits.add_columns(((TITLE_WEIGHT - CONTENT_WEIGHT) * title + CONTENT_WEIGHT * text).label("score"))


def _comment_hits(kind: str, *, scored: bool) -> Select[*tuple[Any, ...]]:
    """post_id (and score) of each visible comment that holds the query."""
    visible = Comment.is_visible == true()
    score: ColumnElement[float]
    if kind == "sqlite":
        hits = (
            select(Comment.post_id)
            .select_from(_FTS_COMMENT)
            .join(Comment, Comment.id == _FTS_COMMENT.c.rowid)
            .where(_fts_match(_FTS_COMMENT), visible)
        )
        score = -_FTS_COMMENT.c.rank
    else:
        hits = (
            select(Comment.post_id)
            .select_from(CommentSearch)
            .join(Comment, Comment.id == CommentSearch.comment_id)
            .where(_innodb_match(CommentSearch.terms), visible)
        )
        score = _innodb_match(CommentSearch.terms)
    return hits.add_columns((COMMENT_WEIGHT * score).label("score")) if scored else hits


@cache  # one per database: its parameters are match_params'
def scored_matches(kind: str) -> Subquery:
    """(post_id, score) of every post the query matches, in its title and content or in a visible
    comment: the keyword candidates, for ranking. A post's score adds its best comment's to its own."""
    comments = _comment_hits(kind, scored=True).subquery()
    best_comments = select(comments.c.post_id, func.max(comments.c.score).label("score")).group_by(
        comments.c.post_id
    )
    hits = union_all(_post_hits(kind, scored=True), best_comments).subquery()
    return (
        select(hits.c.post_id, func.sum(hits.c.score).label("score"))
        .group_by(hits.c.post_id)
        .subquery("keyword_matches")
    )


@cache
def matches(kind: str) -> Subquery:
    """(post_id) of every post the query matches, as scored_matches, unscored: cheaper, for
    counting, filtering and newest-first pages."""
    return union(_post_hits(kind, scored=False), _comment_hits(kind, scored=False)).subquery(
        "keyword_matches"
    )


@cache
def matching_post_ids(kind: str) -> Select[*tuple[Any, ...]]:
    """The ids of the posts the query matches: a filter (Post.id IN ...)."""
    return select(matches(kind).c.post_id)


def matching_comments(session: Session, *, query: Query, post_ids: Sequence[int]) -> dict[int, str]:
    """The content of the first (oldest) visible comment of each of these posts that holds the
    query: what a match found in a comment shows. The stored terms of these posts' comments are
    matched here (Query.found_in, what the index answers) rather than by a full-text search, which
    would go through every comment holding a common word (58,000 for one in the bench) to keep
    the few of a page's posts."""
    if not post_ids:
        return {}
    statement = (
        select(Comment.post_id, Comment.content, CommentSearch.terms)
        .join(CommentSearch, CommentSearch.comment_id == Comment.id)
        .where(Comment.post_id.in_(list(post_ids)), Comment.is_visible == true())
        .order_by(Comment.post_id, Comment.id)
    )
    found: dict[int, str] = {}
    for post_id, content, terms in session.connection().execute(statement):
        if post_id not in found and query.found_in(terms.split()):
            found[post_id] = content
    return found


# --- LIKE -------------------------------------------------------------------------------------------

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """The text with LIKE's wildcards made literal, so a search for "100%" finds "100%"."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(q: str) -> str:
    """The LIKE pattern for "contains q", for use with `contains_pattern`."""
    return f"%{escape_like(q)}%"


def contains_pattern(
    pattern: ColumnElement[str] | str, *columns: InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """SQL condition: any of the columns matches the `like_pattern`, ignoring case (lower() on
    both sides, so SQLite and MariaDB agree; Hangul has no case and matches as typed). The
    pattern may be a bind parameter, so a statement can be built once and reused."""
    return or_(*(column.ilike(pattern, escape=LIKE_ESCAPE) for column in columns))
