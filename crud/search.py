"""Text search: the search index, and the LIKE helpers of the lists that match a substring.

The index holds each post's title and content terms (post_search) and each comment's (comment_search),
as search_text.py makes them, and each database reads them through a full-text index of its own
: SQLite's FTS5 tables (migration 0007), and on MariaDB posting tables of our own, a row per term
of each post or comment, keyed (term, id) (migration 0009, which replaced InnoDB's FULLTEXT
indexes: they read every posting of a common word before any LIMIT, 65-460 ms for one word here,
where the newest matches of a term are a range of the key, 1-6 ms). Both take every term whole, so
the same query finds the same posts on both; each ranks them by its own relevance (FTS5's BM25; on
MariaDB each term's weight in the post, a title's occurrence counting TITLE_WEIGHT times, through
BM25's saturation). A post matches when its title and content together hold every term of the
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
    Connection,
    Delete,
    Float,
    FromClause,
    Insert,
    Integer,
    Select,
    String,
    Subquery,
    TableClause,
    and_,
    bindparam,
    column,
    delete,
    func,
    insert,
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

# Relevance: a match in the title counts above one in the content (how much above is each
# database's own scale); a post whose own text holds the words ranks above one that only its
# comments hold (OWN, keyword_matches).
TITLE_WEIGHT = 4.0
CONTENT_WEIGHT = 1.0
OWN = "own"

# The bind parameters of the matching statements: the query (match_params fills them: SQLite's
# MATCH, MariaDB's TERM0, TERM1, ... and PREFIX0, ...), and how many of the newest matches of each
# side (posts, comments) a windowed search ranks.
MATCH = "search_match"
TERM = "search_term"
PREFIX = "search_prefix"
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


def index_post(session: Session, *, post_id: int, title: str, content: str, new: bool = False) -> None:
    """Writes the post's terms (a new post's, or an edited one's)."""
    index_posts(session, [(post_id, title, content)], new=new)


def index_comment(session: Session, *, comment_id: int, content: str, new: bool = False) -> None:
    """Writes the comment's terms (a new comment's, or an edited one's)."""
    index_comments(session, [(comment_id, content)], new=new)


def index_posts(session: Session, posts: Iterable[tuple[int, str, str]], *, new: bool = False) -> None:
    """Writes the terms of these posts: (id, title, content) each. new: written just now, in this
    transaction (nothing of theirs to replace)."""
    indexed = [
        (post_id, search_text.terms(title), search_text.terms(content)) for post_id, title, content in posts
    ]
    if not indexed:
        return
    kind, connection = database_kind(session), session.connection()
    rows = [
        {"post_id": post_id, "title_terms": title, "content_terms": content}
        for post_id, title, content in indexed
    ]
    connection.execute(_upsert(kind, PostSearch), rows)
    if kind == "mysql":  # SQLite's FTS5 follows post_search by its triggers
        postings = [
            {"term": term, "post_id": post_id, "weight": weight}
            for post_id, title, content in indexed
            for term, weight in post_term_weights(title, content).items()
        ]
        ids = [] if new else [post_id for post_id, _, _ in indexed]
        _replace_postings(connection, _POST_TERMS, "post_id", ids, postings)


def index_comments(session: Session, comments: Iterable[tuple[int, str]], *, new: bool = False) -> None:
    """Writes the terms of these comments: (id, content) each; new as for index_posts."""
    indexed = [(comment_id, search_text.terms(content)) for comment_id, content in comments]
    if not indexed:
        return
    kind, connection = database_kind(session), session.connection()
    rows = [{"comment_id": comment_id, "terms": terms} for comment_id, terms in indexed]
    connection.execute(_upsert(kind, CommentSearch), rows)
    if kind == "mysql":
        postings = [
            {"term": term, "comment_id": comment_id}
            for comment_id, terms in indexed
            for term in set(terms.split())
        ]
        ids = [] if new else [comment_id for comment_id, _ in indexed]
        _replace_postings(connection, _COMMENT_TERMS, "comment_id", ids, postings)


def post_term_weights(title_terms: str, content_terms: str) -> dict[str, int]:
    """Each term of a post with its weight there: its occurrences, one in the title counting
    TITLE_WEIGHT times (MariaDB's posting rows; SQLite's BM25 weighs the columns itself)."""
    weights: dict[str, int] = {}
    for terms, weight in ((title_terms, int(TITLE_WEIGHT)), (content_terms, int(CONTENT_WEIGHT))):
        for term in terms.split():
            weights[term] = weights.get(term, 0) + weight
    return {term: min(weight, MAX_WEIGHT) for term, weight in weights.items()}


MAX_WEIGHT = 32767  # a SMALLINT's


