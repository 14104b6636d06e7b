"""FastAPI dependencies: the session, the current user, pagination, loaders that 404/403."""

import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.requests import HTTPConnection
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

import edge
from config import settings
from database import UNLIMITED, RequestSlots, on_database
from errors import Forbidden
from models import AI, Attachment, Board, ChatSession, Comment, Post, User
from schemas import MAX_DB_ID, JobPublic
from services import access, admin, attachments, chat
from services.ai import jobs as ai
from services.runtime import Runtime
from services.security import AccessClaims, authenticate, token_claims


def request_slots(request: Request) -> RequestSlots:
    """The request's way to the database: the app's pool slots (database.RequestSlots, made at
    start-up; none to wait for before it has started)."""
    return getattr(request.app.state, "db_slots", None) or UNLIMITED


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with request_slots(request).session() as session:
        yield session


# Every route reaches the database through its RequestSlots: SessionDep, one session for the
# whole request, is the rule. DatabaseDep (the slots themselves, a plain dependency) is for the
# few routes that open their sessions when they need them: the AI job routes, whose waits must
# hold no session, and the two hottest reads (a board's list page, a post), where FastAPI's
# generator dependency costs ~5% of the request (services/posts.py).
SessionDep = Annotated[Session, Depends(get_session)]


async def request_database(request: Request) -> RequestSlots:
    """request_slots as a dependency (async: FastAPI runs a sync one in a worker thread)."""
    return request_slots(request)


DatabaseDep = Annotated[RequestSlots, Depends(request_database)]


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The running app's broker, AI backend and job events (services/runtime.py; built by
    main.py's lifespan): one attribute read per request or socket."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_runtime(connection: HTTPConnection) -> Runtime:
    """runtime_of as a dependency (async: FastAPI runs a sync one in a worker thread)."""
    return runtime_of(connection)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

T = TypeVar("T")

# The loaders below (the current user, "load it or 404/403") are async and send their queries
# through database.on_database: on the event loop when the database is in-process (SQLite: a
# primary-key read or two costs less than the thread hop a sync dependency pays), in a worker
# thread when it is a server, whose round trips would otherwise stall every other request on the
# loop. The request already holds a pool slot (RequestSlots), so a connection is there without
# waiting. Endpoints that do more stay sync and run in the thread pool; the hot reading routes (a
# board's list page, a post) are async and hand SessionDep and the bearer token to their service,
# which checks the token and the access rule and reads in one trip (services/posts.py).


# auto_error=False: a missing token gets our own 401 body ({"detail", "code"}).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{settings.API_PREFIX}/auth/login", auto_error=False)
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


async def bearer_claims(token: BearerToken) -> AccessClaims:
    """The bearer token's claims, checked before the route's parameters are (a call without a
    valid token is a 401, whatever else is wrong with it), with no trip to the database: a route
    that loads the user itself (security.claimed_user) in its one trip takes these."""
    return token_claims(token)


TokenClaims = Annotated[AccessClaims, Depends(bearer_claims)]


# The request's user, once loaded and vetted, is kept in its session's info: a loader that loads
# the user together with a board or post (below) spares CurrentUser its own query.
REQUEST_USER = "request_user"


async def get_current_user(session: SessionDep, token: BearerToken) -> User:
    user: User | None = session.info.get(REQUEST_USER)
    if user is None:
        user = session.info[REQUEST_USER] = await on_database(partial(authenticate, session, token))
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden("administrators only", code="admin_only")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


async def client_ip(request: Request) -> str:
    """The client's address for rate limits: the peer, or behind TRUSTED_PROXIES the forwarded one."""
    return edge.client_ip(request.scope) or "unknown"


ClientIP = Annotated[str, Depends(client_ip)]


@dataclass(frozen=True)
class PageParams:
    offset: int
    limit: int


