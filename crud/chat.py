"""Queries over conversations (ChatSession), their members' read markers and messages (Chat).
No commits here: the calling service owns the transaction."""

from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from crud import changed_rows
from models import Chat, ChatSession, ChatSessionMember, User


def get_conversation(session: Session, conversation_id: int) -> ChatSession | None:
    query = select(ChatSession).options(joinedload(ChatSession.user)).where(ChatSession.id == conversation_id)
    return session.scalar(query)


def add_conversation(session: Session, *, user_id: int, name: str) -> ChatSession:
    conversation = ChatSession(user_id=user_id, name=name)
    session.add(conversation)
    session.flush()
    session.add(ChatSessionMember(chat_session_id=conversation.id, user_id=user_id))
    session.flush()
    return conversation


def _visible_to(query: Select[*tuple[Any, ...]], user: User) -> Select[*tuple[Any, ...]]:
    """Administrators read every conversation; a user reads the visible ones they opened."""
    if user.is_superuser:
        return query
    return query.where(ChatSession.user_id == user.id, ChatSession.is_visible.is_(True))


def conversations_page_query(
    user: User, *, is_closed: bool | None
) -> tuple[Select[*tuple[Any, ...]], Select[int]]:
    """Rows of (ChatSession, my read marker, my unread count, last message id), most recent
    activity first, every figure computed by the database in the one query; and its COUNT."""
    marker = func.coalesce(ChatSessionMember.last_read_chat_id, 0)
    unread = (
        select(func.count())
        .select_from(Chat)
        .where(
            Chat.chat_session_id == ChatSession.id,
            Chat.is_visible.is_(True),
            Chat.user_id != user.id,
            Chat.id > marker,
        )
        .correlate(ChatSession, ChatSessionMember)
        .scalar_subquery()
        .label("unread_count")
    )
    last_message_id = (
        select(func.max(Chat.id))
        .where(Chat.chat_session_id == ChatSession.id, Chat.is_visible.is_(True))
        .correlate(ChatSession)
        .scalar_subquery()
        .label("last_message_id")
    )
    query = (
        select(ChatSession, ChatSessionMember.last_read_chat_id, unread, last_message_id)
        .outerjoin(
            ChatSessionMember,
            and_(ChatSessionMember.chat_session_id == ChatSession.id, ChatSessionMember.user_id == user.id),
        )
        .options(joinedload(ChatSession.user))
        # Empty conversations (NULL) sort last on both SQLite and MariaDB.
        .order_by(last_message_id.desc(), ChatSession.id.desc())
    )
    count = select(func.count()).select_from(ChatSession)
    query, count = _visible_to(query, user), _visible_to(count, user)
    if is_closed is not None:
        query = query.where(ChatSession.is_closed.is_(is_closed))
        count = count.where(ChatSession.is_closed.is_(is_closed))
    return query, count


def messages_by_id(session: Session, message_ids: list[int]) -> dict[int, Chat]:
    if not message_ids:
        return {}
    query = select(Chat).options(joinedload(Chat.user)).where(Chat.id.in_(message_ids))
    return {chat.id: chat for chat in session.scalars(query)}


def get_message(session: Session, message_id: int) -> Chat | None:
    return session.scalar(select(Chat).options(joinedload(Chat.user)).where(Chat.id == message_id))


def history(
    session: Session,
    *,
    conversation_id: int,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[Chat], bool]:
    """Up to `limit` messages, deleted ones included, oldest first: the first ones after
    `after_id` when it is given (a client catching up), otherwise the latest ones before
    `before_id` (scrolling back); and whether more lie beyond them that way (one row more is
    read to know)."""
    query = select(Chat).options(joinedload(Chat.user)).where(Chat.chat_session_id == conversation_id)
    if before_id is not None:
        query = query.where(Chat.id < before_id)
    if after_id is not None:
        query = query.where(Chat.id > after_id)
        oldest_first = list(session.scalars(query.order_by(Chat.id).limit(limit + 1)))
        return oldest_first[:limit], len(oldest_first) > limit
    newest_first = list(session.scalars(query.order_by(Chat.id.desc()).limit(limit + 1)))
    return newest_first[:limit][::-1], len(newest_first) > limit


def neighbour_ids(
    session: Session, *, conversation_id: int, at_most: int | None, at_least: int | None
) -> tuple[int | None, int | None]:
    """The id of the conversation's newest message at or before `at_most` and of its oldest at
    or after `at_least` (None where not asked, or where there is none), in one statement."""
    of_conversation = Chat.chat_session_id == conversation_id
    older = None if at_most is None else select(func.max(Chat.id)).where(of_conversation, Chat.id <= at_most)
    newer = (
        None if at_least is None else select(func.min(Chat.id)).where(of_conversation, Chat.id >= at_least)
    )
    asked = [part.scalar_subquery() for part in (older, newer) if part is not None]
    if not asked:
        return None, None
    found = iter(session.execute(select(*asked)).one())
    return (None if older is None else next(found)), (None if newer is None else next(found))


def find_by_client_id(session: Session, *, user_id: int, client_id: str) -> Chat | None:
    query = (
        select(Chat)
        .options(joinedload(Chat.user))
        .where(Chat.user_id == user_id, Chat.client_id == client_id)
    )
    return session.scalar(query)


def add_message(
    session: Session, *, user_id: int, conversation_id: int, content: str, client_id: str | None
) -> Chat:
    chat = Chat(user_id=user_id, chat_session_id=conversation_id, content=content, client_id=client_id)
    session.add(chat)
    session.flush()
    return chat


def last_message_id(session: Session, conversation_id: int) -> int | None:
    query = select(func.max(Chat.id)).where(Chat.chat_session_id == conversation_id)
    return session.scalar(query)


def move_read_marker(session: Session, *, conversation_id: int, user_id: int, last_read_id: int) -> None:
    """Moves the member's marker forward to `last_read_id` (never back), making the member row
    first if there is none (an administrator reading a conversation for the first time)."""
    marker = ChatSessionMember.last_read_chat_id
    forward = (
        update(ChatSessionMember)
        .where(ChatSessionMember.chat_session_id == conversation_id, ChatSessionMember.user_id == user_id)
        .values(
            last_read_chat_id=case((or_(marker.is_(None), marker < last_read_id), last_read_id), else_=marker)
        )
    )
    if changed_rows(session, forward):
        return
    try:
        with session.begin_nested():
            session.add(
                ChatSessionMember(
                    chat_session_id=conversation_id, user_id=user_id, last_read_chat_id=last_read_id
                )
            )
    except IntegrityError:  # another request made the row first: move it as above
        session.execute(forward)