def _replace_postings(
    connection: Connection, postings: TableClause, key: str, ids: list[int], rows: list[dict[str, Any]]
) -> None:
    """Posting rows written, those of the documents `ids` first removed (an edit's old terms go)."""
    if ids:
        connection.execute(_postings_of(postings, key), {"ids": ids})
    if rows:
        connection.execute(_insert_postings(postings), rows)


@cache
def _postings_of(postings: TableClause, key: str) -> Delete:
    return delete(postings).where(postings.c[key].in_(bindparam("ids", expanding=True)))


@cache
def _insert_postings(postings: TableClause) -> Insert:
    return insert(postings)


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
class Shape:
    """What the matching statements depend on besides their parameters: the database, and on
    MariaDB (a join per term) how many terms and prefixes the query has. Statements are built once
    per shape."""

    kind: str  # database_kind's
    terms: int = 0
    prefixes: int = 0


@dataclass(frozen=True)
class Keywords:
    """A query as one database's index takes it: which database, and the terms."""

    kind: str  # database_kind's
    query: Query

    @property
    def params(self) -> dict[str, str]:
        return match_params(self.kind, self.query)

    @property
    def shape(self) -> Shape:
        if self.kind == "sqlite":  # one MATCH parameter, whatever the query
            return Shape(self.kind)
        return Shape(self.kind, len(self.query.terms), len(self.query.prefixes))


def window_params(matches: int | None) -> dict[str, int]:
    """The WINDOW parameter for ranking the newest `matches` of each side (None: every match, the
    window's statements are not used then)."""
    return {} if matches is None else {WINDOW: matches + 1}


def match_params(kind: str, query: Query) -> dict[str, str]:
    """The matching statements' parameters for this query: FTS5's query syntax (every term, a
    lone paired character as a prefix), or on MariaDB each term and each prefix's LIKE pattern.
    Terms hold letters and digits only (search_text.py): nothing in them needs escaping."""
    if kind == "sqlite":
        phrases = [f'"{term}"' for term in query.terms] + [f'"{prefix}" *' for prefix in query.prefixes]
        return {MATCH: " AND ".join(phrases)}
    return {f"{TERM}{i}": term for i, term in enumerate(query.terms)} | {
        f"{PREFIX}{i}": f"{prefix}%" for i, prefix in enumerate(query.prefixes)
    }


# SQLite: the FTS5 tables (not models: see models.FULL_TEXT_PREFIX). A column named after its
# table is the whole row, what MATCH takes; `rank` is the relevance, lowest first.
_FTS_POST = table("fts_post", column("rowid", Integer), column("rank", Float), column("fts_post", String))
_FTS_COMMENT = table(
    "fts_comment", column("rowid", Integer), column("rank", Float), column("fts_comment", String)
)
_POST_RANK = f"bm25({TITLE_WEIGHT}, {CONTENT_WEIGHT})"  # BM25 with the title weighted above the content


# MariaDB: the posting tables (not models either; migration 0009): a row per term of a post, with
# its weight there (post_term_weights), and per term of a comment, keyed (term, id), and by id.
_POST_TERMS = table(
    "fts_post_term", column("term", String), column("post_id", Integer), column("weight", Integer)
)
_COMMENT_TERMS = table("fts_comment_term", column("term", String), column("comment_id", Integer))
# BM25's saturation of a term's weight: a second occurrence adds less than the first.
SATURATION = 1.2


def _fts_match(fts_table: Any) -> ColumnElement[bool]:
    return fts_table.c[fts_table.name].op("MATCH")(bindparam(MATCH))  # type: ignore[no-any-return]


def _post_hits(shape: Shape, *, scored: bool) -> Select[*tuple[Any, ...]]:
    """post_id (and score) of each post whose title and content together hold the query."""
    if shape.kind == "sqlite":
        hits = select(_FTS_POST.c.rowid.label("post_id")).where(_fts_match(_FTS_POST))
        if not scored:
            return hits
        ranked = _FTS_POST.c.rank.op("MATCH")(literal(_POST_RANK))
        return hits.add_columns((-_FTS_POST.c.rank).label("score")).where(ranked)
    return _posting_hits(_POST_TERMS, "post_id", shape, scored=scored)


def _comment_hits(shape: Shape) -> Select[*tuple[Any, ...]]:
    """comment_id of each comment (visible or not) that holds the query."""
    if shape.kind == "sqlite":
        return select(_FTS_COMMENT.c.rowid.label("comment_id")).where(_fts_match(_FTS_COMMENT))
    return _posting_hits(_COMMENT_TERMS, "comment_id", shape, scored=False)


