from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, status
from fastapi.responses import HTMLResponse

from config import BASE_DIR
from deps import ChatMessageId, CurrentUser, Pagination, ReadableConversation, RuntimeDep, SessionDep
from edge import html_page
from routers import chat_socket
from routers.responses import AUTHENTICATED, JSON_BODY, errors, refusal
from schemas import (
    MAX_DB_ID,
    ChatMessageCreate,
    ChatMessagePublic,
    ChatMessageUpdate,
    ChatReadMarker,
    ChatSessionCreate,
    ChatSessionPublic,
    ChatSessionSummary,
    ChatSessionUpdate,
    MessageHistory,
    Page,
)
from services import chat as chat_service

router = APIRouter(tags=["chat"], responses=AUTHENTICATED)
# Outside the API prefix: the small example client at GET /chat.
page_router = APIRouter(tags=["chat"])

CHAT_PAGE = BASE_DIR / "static" / "chat.html"

BeforeId = Annotated[
    int | None,
    Query(
        ge=1, le=MAX_DB_ID, description="Messages before this id (a page's next_before_id): scrolling back."
    ),
]
AfterId = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_DB_ID,
        description="Messages after this id: the newest I have (or a page's next_after_id), to catch up; "
        "0 reads from the first message.",
    ),
]
HistoryLimit = Annotated[int, Query(ge=1, le=100, description="At most this many messages (1-100).")]
CONVERSATION = {404: refusal("No such conversation, or it is not yours.", not_found="conversation not found")}
MESSAGE = {404: refusal("No such message in a conversation of yours.", not_found="message not found")}
CLOSED = "The conversation is closed"


@router.post(
    "/chat/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatSessionPublic,
    summary="Open a support conversation with the administrators",
    responses=errors(*JSON_BODY),
)
def open_conversation(
    data: ChatSessionCreate, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> ChatSessionPublic:
    return chat_service.open_conversation(session, user=user, data=data, live=runtime.broker)


@router.get(
    "/chat/sessions",
    response_model=Page[ChatSessionSummary],
    summary="My conversations (administrators: all), with the last message and my unread count",
    responses=errors(422),
)
def list_conversations(
    user: CurrentUser, session: SessionDep, page: Pagination, is_closed: bool | None = None
) -> Page[ChatSessionSummary]:
    return chat_service.list_conversations(
        session, user=user, is_closed=is_closed, offset=page.offset, limit=page.limit
    )


@router.patch(
    "/chat/sessions/{session_id}",
    response_model=ChatSessionPublic,
    summary="Rename (the opener) or close and reopen (administrators) a conversation",
    responses=errors(
        403,
        404,
        *JSON_BODY,
        notes={
            **CONVERSATION,
            403: refusal(
                "Only the opener renames, only administrators close or reopen (or this account is banned).",
                "not_opener",
                "banned",
                admin_only="only administrators may close or reopen a conversation",
            ),
        },
    ),
)
def update_conversation(
    conversation: ReadableConversation,
    changes: ChatSessionUpdate,
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ChatSessionPublic:
    return chat_service.update_conversation(
        session, user=user, conversation=conversation, changes=changes, live=runtime.broker
    )


@router.get(
    "/chat/sessions/{session_id}/messages",
    response_model=MessageHistory,
    summary="Messages, oldest first: the latest (or those before before_id), or those after after_id",
    description="A cursor page: `next_before_id` and `next_after_id` read on either way, null on a "
    "side where nothing more is stored.",
    responses=errors(404, 422, notes=CONVERSATION),
)
def read_history(
    conversation: ReadableConversation,
    user: CurrentUser,
    session: SessionDep,
    before_id: BeforeId = None,
    after_id: AfterId = None,
    limit: HistoryLimit = 20,
) -> MessageHistory:
    return chat_service.history(
        session, user=user, conversation=conversation, before_id=before_id, after_id=after_id, limit=limit
    )


@router.post(
    "/chat/sessions/{session_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatMessagePublic,
    summary="Send a message; members online get it live, as from the socket",
    responses=errors(
        404,
        409,
        *JSON_BODY,
        notes={
            **CONVERSATION,
            409: refusal(
                f"{CLOSED}, or the client_id was used in another conversation.",
                "conversation_closed",
                "client_id_reused",
            ),
        },
    ),
)
def post_message(
    conversation: ReadableConversation,
    data: ChatMessageCreate,
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ChatMessagePublic:
    return chat_service.post_message(
        session,
        user=user,
        conversation=conversation,
        content=data.content,
        client_id=data.client_id,
        live=runtime.broker,
    ).message


@router.post(
    "/chat/sessions/{session_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Move my read marker forward",
    responses=errors(404, *JSON_BODY, notes=CONVERSATION),
)
def mark_read(
    conversation: ReadableConversation,
    data: ChatReadMarker,
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    chat_service.mark_read(
        session, user=user, conversation=conversation, last_read_id=data.last_read_id, live=runtime.broker
    )


@router.patch(
    "/chat/messages/{message_id}",
    response_model=ChatMessagePublic,
    summary="Edit my message",
    responses=errors(
        403,
        404,
        409,
        *JSON_BODY,
        notes={
            **MESSAGE,
            403: refusal(
                "Only the author edits a message (or this account is banned).",
                "banned",
                not_author="only the author may edit a message",
            ),
            409: refusal(
                f"The message was deleted, or {CLOSED.lower()}.", "message_deleted", "conversation_closed"
            ),
        },
    ),
)
def edit_message(
    message_id: ChatMessageId,
    data: ChatMessageUpdate,
    user: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ChatMessagePublic:
    return chat_service.edit_message(
        session, user=user, message_id=message_id, content=data.content, live=runtime.broker
    )


@router.delete(
    "/chat/messages/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a message (the author or an administrator)",
    responses=errors(
        403,
        404,
        422,
        notes={
            **MESSAGE,
            403: refusal(
                "Neither the author nor an administrator (or this account is banned).",
                "banned",
                not_author="only the author or an administrator may delete a message",
            ),
        },
    ),
)
def delete_message(
    message_id: ChatMessageId, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> None:
    chat_service.delete_message(session, user=user, message_id=message_id, live=runtime.broker)


@router.websocket("/ws")
async def live_socket(websocket: WebSocket, runtime: RuntimeDep, token: str | None = None) -> None:
    """One socket per client for every live event; see routers/chat_socket.py for the protocol."""
    await chat_socket.serve(websocket, live=runtime.broker, token=token)


@page_router.get(
    "/chat",
    response_class=HTMLResponse,
    summary="The example chat client (an HTML page)",
)
def chat_page() -> HTMLResponse:
    """The example chat client: plain HTML and JavaScript, no build step."""
    # Read on each request, with a policy that allows its inline script and style by their hash.
    return html_page(CHAT_PAGE.read_text(encoding="utf-8"))
