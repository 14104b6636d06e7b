"""Queries over posts, their likes and their views. No commits: services own the
transaction."""

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, delete, exists, func, select, true, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from crud.authors import AUTHOR_NAME
from crud.inserts import insert_if_absent
from crud.pages import Listing
from crud.search import contains_pattern, like_pattern
from models import Post, PostLike, PostView, User
from schemas import PostSort

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


def listing(*, board_id: int, include_hidden: bool, sort: PostSort, q: str | None) -> Listing:
    """A board's posts as list rows (no content, author joined) in a stable order: ties broken
    by id, newest first. Hidden posts only when include_hidden. q: title or content contains it."""
    query, count_query = _listing_statements(sort, include_hidden, q is not None)
    params: dict[str, Any] = {"board_id": board_id}
    if q is not None:
        params["pattern"] = like_pattern(q)
    return Listing(query, count_query, params)


@cache  # 4 sorts x 2 x 2: sixteen statements, built on first use
def _listing_statements(
    sort: PostSort, include_hidden: bool, searching: bool
) -> tuple[Select[Any], Select[tuple[int]]]:
    filters: list[ColumnElement[bool]] = [Post.board_id == bindparam("board_id")]
    if not include_hidden:
        # "= true", not "IS TRUE": MariaDB uses an index for the first only.
        filters.append(Post.is_visible == true())
    if searching:
        filters.append(contains_pattern(bindparam("pattern"), Post.name, Post.content))
    query = select(*LISTING_COLUMNS).join(User, User.id == Post.user_id).where(*filters)
    sort_column = SORT_COLUMNS[sort]
    if sort_column is not None:
        query = query.order_by(sort_column.desc())
    # The COUNT needs no author join.
    return query.order_by(Post.id.desc()), select(func.count()).select_from(Post).where(*filters)


def detail(session: Session, *, post_id: int, viewer_id: int) -> Row[Any]:
    """The post with its author, its counters as they are now and whether the viewer likes it."""
    liked_by_me = exists().where(PostLike.post_id == Post.id, PostLike.user_id == viewer_id)
    query = (
        select(*LISTING_COLUMNS, Post.content, liked_by_me.label("liked_by_me"))
        .join(User, User.id == Post.user_id)
        .where(Post.id == post_id)
    )
    return session.execute(query).one()


def lock(session: Session, post_id: int) -> None:
    """Locks the post row until commit (SELECT ... FOR UPDATE; SQLite serializes writers anyway).

    Every change that moves a counter takes this lock first, before touching likes, views or
    comments. Without it, MariaDB's foreign-key check on the child row takes a shared lock on
    the post and two transactions then wait on each other to upgrade it: a deadlock.
    """
    session.execute(select(Post.id).where(Post.id == post_id).with_for_update())


def add_to_counter(session: Session, post_id: int, counter: Counter, delta: int) -> None:
    """UPDATE post SET counter = counter + delta: the database does the arithmetic."""
    session.execute(
        update(Post)
        .where(Post.id == post_id)
        .values({counter: counter + delta})
        .execution_options(synchronize_session=False)
    )


def counter_value(session: Session, post_id: int, counter: Counter) -> int:
    return int(session.scalar(select(counter).where(Post.id == post_id)) or 0)


def add_like(session: Session, *, post_id: int, user_id: int) -> bool:
    """True when the like is new."""
    return insert_if_absent(session, PostLike, {"post_id": post_id, "user_id": user_id})


def remove_like(session: Session, *, post_id: int, user_id: int) -> bool:
    """True when there was a like to remove."""
    result = session.execute(
        delete(PostLike)
        .where(PostLike.post_id == post_id, PostLike.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def viewed_since(session: Session, *, post_id: int, user_id: int, since: datetime) -> bool:
    """Whether the user was counted as a reader of the post at or after `since`."""
    query = select(PostView.last_viewed_date).where(PostView.post_id == post_id, PostView.user_id == user_id)
    last_viewed = session.scalar(query)
    return last_viewed is not None and last_viewed >= since


def record_view(session: Session, *, post_id: int, user_id: int, now: datetime, since: datetime) -> bool:
    """Marks the user as a reader of the post now, unless they already were at or after `since`.
    True when this view counts. Race-free: the renewal is a conditional UPDATE and the first
    view an insert-or-ignore, so of two identical requests only one can return True."""
    renewed = session.execute(
        update(PostView)
        .where(PostView.post_id == post_id, PostView.user_id == user_id, PostView.last_viewed_date < since)
        .values(last_viewed_date=now)
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount == 1:
        return True
    return insert_if_absent(
        session, PostView, {"post_id": post_id, "user_id": user_id, "last_viewed_date": now}
    )
