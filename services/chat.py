"""Support conversations between a user and the administrators.

The rules: a user reads only the conversations they opened; every administrator reads and
answers every conversation. A message is committed to the database before anyone is told of
it; then a live event goes through the broker to every socket of the opener and of every
administrator, on every process. The same functions serve REST (one request Session) and the
WebSocket (routers/chat_socket.py runs them in a worker thread with a Session of their own);
those that tell anyone take the running app's broker as `live` (services/broker.NO_BROKER
outside an app).

A deleted message keeps its place in the history as a tombstone (`message_public`): members
see that something was said and removed, not what; administrators keep the content for
moderation. The listing's last message and unread counts leave deleted messages out: a
preview of "(message deleted)" or a badge for something nobody can read helps no one.
"""

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import chat as chat_crud
from crud import pages
from database import utcnow
from errors import Conflict, Forbidden, NotFound
from models import Chat, ChatSession, User
from schemas import (
    ChatMessagePublic,
    ChatSessionCreate,
    ChatSessionPublic,
    ChatSessionSummary,
    ChatSessionUpdate,
    ChatUser,
    MessageHistory,
    Page,
)
from services.broker import Audience, LiveEvents

# WebSocket close codes (4000-4999 are the application's own).
CLOSE_UNAUTHORIZED = 4401  # missing, bad or expired token; or the account signed out everywhere
CLOSE_BANNED = 4403
CLOSE_NO_HEARTBEAT = 4408
CLOSE_TOO_SLOW = 1013  # "try again later": the socket could not keep up with its events


def members(conversation: ChatSession) -> Audience:
    """Who hears of a conversation: its opener and every administrator."""
    return Audience(user_ids=(conversation.user_id,), admins=True)


def readable_conversation(session: Session, *, user: User, conversation_id: int) -> ChatSession:
    """The one access rule: 404 for a conversation that does not exist, is hidden, or is not
    the caller's (administrators read all)."""
    conversation = chat_crud.get_conversation(session, conversation_id)
    if conversation is None:
        raise NotFound("conversation")
    if not user.is_superuser and (conversation.user_id != user.id or not conversation.is_visible):
        raise NotFound("conversation")
    return conversation


def readable_message(session: Session, *, user: User, message_id: int) -> tuple[Chat, ChatSession]:
    """A message of a conversation the caller may read (deleted ones too: members see their
    tombstones); 404 otherwise."""
    message = chat_crud.get_message(session, message_id)
    if message is None:
        raise NotFound("message")
    try:
        conversation = readable_conversation(session, user=user, conversation_id=message.chat_session_id)
    except NotFound:
        raise NotFound("message") from None
    return message, conversation


def message_public(message: Chat, *, viewer: User) -> ChatMessagePublic:
    """A message as `viewer` sees it: a deleted one is a tombstone without its content, except
    for administrators."""
    public = ChatMessagePublic.model_validate(message)
    if message.is_visible or viewer.is_superuser:
        return public
    return public.model_copy(update={"content": None})


def _public(conversation: ChatSession, opener: User) -> ChatSessionPublic:
    return ChatSessionPublic(
        id=conversation.id,
        name=conversation.name,
        user=ChatUser(id=opener.id, name=opener.name),
        create_date=conversation.create_date,
        is_closed=conversation.is_closed,
        is_visible=conversation.is_visible,
    )


def _session_event(conversation: ChatSessionPublic) -> dict[str, object]:
    return {"type": "chat.session", "session": conversation.model_dump(mode="json")}


def open_conversation(
    session: Session, *, user: User, data: ChatSessionCreate, live: LiveEvents
) -> ChatSessionPublic:
    conversation = chat_crud.add_conversation(session, user_id=user.id, name=data.name)
    session.commit()
    public = _public(conversation, user)
    live.send(members(conversation), _session_event(public))
    return public


def list_conversations(
    session: Session, *, user: User, is_closed: bool | None, offset: int, limit: int
) -> Page[ChatSessionSummary]:
    """My conversations (administrators: all), most recently active first, each with its last
    message and my unread count (both leave deleted messages out): one query for the page, one
    for the last messages."""
    query, count = chat_crud.conversations_page_query(user, is_closed=is_closed)
    rows, total = pages.fetch_page(session, query, offset=offset, limit=limit, count_query=count)
    last_messages = chat_crud.messages_by_id(
        session, [row.last_message_id for row in rows if row.last_message_id]
    )
    items = [
        ChatSessionSummary(
            **ChatSessionPublic.model_validate(conversation).model_dump(),
            last_message=(
                ChatMessagePublic.model_validate(last_messages[last_id]) if last_id in last_messages else None
            ),
            last_read_id=last_read_id,
            unread_count=unread_count,
        )
        for conversation, last_read_id, unread_count, last_id in rows
    ]
    return Page[ChatSessionSummary](items=items, total=total, offset=offset, limit=limit)