def _posting_hits(postings: TableClause, key: str, shape: Shape, *, scored: bool) -> Select[*tuple[Any, ...]]:
    """The ids (named `key`), and with `scored` a score, of the documents holding every term of
    the query (TERM0, ...: one row of `postings` per term, joined on the id; the first term's rows
    drive, newest first along the key (term, id)) and, for each prefix (PREFIX0, ...), a term that
    begins with it (read through the id's index: a prefix may begin thousands of terms)."""
    if shape.terms:
        firsts = postings.alias("term0")
        found: FromClause = firsts
        scores: list[ColumnElement[Any]] = [_saturated(firsts.c.weight)] if scored else []
        for i in range(1, shape.terms):
            more = postings.alias(f"term{i}")
            found = found.join(
                more, and_(more.c.term == bindparam(f"{TERM}{i}"), more.c[key] == firsts.c[key])
            )
            if scored:
                scores.append(_saturated(more.c.weight))
        document: ColumnElement[Any] = firsts.c[key]
        hits = select(document.label(key)).select_from(found).where(firsts.c.term == bindparam(f"{TERM}0"))
    else:  # prefixes only: the documents holding a term that begins with the first
        starts = postings.alias("prefixed")
        documents = (
            select(starts.c[key])
            .where(starts.c.term.like(bindparam(f"{PREFIX}0")))
            .distinct()
            .subquery("documents")
        )
        document = documents.c[key]
        hits = select(document.label(key))
        scores = []
    for i in range(shape.prefixes):
        prefixed = postings.alias(f"prefix{i}")
        weight = (
            select(func.max(prefixed.c.weight) if scored else literal(1))
            .where(prefixed.c[key] == document, prefixed.c.term.like(bindparam(f"{PREFIX}{i}")))
            .scalar_subquery()
        )
        hits = hits.where(weight.is_not(None))
        if scored:
            scores.append(_saturated(weight))
    if scored:
        total = sum(scores[1:], scores[0]) if scores else literal(0.0)
        hits = hits.add_columns(total.label("score"))
    return hits


def _saturated(weight: ColumnElement[Any]) -> ColumnElement[Any]:
    return weight / (weight + SATURATION)


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


@cache  # per shape, scored or not, windowed or not: the parameters are match_params' and WINDOW
def keyword_matches(shape: Shape, *, scored: bool, windowed: bool = True) -> Subquery:
    """(post_id, score, OWN, OVERFLOW) of the posts the query matches, in their title and content or
    in a visible comment: the keyword candidates. Windowed: the newest WINDOW matches of the posts
    and the newest WINDOW of the comments (a common word is in most of a site's posts; scoring them
    all costs more than a search may). Scored, a post's score is its own relevance (0 when only its
    comments hold the words); unscored (cheaper: counting, newest-first pages), every score is 0.
    OWN (1 or 0) says whether its own text holds them, which ranks first: a BM25 of a word in most
    posts is near 0 (its IDF), so no fixed amount for a comment's match could stay below every
    post's own."""
    posts = _newest(_post_hits(shape, scored=scored), windowed=windowed)
    score = posts.c.score if scored else literal(0.0).label("score")
    return _by_post(
        shape,
        select(posts.c.post_id, score, literal(1).label(OWN), posts.c[OVERFLOW]),
        windowed=windowed,
    )


def _by_post(shape: Shape, post_side: Select[*tuple[Any, ...]], *, windowed: bool) -> Subquery:
    """The post side's hits (post_id, score, 1, OVERFLOW) and the visible comments' posts (score 0,
    OWN 0), one row per post."""
    comments = _newest(_comment_hits(shape), windowed=windowed)
    comment_side = (
        select(Comment.post_id, literal(0.0).label("score"), literal(0), func.max(comments.c[OVERFLOW]))
        .select_from(comments)
        .join(Comment, Comment.id == comments.c.comment_id)
        .where(Comment.is_visible == true())
        .group_by(Comment.post_id)
    )
    hits = union_all(post_side, comment_side).subquery()
    return (
        select(
            hits.c.post_id,
            func.sum(hits.c.score).label("score"),
            func.max(hits.c[OWN]).label(OWN),
            func.max(hits.c[OVERFLOW]).label(OVERFLOW),
        )
        .group_by(hits.c.post_id)
        .subquery("keyword_matches")
    )


@cache
def matching_post_ids(shape: Shape) -> Select[*tuple[Any, ...]]:
    """The ids of all the posts the query matches: a filter (Post.id IN ...), for a board list's `q`."""
    comments = _comment_hits(shape).subquery()
    in_comments = (
        select(Comment.post_id)
        .join(comments, comments.c.comment_id == Comment.id)
        .where(Comment.is_visible == true())
    )
    return select(union(_post_hits(shape, scored=False), in_comments).subquery().c.post_id)


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
