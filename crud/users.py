"""Queries over users. No commits here: the calling service owns the transaction."""

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from models import AIlog, ChatSession, Comment, Post, User


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_by_login(session: Session, login: str) -> User | None:
    """A user by email (when the login holds '@') or by name, ignoring case."""
    login = login.strip()
    if "@" in login:
        return session.scalar(select(User).where(User.email == login.lower()))
    return session.scalar(select(User).where(func.lower(User.name) == login.lower()))


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.lower()))


def name_taken(session: Session, name: str, *, except_id: int | None = None) -> bool:
    query = select(User.id).where(func.lower(User.name) == name.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.scalar(query.limit(1)) is not None


def email_taken(session: Session, email: str, *, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.email == email.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return session.scalar(query.limit(1)) is not None


def search_query(*, q: str | None, is_banned: bool | None) -> Select[tuple[User]]:
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
    def count(model: type[Post] | type[Comment] | type[ChatSession] | type[AIlog]) -> object:
        return select(func.count()).select_from(model).where(model.user_id == user_id).scalar_subquery()

    row = session.execute(select(count(Post), count(Comment), count(ChatSession), count(AIlog))).one()
    return {"posts": row[0], "comments": row[1], "conversations": row[2], "ai_jobs": row[3]}


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