def history(
    session: Session,
    *,
    user: User,
    conversation: ChatSession,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> MessageHistory:
    """Messages in order, deleted ones as tombstones in their place (see message_public), with
    the cursors to read on either way: null on a side where nothing more is stored. The side
    read is known from the page itself; the other side, when a cursor bounds it, costs one
    statement more (the first page, with no cursor, costs none)."""
    messages, more = chat_crud.history(
        session, conversation_id=conversation.id, before_id=before_id, after_id=after_id, limit=limit
    )
    forward = after_id is not None
    # Older than an after_id page: anything at or before after_id. Newer than any page bounded
    # by before_id (and not already known to have more): anything at or after before_id.
    older_id, newer_id = chat_crud.neighbour_ids(
        session,
        conversation_id=conversation.id,
        at_most=after_id if forward else None,
        at_least=None if forward and more else before_id,
    )
    has_older = older_id is not None if forward else more
    has_newer = (more and forward) or newer_id is not None
    # A page's cursors are its own first and last ids. An empty page (`more` implies items, so
    # only a neighbour found can point on from it) points just past the neighbour.
    next_before_id: int | None = None
    if has_older:
        next_before_id = messages[0].id if messages else _known(older_id) + 1
    next_after_id: int | None = None
    if has_newer:
        next_after_id = messages[-1].id if messages else _known(newer_id) - 1
    return MessageHistory(
        items=[message_public(message, viewer=user) for message in messages],
        next_before_id=next_before_id,
        next_after_id=next_after_id,
    )


def _known(message_id: int | None) -> int:
    assert message_id is not None, "a side with more but no items has a neighbour"
    return message_id


@dataclass(frozen=True)
class SentMessage:
    message: ChatMessagePublic
    created: bool  # False: a resend of a client_id already stored; nothing new was stored or sent


def post_message(
    session: Session,
    *,
    user: User,
    conversation: ChatSession,
    content: str,
    client_id: str | None,
    live: LiveEvents,
) -> SentMessage:
    """Stores a message, then tells every member online. A client_id already used by this
    user returns the stored message again, without storing or sending anything."""
    if conversation.is_closed:
        stored = _stored(session, user=user, client_id=client_id)
        if stored is not None:  # a resend of a message sent before the conversation closed
            return _resent(stored, conversation, user)
        raise Conflict("this conversation is closed", code="conversation_closed")
    # Insert first and look for the earlier copy only when the unique (user_id, client_id)
    # refuses it: resends are rare, so the usual send costs no extra query.
    try:
        chat = chat_crud.add_message(
            session, user_id=user.id, conversation_id=conversation.id, content=content, client_id=client_id
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        stored = _stored(session, user=user, client_id=client_id)
        if stored is None:
            raise
        return _resent(stored, conversation, user)
    message = ChatMessagePublic(
        id=chat.id,
        session_id=conversation.id,
        user=ChatUser(id=user.id, name=user.name),
        content=chat.content,
        create_date=chat.create_date,
        edit_date=None,
        is_visible=True,
    )
    live.send(members(conversation), {"type": "chat.message", "message": message.model_dump(mode="json")})
    return SentMessage(message, created=True)


def _stored(session: Session, *, user: User, client_id: str | None) -> Chat | None:
    if client_id is None:
        return None
    return chat_crud.find_by_client_id(session, user_id=user.id, client_id=client_id)


def _resent(stored: Chat, conversation: ChatSession, user: User) -> SentMessage:
    if stored.chat_session_id != conversation.id:
        raise Conflict("this client_id was already used in another conversation", code="client_id_reused")
    return SentMessage(message_public(stored, viewer=user), created=False)


def send_message(
    session: Session, *, user: User, conversation_id: int, content: str, client_id: str, live: LiveEvents
) -> SentMessage:
    """`chat.send` from a socket: the same as a REST post, the conversation named by id."""
    conversation = readable_conversation(session, user=user, conversation_id=conversation_id)
    return post_message(
        session, user=user, conversation=conversation, content=content, client_id=client_id, live=live
    )


def mark_read(
    session: Session, *, user: User, conversation: ChatSession, last_read_id: int, live: LiveEvents
) -> None:
    """Moves my read marker forward (never past the conversation's last message) and tells
    the members, so my other sockets update their unread counts and the other side sees it."""
    last_id = chat_crud.last_message_id(session, conversation.id)
    marker = min(last_read_id, last_id or 0)
    if marker == 0:
        return
    chat_crud.move_read_marker(session, conversation_id=conversation.id, user_id=user.id, last_read_id=marker)
    session.commit()
    event = {
        "type": "chat.read",
        "session_id": conversation.id,
        "user": {"id": user.id, "name": user.name},
        "last_read_id": marker,
    }
    live.send(members(conversation), event)


def mark_read_by_id(
    session: Session, *, user: User, conversation_id: int, last_read_id: int, live: LiveEvents
) -> None:
    conversation = readable_conversation(session, user=user, conversation_id=conversation_id)
    mark_read(session, user=user, conversation=conversation, last_read_id=last_read_id, live=live)


def update_conversation(
    session: Session, *, user: User, conversation: ChatSession, changes: ChatSessionUpdate, live: LiveEvents
) -> ChatSessionPublic:
    values = changes.model_dump(exclude_unset=True)
    if "name" in values and conversation.user_id != user.id:
        raise Forbidden("only the user who opened this conversation may rename it", code="not_opener")
    if "is_closed" in values and not user.is_superuser:
        raise Forbidden("only administrators may close or reopen a conversation", code="admin_only")
    for field, value in values.items():
        setattr(conversation, field, value)
    conversation.update_date = utcnow()
    session.commit()
    public = ChatSessionPublic.model_validate(conversation)
    live.send(members(conversation), _session_event(public))
    return public


def edit_message(
    session: Session, *, user: User, message_id: int, content: str, live: LiveEvents
) -> ChatMessagePublic:
    """The author changes their message; members online get `chat.edited`."""
    message, conversation = readable_message(session, user=user, message_id=message_id)
    if message.user_id != user.id:
        raise Forbidden("only the author may edit a message", code="not_author")
    if not message.is_visible:
        raise Conflict("a deleted message cannot be edited", code="message_deleted")
    if conversation.is_closed:
        raise Conflict("this conversation is closed", code="conversation_closed")
    message.content = content
    message.edit_date = utcnow()
    session.commit()
    public = ChatMessagePublic.model_validate(message)
    live.send(members(conversation), {"type": "chat.edited", "message": public.model_dump(mode="json")})
    return public


def delete_message(session: Session, *, user: User, message_id: int, live: LiveEvents) -> None:
    """Soft delete: the message becomes a tombstone in the history (administrators still read
    its content); members online get `chat.deleted`. Deleting it again changes nothing."""
    message, conversation = readable_message(session, user=user, message_id=message_id)
    if message.user_id != user.id and not user.is_superuser:
        raise Forbidden("only the author or an administrator may delete a message", code="not_author")
    if not message.is_visible:
        return
    message.is_visible = False
    session.commit()
    _publish_deletion(conversation, message, live)


def _publish_deletion(conversation: ChatSession, message: Chat, live: LiveEvents) -> None:
    """`chat.deleted` carries the message as each member's history now shows it: the tombstone
    for the opener, the tombstone with its content for administrators."""

    def event(public: ChatMessagePublic) -> dict[str, object]:
        return {
            "type": "chat.deleted",
            "session_id": conversation.id,
            "message_id": message.id,
            "message": public.model_dump(mode="json"),
        }

    live.send(Audience(admins=True), event(ChatMessagePublic.model_validate(message)))
    opener = conversation.user
    if not opener.is_superuser:  # an administrator's own conversation: told above, content and all
        live.send(Audience(user_ids=(opener.id,)), event(message_public(message, viewer=opener)))


def typing_audience(session: Session, *, user: User, conversation_id: int) -> Audience:
    """Who is told that `user` is typing in a conversation: the other members."""
    conversation = readable_conversation(session, user=user, conversation_id=conversation_id)
    return Audience(user_ids=(conversation.user_id,), admins=True, except_user_id=user.id)


def disconnect_user(user_id: int, *, banned: bool, live: LiveEvents) -> None:
    """Closes every socket of the user on every process: 4403 for a ban, else 4401 (the
    user's tokens were revoked: a password change, account deletion)."""
    code, reason = (CLOSE_BANNED, "banned") if banned else (CLOSE_UNAUTHORIZED, "signed out")
    live.close_user_sockets(user_id, code=code, reason=reason)
