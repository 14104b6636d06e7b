"""Queries over comments. No commits: services own the transaction."""

from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, func, select, true, update
from sqlalchemy.orm import Session

from crud import changed_rows
from crud.authors import AUTHOR_NAME
from crud.pages import Listing
from models import Comment, User

LISTING_COLUMNS = (
    Comment.id,
    Comment.post_id,
    Comment.user_id,
    AUTHOR_NAME,
    Comment.content,
    Comment.create_date,
    Comment.update_date,
    Comment.is_file_attached,
    Comment.is_visible,
)


def listing(*, post_id: int, include_hidden: bool) -> Listing:
    """A post's comments with their authors, oldest first (a conversation reads top down)."""
    query, count_query = _listing_statements(include_hidden)
    return Listing(query, count_query, {"post_id": post_id})


# Built once (access checks load comments and posts by id on every request into them).
BY_ID = select(Comment).where(Comment.id == bindparam("comment_id"))


def get(session: Session, comment_id: int) -> Comment | None:
    return session.scalar(BY_ID, {"comment_id": comment_id})


@cache
def _listing_statements(include_hidden: bool) -> tuple[Select[*tuple[Any, ...]], Select[int]]:
    filters: list[ColumnElement[bool]] = [Comment.post_id == bindparam("post_id")]
    if not include_hidden:
        filters.append(Comment.is_visible == true())  # "= true" can use the index; "IS TRUE" cannot
    query = select(*LISTING_COLUMNS).join(User, User.id == Comment.user_id).where(*filters)
    return query.order_by(Comment.id), select(func.count()).select_from(Comment).where(*filters)


def set_visibility(session: Session, *, comment_id: int, visible: bool) -> bool:
    """Shows or hides the comment; True only when that changed something, so the post's
    comment count moves exactly once however often the request is repeated."""
    return (
        changed_rows(
            session,
            update(Comment)
            .where(Comment.id == comment_id, Comment.is_visible.is_(not visible))
            .values(is_visible=visible)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def row(session: Session, comment_id: int) -> Row[*tuple[Any, ...]]:
    """One comment as a list row, with its author."""
    query = select(*LISTING_COLUMNS).join(User, User.id == Comment.user_id).where(Comment.id == comment_id)
    return session.execute(query).one()
