from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, status
from fastapi.responses import HTMLResponse

from config import BASE_DIR
from deps import ChatMessageId, CurrentUser, Pagination, ReadableConversation, RuntimeDep, SessionDep
from edge import html_page
from routers import chat_socket
from routers.responses import AUTHENTICATED, JSON_BODY, errors
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
    Page,
)
from services import chat as chat_service

router = APIRouter(tags=["chat"], responses=AUTHENTICATED)
# Outside the API prefix: the small example client at GET /chat.
page_router = APIRouter(tags=["chat"])

CHAT_PAGE = BASE_DIR / "static" / "chat.html"

MessageCursor = Annotated[int | None, Query(ge=1, le=MAX_DB_ID)]
CONVERSATION = {404: "No such conversation, or it is not yours."}
MESSAGE = {404: "No such message in a conversation of yours."}
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
            403: "Only the opener renames, only administrators close or reopen (or this account is banned).",
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
    response_model=list[ChatMessagePublic],
    summary="Messages, oldest first: the latest (or those before before_id), or those after after_id",
    responses=errors(404, 422, notes=CONVERSATION),
)
def read_history(
    conversation: ReadableConversation,
    user: CurrentUser,
    session: SessionDep,
    before_id: MessageCursor = None,
    after_id: MessageCursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[ChatMessagePublic]:
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
        notes={**CONVERSATION, 409: f"{CLOSED}, or the client_id was used in another conversation."},
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
            403: "Only the author edits a message (or this account is banned).",
            409: f"The message was deleted, or {CLOSED.lower()}.",
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
        notes={**MESSAGE, 403: "Neither the author nor an administrator (or this account is banned)."},
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
