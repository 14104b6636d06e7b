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
    null,
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

# Relevance: a match in the title counts above one in the content (how much above is each
# database's own scale); a comment's adds a small fixed amount (scored_matches).
TITLE_WEIGHT = 4.0
CONTENT_WEIGHT = 1.0
COMMENT_SCORE = 1e-3

# The bind parameters of the matching statements: the query (match_params fills it), and how many
# of the newest matches of each side (posts, comments) a windowed search ranks.
MATCH = "search_match"
WINDOW = "search_window"
# How many of the newest matches of each side a search ranks at first (search_page widens it when
# the readable ones among them do not fill the page).
FIRST_WINDOW = 1000
# The column that says a window held fewer than all the matches.
OVERFLOW = "overflow"


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


def window_params(matches: int | None) -> dict[str, int]:
    """The WINDOW parameter for ranking the newest `matches` of each side (None: every match, the
    window's statements are not used then)."""
    return {} if matches is None else {WINDOW: matches + 1}


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


def _comment_hits(kind: str) -> Select[*tuple[Any, ...]]:
    """comment_id of each comment (visible or not) that holds the query."""
    if kind == "sqlite":
        return select(_FTS_COMMENT.c.rowid.label("comment_id")).where(_fts_match(_FTS_COMMENT))
    return select(CommentSearch.comment_id).where(_innodb_match(CommentSearch.terms))


def _newest(hits: Select[*tuple[Any, ...]], *, windowed: bool) -> Subquery:
    """The hits, newest first (by the id they carry first), at most the WINDOW parameter of them
    when windowed, and whether there were more (OVERFLOW). The index finds the newest matches of a
    word without going through its older ones (FTS5 reads a doclist from either end; InnoDB sorts
    the ids it found), and only those are scored."""
    window_rows = bindparam(WINDOW, type_=Integer)
    if windowed:
        hits = hits.order_by(hits.selected_columns[0].desc()).limit(window_rows)
    window = hits.subquery()
    # A full window may have left older matches out (window_params asks for one row more than it
    # ranks, so a window of exactly all the matches is not taken for one that overflowed).
    overflow = func.count().over() >= window_rows if windowed else literal(False)
    return select(window, overflow.label(OVERFLOW)).subquery()


@cache  # one per database, with or without the window: the parameters are match_params' and WINDOW
def scored_matches(kind: str, *, windowed: bool = True) -> Subquery:
    """(post_id, score, OVERFLOW) of the posts the query matches, in their title and content or in a
    visible comment: the keyword candidates, for ranking. Windowed: the newest WINDOW matches of the
    posts and the newest WINDOW of the comments (a common word is in most of a site's posts; scoring
    them all costs more than a search may). A post's score is its own relevance, plus COMMENT_SCORE
    when a visible comment holds the query too: a post whose own text holds the words ranks above
    one that only its comments hold."""
    posts = _newest(_post_hits(kind, scored=True), windowed=windowed)
    return _by_post(kind, select(posts.c.post_id, posts.c.score, posts.c[OVERFLOW]), windowed=windowed)


@cache
def matches(kind: str, *, windowed: bool = True) -> Subquery:
    """(post_id, score: null, OVERFLOW) of the posts the query matches, as scored_matches, unscored:
    cheaper, for counting and newest-first pages."""
    posts = _newest(_post_hits(kind, scored=False), windowed=windowed)
    return _by_post(
        kind, select(posts.c.post_id, null().label("score"), posts.c[OVERFLOW]), windowed=windowed
    )


def _by_post(kind: str, post_side: Select[*tuple[Any, ...]], *, windowed: bool) -> Subquery:
    """The post side's hits and the visible comments' posts, one row per post."""
    comments = _newest(_comment_hits(kind), windowed=windowed)
    comment_side = (
        select(Comment.post_id, literal(COMMENT_SCORE).label("score"), func.max(comments.c[OVERFLOW]))
        .select_from(comments)
        .join(Comment, Comment.id == comments.c.comment_id)
        .where(Comment.is_visible == true())
        .group_by(Comment.post_id)
    )
    hits = union_all(post_side, comment_side).subquery()
    return (
        select(
            hits.c.post_id, func.sum(hits.c.score).label("score"), func.max(hits.c[OVERFLOW]).label(OVERFLOW)
        )
        .group_by(hits.c.post_id)
        .subquery("keyword_matches")
    )


@cache
def matching_post_ids(kind: str) -> Select[*tuple[Any, ...]]:
    """The ids of all the posts the query matches: a filter (Post.id IN ...), for a board list's `q`."""
    comments = _comment_hits(kind).subquery()
    in_comments = (
        select(Comment.post_id)
        .join(comments, comments.c.comment_id == Comment.id)
        .where(Comment.is_visible == true())
    )
    return select(union(_post_hits(kind, scored=False), in_comments).subquery().c.post_id)


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
