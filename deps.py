"""FastAPI dependencies: the session, the current user, pagination, loaders that 404/403."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from config import settings
from crud import users as users_crud
from database import SessionLocal
from errors import Forbidden, Unauthorized, banned
from models import Board, Comment, Post, User
from schemas import MAX_DB_ID
from services import access, admin, security


def get_session() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# auto_error=False: a missing token gets our own 401 body ({"detail", "code"}).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{settings.API_PREFIX}/auth/login", auto_error=False)


def authenticate(session: Session, token: str | None) -> User:
    """The user a bearer token names, checked with one query: the token must be signed, unexpired,
    of the user's current token version, and the user neither banned nor deleted."""
    if not token:
        raise Unauthorized("not authenticated")
    claims = security.decode_access_token(token)
    user = users_crud.get(session, claims.user_id)
    if user is None or user.deleted_date is not None or user.token_version != claims.token_version:
        raise Unauthorized("this token is no longer valid", code="token_revoked")
    if user.is_banned:
        raise banned()
    return user


def get_current_user(session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> User:
    return authenticate(session, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden("administrators only", code="admin_only")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientIP = Annotated[str, Depends(client_ip)]


@dataclass(frozen=True)
class PageParams:
    offset: int
    limit: int


def page_params(
    offset: Annotated[int, Query(ge=0, le=MAX_DB_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageParams:
    return PageParams(offset=offset, limit=limit)


Pagination = Annotated[PageParams, Depends(page_params)]


def readable_board(
    board_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)], session: SessionDep, user: CurrentUser
) -> Board:
    return access.readable_board(session, user=user, board_id=board_id)


ReadableBoard = Annotated[Board, Depends(readable_board)]


def any_board(board_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)], session: SessionDep, _: AdminUser) -> Board:
    return admin.get_board(session, board_id)


AnyBoard = Annotated[Board, Depends(any_board)]


def any_user(user_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)], session: SessionDep, _: AdminUser) -> User:
    return admin.get_user(session, user_id)


AnyUser = Annotated[User, Depends(any_user)]


PostId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
CommentId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


def readable_post(post_id: PostId, session: SessionDep, user: CurrentUser) -> Post:
    return access.readable_post(session, user=user, post_id=post_id)


def writable_post(post_id: PostId, session: SessionDep, user: CurrentUser) -> Post:
    return access.writable_post(session, user=user, post_id=post_id)


def readable_comment(comment_id: CommentId, session: SessionDep, user: CurrentUser) -> Comment:
    return access.readable_comment(session, user=user, comment_id=comment_id)


def writable_comment(comment_id: CommentId, session: SessionDep, user: CurrentUser) -> Comment:
    return access.writable_comment(session, user=user, comment_id=comment_id)


ReadablePost = Annotated[Post, Depends(readable_post)]
WritablePost = Annotated[Post, Depends(writable_post)]
ReadableComment = Annotated[Comment, Depends(readable_comment)]
WritableComment = Annotated[Comment, Depends(writable_comment)]
