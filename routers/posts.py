from typing import Annotated

from fastapi import APIRouter, Query, status

from deps import (
    BearerToken,
    BoardId,
    CurrentUser,
    DatabaseDep,
    Pagination,
    PostId,
    ReadableBoard,
    ReadablePost,
    RuntimeDep,
    SessionDep,
    WritablePost,
)
from routers.responses import AUTHENTICATED, JSON_BODY, READABLE_BOARD, READABLE_POST, WRITABLE_POST, errors
from schemas import LikeState, Page, PostCreate, PostDetail, PostSort, PostSummary, PostUpdate
from services import posts as posts_service

router = APIRouter(tags=["posts"], responses=AUTHENTICATED)


@router.get(
    "/boards/{board_id}/posts",
    response_model=Page[PostSummary],
    summary="A board's posts",
    responses=errors(403, 404, 422, notes=READABLE_BOARD),
)
async def list_posts(
    board_id: BoardId,
    database: DatabaseDep,
    token: BearerToken,
    page: Pagination,
    sort: Annotated[PostSort, Query(description="Newest, or most viewed, liked, commented")] = "latest",
    q: Annotated[str | None, Query(max_length=100, description="Words in the title or content")] = None,
) -> Page[PostSummary]:
    return await posts_service.list_posts(
        database,
        token=token,
        board_id=board_id,
        sort=sort,
        q=q,
        offset=page.offset,
        limit=page.limit,
    )


@router.post(
    "/boards/{board_id}/posts",
    status_code=status.HTTP_201_CREATED,
    response_model=PostDetail,
    summary="Write a post",
    responses=errors(403, 404, *JSON_BODY, notes=READABLE_BOARD),
)
def create_post(
    board: ReadableBoard, data: PostCreate, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> PostDetail:
    return posts_service.create(session, board=board, user=user, data=data, ai_backend=runtime.ai.backend)


@router.get(
    "/posts/{post_id}",
    response_model=PostDetail,
    summary="Read a post (counts a view)",
    responses=errors(403, 404, 422, notes=READABLE_POST),
)
async def read_post(post_id: PostId, database: DatabaseDep, token: BearerToken) -> PostDetail:
    return await posts_service.read(database, token=token, post_id=post_id)


@router.patch(
    "/posts/{post_id}",
    response_model=PostDetail,
    summary="Edit a post (author or administrator; is_visible: administrators)",
    responses=errors(
        403,
        404,
        *JSON_BODY,
        notes={
            **WRITABLE_POST,
            403: WRITABLE_POST[403].also(
                "Only administrators may set is_visible.",
                admin_only="only administrators may hide or restore a post",
            ),
        },
    ),
)
def update_post(
    post: WritablePost, changes: PostUpdate, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> PostDetail:
    return posts_service.update(session, post=post, user=user, changes=changes, ai_backend=runtime.ai.backend)


@router.delete(
    "/posts/{post_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a post (soft; author or admin)",
    responses=errors(403, 404, 422, notes=WRITABLE_POST),
)
def delete_post(post: WritablePost, session: SessionDep) -> None:
    posts_service.delete(session, post=post)


@router.put(
    "/posts/{post_id}/like",
    response_model=LikeState,
    summary="Like a post (idempotent)",
    responses=errors(403, 404, 422, notes=READABLE_POST),
)
def like_post(post: ReadablePost, user: CurrentUser, session: SessionDep) -> LikeState:
    return posts_service.like(session, post=post, user=user)


@router.delete(
    "/posts/{post_id}/like",
    response_model=LikeState,
    summary="Take back a like (idempotent)",
    responses=errors(403, 404, 422, notes=READABLE_POST),
)
def unlike_post(post: ReadablePost, user: CurrentUser, session: SessionDep) -> LikeState:
    return posts_service.unlike(session, post=post, user=user)
