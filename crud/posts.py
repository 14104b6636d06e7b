"""Queries over posts, their likes and their views. No commits: services own the
transaction. Statements that load no ORM objects (the detail row, counters, likes, views) run on
the session's connection, as in crud/pages.py: the same rows and row counts without the ORM's
execution machinery, which costs more CPU than the statement's round trip (~100 µs each)."""

from collections import namedtuple
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    select,
    true,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from crud import search as search_crud
from crud.authors import AUTHOR_NAME
from crud.inserts import insert_if_absent
from crud.pages import PAGE_LIMIT, PAGE_OFFSET, Listing
from crud.search import Keywords, Shape
from database import UTCDateTime
from models import Board, Post, PostLike, PostView, User
from schemas import PostSort, SearchSort

Counter = InstrumentedAttribute[int]

SORT_COLUMNS: dict[PostSort, Counter | None] = {
    "latest": None,  # ids grow with time: newest first is id descending, straight off the index
    "views": Post.number_of_view,
    "likes": Post.number_of_like,
    "comments": Post.number_of_comment,
}

# The columns of a list row: no content (it can be 10,000 characters), the author joined.
LISTING_COLUMNS = (
    Post.id,
    Post.board_id,
    Post.name,
    Post.user_id,
    AUTHOR_NAME,
    Post.create_date,
    Post.update_date,
    Post.number_of_view,
    Post.number_of_comment,
    Post.number_of_like,
    Post.is_file_attached,
    Post.is_visible,
)


def with_board_condition(condition: ColumnElement[bool]) -> Select[Post, bool, bool]:
    """A post (the `post_id` bind parameter), whether its board is visible and whether its
    board meets the condition: a statement to build once and run with get_with_board_condition."""
    return (
        select(Post, Board.is_visible, condition)
        .join(Board, Board.id == Post.board_id)
        .where(Post.id == bindparam("post_id"))
    )


def ids_where(condition: ColumnElement[bool], post_ids: Collection[int]) -> Select[int]:
    """The ids among post_ids of the posts meeting a condition on Post and its Board."""
    return (
        select(Post.id).join(Board, Board.id == Post.board_id).where(Post.id.in_(list(post_ids)), condition)
    )


def get_with_board_condition(
    session: Session, query: Select[Post, bool, bool], *, post_id: int, params: dict[str, Any]
) -> tuple[Post, bool, bool] | None:
    """The post, its board's visibility and the condition's verdict; None when there is no post."""
    row = session.execute(query, {"post_id": post_id, **params}).first()
    return None if row is None else (row[0], bool(row[1]), bool(row[2]))


def with_reader_and_board_condition(
    condition: ColumnElement[bool],
) -> Select[User, Post | None, bool, bool]:
    """A user (the `reader_id` bind parameter) and a post (`post_id`; None when there is no
    such post) with whether its board is visible and meets the condition, which may name the
    user's columns: a statement to build once and run with get_with_reader."""
    return (
        select(User, Post, Board.is_visible, condition)
        .select_from(User)
        .outerjoin(Post, Post.id == bindparam("post_id"))
        .outerjoin(Board, Board.id == Post.board_id)
        .where(User.id == bindparam("reader_id"))
    )


def get_with_reader(
    session: Session, query: Select[User, Post | None, bool, bool], *, reader_id: int, post_id: int
) -> tuple[User, Post | None, bool, bool] | None:
    """The user, the post (or None), its board's visibility and the condition's verdict; None
    when there is no user."""
    row = session.execute(query, {"reader_id": reader_id, "post_id": post_id}).first()
    return None if row is None else (row[0], row[1], bool(row[2]), bool(row[3]))


def listing(*, board_id: int, include_hidden: bool, sort: PostSort, keywords: Keywords | None) -> Listing:
    """A board's posts as list rows (no content, author joined) in a stable order: ties broken
    by id, newest first. Hidden posts only when include_hidden. keywords: only the posts the
    search index matches (crud/search.py)."""
    shape = None if keywords is None else keywords.shape
    query, count_query = _listing_statements(sort, include_hidden, shape)
    params: dict[str, Any] = {"board_id": board_id}
    if keywords is not None:
        params.update(keywords.params)
    return Listing(query, count_query, params)