async def page_params(
    offset: Annotated[int, Query(ge=0, le=MAX_DB_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageParams:
    return PageParams(offset=offset, limit=limit)


Pagination = Annotated[PageParams, Depends(page_params)]


BoardId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


async def readable_board(
    board_id: BoardId,
    session: SessionDep,
    token: BearerToken,
) -> Board:
    _, board = await on_database(partial(_user_and_board, session, token, board_id))
    return board


def _user_and_board(session: Session, token: str | None, board_id: int) -> tuple[User, Board]:
    """The request's user and the board they may read."""
    return _user_and(
        session,
        token,
        for_user=partial(access.readable_board, session, board_id=board_id),
        for_token=partial(access.token_reader_and_board, session, board_id=board_id),
    )


def _user_and_post(session: Session, token: str | None, post_id: int) -> tuple[User, Post]:
    """The request's user and the post they may read."""
    return _user_and(
        session,
        token,
        for_user=partial(access.readable_post, session, post_id=post_id),
        for_token=partial(access.token_reader_and_post, session, post_id=post_id),
    )


def _user_and(
    session: Session,
    token: str | None,
    *,
    for_user: Callable[..., T],
    for_token: Callable[..., tuple[User, T]],
) -> tuple[User, T]:
    """The request's user and what they read: one query for both when the user is not loaded
    yet (for_token), else the thing alone for the loaded user (for_user); see REQUEST_USER."""
    user = session.info.get(REQUEST_USER)
    if user is not None:
        return user, for_user(user=user)
    user, found = for_token(token=token)
    session.info[REQUEST_USER] = user
    return user, found


ReadableBoard = Annotated[Board, Depends(readable_board)]


async def any_board(board_id: BoardId, session: SessionDep, _: AdminUser) -> Board:
    return await on_database(partial(admin.get_board, session, board_id))


AnyBoard = Annotated[Board, Depends(any_board)]


async def any_user(
    user_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)], session: SessionDep, _: AdminUser
) -> User:
    return await on_database(partial(admin.get_user, session, user_id))


AnyUser = Annotated[User, Depends(any_user)]


PostId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
CommentId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


async def readable_post(post_id: PostId, session: SessionDep, token: BearerToken) -> Post:
    _, post = await on_database(partial(_user_and_post, session, token, post_id))
    return post


async def writable_post(post_id: PostId, session: SessionDep, user: CurrentUser) -> Post:
    return await on_database(partial(access.writable_post, session, user=user, post_id=post_id))


async def readable_comment(comment_id: CommentId, session: SessionDep, user: CurrentUser) -> Comment:
    return await on_database(partial(access.readable_comment, session, user=user, comment_id=comment_id))


async def writable_comment(comment_id: CommentId, session: SessionDep, user: CurrentUser) -> Comment:
    return await on_database(partial(access.writable_comment, session, user=user, comment_id=comment_id))


ReadablePost = Annotated[Post, Depends(readable_post)]
WritablePost = Annotated[Post, Depends(writable_post)]
ReadableComment = Annotated[Comment, Depends(readable_comment)]
WritableComment = Annotated[Comment, Depends(writable_comment)]


AttachmentId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


async def readable_attachment(
    attachment_id: AttachmentId, session: SessionDep, user: CurrentUser
) -> Attachment:
    return await on_database(
        partial(access.readable_attachment, session, user=user, attachment_id=attachment_id)
    )


async def deletable_attachment(
    attachment_id: AttachmentId, session: SessionDep, user: CurrentUser
) -> Attachment:
    return await on_database(
        partial(access.deletable_attachment, session, user=user, attachment_id=attachment_id)
    )


ReadableAttachment = Annotated[Attachment, Depends(readable_attachment)]
DeletableAttachment = Annotated[Attachment, Depends(deletable_attachment)]


async def incoming_files(request: Request) -> AsyncIterator[attachments.Upload]:
    """The files of a multipart upload, streamed to storage while the body arrives (disk work
    in the thread pool). Declare it after the dependency that checks the user may upload, so
    nothing is read for a refused request. Whatever the route does not commit is discarded."""
    upload = attachments.Upload(request.headers.get("content-type", ""))
    try:
        async for chunk in request.stream():
            await run_in_threadpool(upload.feed, chunk)
        await run_in_threadpool(upload.finish)
        yield upload
    finally:
        await run_in_threadpool(upload.close)


IncomingFiles = Annotated[attachments.Upload, Depends(incoming_files)]


ChatSessionId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
ChatMessageId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


async def readable_conversation(
    session_id: ChatSessionId, session: SessionDep, user: CurrentUser
) -> ChatSession:
    return await on_database(
        partial(chat.readable_conversation, session, user=user, conversation_id=session_id)
    )


ReadableConversation = Annotated[ChatSession, Depends(readable_conversation)]


JobId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
ModelId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
ModelName = Annotated[str, Path(min_length=1, max_length=64)]


async def readable_job(job_id: JobId, session: SessionDep, token: BearerToken) -> JobPublic:
    return await on_database(partial(_readable_job, session, token=token, job_id=job_id))


def _readable_job(session: Session, *, token: str | None, job_id: int) -> JobPublic:
    return _reader_and_job(session, token=token, job_id=job_id)[1]


def _reader_and_job(session: Session, *, token: str | None, job_id: int) -> tuple[User, JobPublic]:
    """The request's user and the job they may read: one query for both when the user is not
    loaded yet. That user is built from the query's columns, not loaded into the session, so it
    is not kept as the REQUEST_USER (a CurrentUser after this loads its own)."""
    user = session.info.get(REQUEST_USER)
    if user is not None:
        return user, ai.readable_job(session, user=user, job_id=job_id)
    user_id, vet_reader = access.token_reader(token)
    return ai.reader_and_readable_job(session, user_id=user_id, job_id=job_id, vet_reader=vet_reader)


async def watched_job(job_id: JobId, request: Request, token: BearerToken) -> ai.JobWatch:
    """The job the request's user may read (as readable_job), for a long poll: read in a session
    that is closed at once (a wait must hold no connection)."""
    database = request_slots(request)
    reader, job = await database.run(partial(_reader_and_job, token=token, job_id=job_id))
    return ai.JobWatch(job, database, reader, runtime_of(request).ai.events)


async def job_submitter(name: ModelName, request: Request, token: BearerToken) -> ai.Submitter:
    """The request's user with what a submission needs, in one query (services/ai/jobs.load_submitter;
    the user is built from its columns, as in _readable_job), in a session closed at once: the
    job is stored by another (services/ai/jobs.submit)."""
    database = request_slots(request)
    submitter = await database.run(partial(_job_submitter, token=token, model_name=name))
    return replace(submitter, database=database, ai=runtime_of(request).ai)


def _job_submitter(session: Session, *, token: str | None, model_name: str) -> ai.Submitter:
    user_id, vet_reader = access.token_reader(token)
    return ai.load_submitter(session, user_id=user_id, model_name=model_name, vet_reader=vet_reader)


async def any_model(model_id: ModelId, session: SessionDep, _: AdminUser) -> AI:
    return await on_database(partial(ai.get_model_row, session, model_id))


# The longest a request may wait for a job to end (a long poll, a submission with Prefer: wait).
MAX_JOB_WAIT_SECONDS = 30.0
_PREFER_PARTS = re.compile(r"[,;]")


async def preferred_wait(
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (RFC 7240; N seconds, at most 30): answer with the job once it "
            "ends (200) if that takes at most N seconds, else as it is then (202). Other "
            "preferences, and a wait that is no number, are ignored."
        ),
    ] = None,
) -> float:
    """The seconds a submission may wait for its job (0: answer at once). RFC 7240 asks a server
    to ignore what it does not understand, so nothing here is refused."""
    for part in _PREFER_PARTS.split(prefer or ""):
        name, _, value = part.partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return 0.0
            return min(seconds, MAX_JOB_WAIT_SECONDS) if math.isfinite(seconds) and seconds > 0 else 0.0
    return 0.0


PreferredWait = Annotated[float, Depends(preferred_wait)]
ReadableJob = Annotated[JobPublic, Depends(readable_job)]
WatchedJob = Annotated[ai.JobWatch, Depends(watched_job)]
JobSubmitter = Annotated[ai.Submitter, Depends(job_submitter)]
AnyModel = Annotated[AI, Depends(any_model)]
