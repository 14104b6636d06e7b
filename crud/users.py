"""Queries over users. No commits here: the calling service owns the transaction."""

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

import names
from crud.search import escape_like
from models import AIlog, ChatSession, Comment, Post, User
from schemas import compatible_form

# Built once: every authenticated request loads its user, and a prebuilt statement skips the
# statement construction and cache-key generation that session.get pays on each call.
BY_ID = select(User).where(User.id == bindparam("user_id"))


def get(session: Session, user_id: int) -> User | None:
    return session.scalar(BY_ID, {"user_id": user_id})


def name_is(name: str) -> ColumnElement[bool]:
    """`User.name` equals `name`, ignoring case: the column's collation decides on every backend
    (models.User.name), so the unique index serves the look-up."""
    return User.name == name


def get_by_login(session: Session, login: str) -> User | None:
    """A user by email (when the login holds '@') or by name, ignoring case; a name as stored
    (schemas.compatible_form)."""
    login = str(compatible_form(login.strip()))
    if "@" in login:
        return session.scalar(select(User).where(User.email == login.lower()))
    return session.scalar(select(User).where(name_is(login)))


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.lower()))


def name_taken(session: Session, name: str, *, except_id: int | None = None) -> bool:
    """Whether another user has this name, ignoring case, or a look-alike of it (names.py): one
    query, each half served by its unique index."""
    query = select(User.id).where(or_(name_is(name), User.name_skeleton == names.name_skeleton(name)))
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.scalar(query.limit(1)) is not None


def email_taken(session: Session, email: str, *, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.email == email.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.scalar(query.limit(1)) is not None


def search_query(*, q: str | None, is_banned: bool | None) -> Select[User]:
    query = select(User)
    if q:
        pattern = f"%{escape_like(q.lower())}%"
        query = query.where(
            or_(func.lower(User.name).like(pattern, escape="\\"), User.email.like(pattern, escape="\\"))
        )
    if is_banned is not None:
        query = query.where(User.is_banned == is_banned)
    return query.order_by(User.id)


def activity_counts(session: Session, user_id: int) -> dict[str, int]:
    def count(model: type[Post] | type[Comment] | type[ChatSession] | type[AIlog]) -> ScalarSelect[int]:
        return select(func.count()).select_from(model).where(model.user_id == user_id).scalar_subquery()

    row = session.execute(select(count(Post), count(Comment), count(ChatSession), count(AIlog))).one()
    return {"posts": row[0], "comments": row[1], "conversations": row[2], "ai_jobs": row[3]}


def lock_active_superusers(session: Session) -> list[int]:
    """The ids of the administrators whose accounts are not deleted, their rows locked until the
    transaction ends. The rows are found first and then locked by primary key in id order, so
    only those rows are locked and two callers never deadlock; the locking read sees the latest
    commit, so a caller that waited sees what the other one changed."""
    active = (User.is_superuser.is_(True), User.deleted_date.is_(None))
    candidates = list(session.scalars(select(User.id).where(*active)))
    if not candidates:
        return []
    locked = select(User.id).where(User.id.in_(candidates), *active).order_by(User.id).with_for_update()
    return list(session.scalars(locked))