@lru_cache(maxsize=256)  # 4 sorts x 2 x (no search, or a search's shape): built on first use
def _listing_statements(
    sort: PostSort, include_hidden: bool, searching_in: Shape | None
) -> tuple[Select[*tuple[Any, ...]], Select[int]]:
    filters: list[ColumnElement[bool]] = [Post.board_id == bindparam("board_id")]
    if not include_hidden:
        # "= true", not "IS TRUE": MariaDB uses an index for the first only.
        filters.append(Post.is_visible == true())
    if searching_in is not None:
        filters.append(Post.id.in_(search_crud.matching_post_ids(searching_in)))
    query = select(*LISTING_COLUMNS).join(User, User.id == Post.user_id).where(*filters)
    sort_column = SORT_COLUMNS[sort]
    if sort_column is not None:
        query = query.order_by(sort_column.desc())
    # The COUNT needs no author join.
    return query.order_by(Post.id.desc()), select(func.count()).select_from(Post).where(*filters)


SCORE = "score"
BOARD_NAME = "board_name"
TOTAL = "total"
READABLE = "readable"


def search_listing(
    keywords: Keywords,
    *,
    readable: ColumnElement[bool],
    readable_params: Mapping[str, Any],
    sort: SearchSort,
    window: int | None,
    board_id: int | None = None,
    author: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> Listing:
    """The posts the search index matches (crud/search.py) that meet `readable` (a condition on
    Post and Board: the access rule, the same object for every reader of a kind, its
    readable_params making it this reader's) and the filters, as (post_id, SCORE, TOTAL, OVERFLOW)
    rows for search_page: best first (a post whose own text matches before one found by its
    comments; ties newest first), or newest first (no score).
    window: how many of the newest matches of the posts and of the comments are taken (None:
    all). author: the author's name (as names compare: ignoring case); since / before: the creation
    date's bounds, the first included."""
    given = _given_filters(board_id=board_id, author=author, since=since, before=before)
    query, count_query = _search_statements(
        keywords.shape,
        readable,
        ranked=sort == "relevance",
        windowed=window is not None,
        filters=frozenset(given),
    )
    params = {**readable_params, **given, **keywords.params, **search_crud.window_params(window)}
    return Listing(query, count_query, params)


# Built once per database, kind of reader, sort, window and set of filters (a statement built
# anew, and keyed anew for SQLAlchemy's compiled cache, cost a search more than 1 ms). Bounded:
# a caller handing a fresh condition per request would otherwise grow it without end.
@lru_cache(maxsize=256)
def _search_statements(
    shape: Shape, readable: ColumnElement[bool], *, ranked: bool, windowed: bool, filters: frozenset[str]
) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    # Newest first needs no score (a relevance costs a little per match), and neither does the count.
    matches = search_crud.keyword_matches(shape, scored=ranked, windowed=windowed)
    # Every match in the window is joined to its post and board, and whether the reader may read
    # it is a column (not a filter), so the total of the readable ones and whether the window
    # left matches out come with every row (window functions: a full-text search is the costly
    # part, and a separate COUNT would run it again), and the second even when none is readable
    # (the count_query, for a page past the end, reads them from any row).
    readable_here = and_(readable, *_filter_conditions(filters))
    judged = (
        select(
            matches.c.post_id,
            matches.c.score.label(SCORE),
            matches.c[search_crud.OWN],
            readable_here.label(READABLE),
            func.count(case((readable_here, 1))).over().label(TOTAL),
            # SUM, not MAX: MariaDB recomputes a MAX over the whole window for every row (60 ms
            # for a common word's 1,300 matches, against 1 ms).
            (func.sum(matches.c[search_crud.OVERFLOW]).over() > 0).label(search_crud.OVERFLOW),
        )
        .select_from(matches)
        .join(Post, Post.id == matches.c.post_id)
        .join(Board, Board.id == Post.board_id)
    )
    if "author" in filters:  # the only filter on the author's row
        judged = judged.join(User, User.id == Post.user_id)
    ranking = judged.subquery("judged")
    own, score, newest = ranking.c[search_crud.OWN].desc(), ranking.c[SCORE].desc(), ranking.c.post_id.desc()
    order = (own, score, newest) if ranked else (newest,)
    query = (
        select(ranking.c.post_id, ranking.c[SCORE], ranking.c[TOTAL], ranking.c[search_crud.OVERFLOW])
        .where(ranking.c[READABLE] == true())
        .order_by(*order)
        .offset(bindparam(PAGE_OFFSET, type_=Integer))
        .limit(bindparam(PAGE_LIMIT, type_=Integer))
    )
    count_query = select(ranking.c[TOTAL], ranking.c[search_crud.OVERFLOW]).limit(1)
    return query, count_query


def search_statements_built() -> int:
    """How many search statements have been built so far (each kind is built once)."""
    return _search_statements.cache_info().misses


def readable_ids_among(
    session: Session,
    post_ids: Sequence[int],
    *,
    readable: ColumnElement[bool],
    readable_params: Mapping[str, Any],
    board_id: int | None = None,
    author: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> list[int]:
    """Of these posts (found some other way: by meaning), the ids of those that meet `readable`
    (as in search_listing) and the filters, in the order of post_ids. Ids only: a search by
    meaning weighs hundreds of candidates and shows a page of them (search_rows)."""
    if not post_ids:
        return []
    given = _given_filters(board_id=board_id, author=author, since=since, before=before)
    query = _ids_among(readable, frozenset(given))
    params = {**readable_params, **given, "ids": list(post_ids)}
    kept = set(session.connection().execute(query, params).scalars())
    return [post_id for post_id in post_ids if post_id in kept]


@lru_cache(maxsize=64)
def _ids_among(readable: ColumnElement[bool], filters: frozenset[str]) -> Select[int]:
    query = (
        select(Post.id)
        .join(Board, Board.id == Post.board_id)
        .where(Post.id.in_(bindparam("ids", expanding=True)), readable, *_filter_conditions(filters))
    )
    return query.join(User, User.id == Post.user_id) if "author" in filters else query


def search_rows(session: Session, ranked: Sequence[tuple[int, float | None]], *, total: int) -> list[Any]:
    """search_page's rows (list columns, board name, content, SCORE, TOTAL) of these posts, in
    their order: (id, score) each, every one known to exist."""
    if not ranked:
        return []
    rows = session.connection().execute(_SEARCH_ROWS, {"ids": [post_id for post_id, _ in ranked]})
    by_id = {row.id: row for row in rows}
    return [_SearchRow(*by_id[post_id], score, total) for post_id, score in ranked]


def _given_filters(
    *, board_id: int | None, author: str | None, since: datetime | None, before: datetime | None
) -> dict[str, Any]:
    """A search's filters that are set, by the names of their bind parameters."""
    values = {"board_id": board_id, "author": author, "since": since, "before": before}
    return {name: value for name, value in values.items() if value is not None}


def _filter_conditions(names: frozenset[str]) -> list[ColumnElement[bool]]:
    """The conditions (on Post, and User for the author) of the filters named (_given_filters'),
    with bind parameters of the same names. author: the author's name (as names compare: ignoring
    case); since / before: the creation date's bounds, the first included."""
    conditions: list[ColumnElement[bool]] = []
    if "board_id" in names:
        conditions.append(Post.board_id == bindparam("board_id"))
    if "author" in names:
        conditions.append(User.name == bindparam("author"))
    if "since" in names:
        conditions.append(Post.create_date >= bindparam("since", type_=UTCDateTime()))
    if "before" in names:
        conditions.append(Post.create_date < bindparam("before", type_=UTCDateTime()))
    return conditions


class SearchResults(NamedTuple):
    rows: list[Any]
    total: int  # of the readable matches the window held
    overflow: bool  # the window left older matches out: `total` is a lower bound


def search_page(
    session: Session, listing: Listing, *, offset: int, limit: int, read_rows: bool = True
) -> SearchResults:
    """A page of search_listing's rows, the total of the matches and whether the window held them
    all: from the rows themselves (TOTAL, OVERFLOW), or, for a page past the end, from the
    listing's COUNT. Without read_rows, the rows are (id, score) only (a ranking to fuse)."""
    query, count_query, params = listing
    connection = session.connection()
    # The matches are sorted carrying only their id, score and the totals, then the page's rows
    # are read by id: sorting thousands of matches with their content (as one statement would)
    # cost as much again as finding them, for a common word.
    page = connection.execute(query, {**params, PAGE_OFFSET: offset, PAGE_LIMIT: limit}).all()
    if not page:
        first = connection.execute(count_query, params).first()
        return (
            SearchResults([], 0, False) if first is None else SearchResults([], int(first[0]), bool(first[1]))
        )
    if not read_rows:
        return SearchResults(
            [(post_id, score) for post_id, score, _, _ in page], int(page[0][2]), bool(page[0][3])
        )
    total = int(page[0].total)
    rows = search_rows(session, [(post_id, score) for post_id, score, _, _ in page], total=total)
    return SearchResults(rows, total, bool(page[0][3]))


_SEARCH_ROWS = (
    select(*LISTING_COLUMNS, Board.name.label(BOARD_NAME), Post.content)
    .join(Board, Board.id == Post.board_id)
    .join(User, User.id == Post.user_id)
    .where(Post.id.in_(bindparam("ids", expanding=True)))
)
# A page's rows as search_listing's statement gives them (attributes and _fields).
_ROW_TYPE: Any = namedtuple  # the fields come from the statement: no type checker can know them
_SearchRow = _ROW_TYPE("_SearchRow", [*_SEARCH_ROWS.selected_columns.keys(), SCORE, TOTAL])


VIEWER_LAST_VIEWED = "viewer_last_viewed"


def detail(session: Session, *, post_id: int, viewer_id: int) -> Row[*tuple[Any, ...]]:
    """The post with its author, its counters as they are now, whether the viewer likes it, and
    when the viewer was last counted as its reader (VIEWER_LAST_VIEWED; None if never)."""
    return session.connection().execute(_DETAIL, {"post_id": post_id, "viewer_id": viewer_id}).one()


_DETAIL = (
    select(
        *LISTING_COLUMNS,
        Post.content,
        exists()
        .where(PostLike.post_id == Post.id, PostLike.user_id == bindparam("viewer_id"))
        .label("liked_by_me"),
        select(PostView.last_viewed_date)
        .where(PostView.post_id == Post.id, PostView.user_id == bindparam("viewer_id"))
        .scalar_subquery()
        .label(VIEWER_LAST_VIEWED),
    )
    .join(User, User.id == Post.user_id)
    .where(Post.id == bindparam("post_id"))
)


def lock(session: Session, post_id: int) -> None:
    """Locks the post row until commit (SELECT ... FOR UPDATE; SQLite serializes writers anyway).

    A change to a counter locks the post before it touches the child row (like, view,
    comment): MariaDB's foreign-key check on the child row takes a shared lock on the post, and
    two transactions holding it then wait on each other to upgrade it, a deadlock. Most
    changes let the counter's own UPDATE (add_to_counter) take the lock, first thing; this
    explicit lock is for those that must look at the child row before they know the change.
    """
    session.execute(_LOCK, {"post_id": post_id})


_LOCK = select(Post.id).where(Post.id == bindparam("post_id")).with_for_update()


def add_to_counter(session: Session, post_id: int, counter: Counter, delta: int) -> None:
    """UPDATE post SET counter = counter + delta: the database does the arithmetic. On MariaDB
    the UPDATE locks the post row until commit, as `lock` does."""
    session.connection().execute(_counter_update(counter), {"post_id": post_id, "delta": delta})


@cache  # one statement per counter
def _counter_update(counter: Counter) -> Update:
    return (
        update(Post)
        .where(Post.id == bindparam("post_id"))
        .values({counter: counter + bindparam("delta", type_=Integer)})
        .execution_options(synchronize_session=False)
    )


def counter_value(session: Session, post_id: int, counter: Counter) -> int:
    return int(session.connection().scalar(select(counter).where(Post.id == post_id)) or 0)


def add_like(session: Session, *, post_id: int, user_id: int) -> bool:
    """True when the like is new."""
    return insert_if_absent(session, PostLike, {"post_id": post_id, "user_id": user_id})


def remove_like(session: Session, *, post_id: int, user_id: int) -> bool:
    """True when there was a like to remove."""
    result = session.connection().execute(
        delete(PostLike)
        .where(PostLike.post_id == post_id, PostLike.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def add_view(session: Session, *, post_id: int, user_id: int, now: datetime) -> bool:
    """Records the user's first view of the post; False when a view of theirs is already
    recorded (an insert-or-ignore: of two identical requests only one inserts)."""
    return insert_if_absent(
        session, PostView, {"post_id": post_id, "user_id": user_id, "last_viewed_date": now}
    )


def renew_view(session: Session, *, post_id: int, user_id: int, now: datetime, since: datetime) -> bool:
    """Moves the user's recorded view of the post to `now` if it is older than `since`; True
    when it was (a conditional UPDATE: of two identical requests only one renews). Only for a
    view known to exist: an UPDATE that finds no row takes a gap lock on MariaDB under
    REPEATABLE READ, which deadlocks against other readers' first views."""
    renewed = session.connection().execute(
        _RENEW_VIEW, {"view_post_id": post_id, "view_user_id": user_id, "now": now, "since": since}
    )
    return renewed.rowcount == 1


# Parameters not named after the columns: an UPDATE reserves those names for its SET clause.
_RENEW_VIEW = (
    update(PostView)
    .where(
        PostView.post_id == bindparam("view_post_id"),
        PostView.user_id == bindparam("view_user_id"),
        PostView.last_viewed_date < bindparam("since", type_=UTCDateTime()),
    )
    .values(last_viewed_date=bindparam("now", type_=UTCDateTime()))
    .execution_options(synchronize_session=False)
)
