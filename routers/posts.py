from typing import Annotated

from fastapi import APIRouter, Query, status

from deps import (
    BoardBeingRead,
    CurrentUser,
    Pagination,
    PostBeingRead,
    ReadableBoard,
    ReadablePost,
    SessionDep,
    WritablePost,
)
from schemas import LikeState, Page, PostCreate, PostDetail, PostSort, PostSummary, PostUpdate
from services import posts as posts_service

router = APIRouter(tags=["posts"])


@router.get("/boards/{board_id}/posts", response_model=Page[PostSummary], summary="A board's posts")
async def list_posts(
    reading: BoardBeingRead,
    page: Pagination,
    sort: Annotated[PostSort, Query(description="Newest, or most viewed, liked, commented")] = "latest",
    q: Annotated[str | None, Query(max_length=100, description="Words in the title or content")] = None,
) -> Page[PostSummary]:
    return await posts_service.list_posts(
        reading.session,
        board=reading.board,
        user=reading.user,
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
)
def create_post(board: ReadableBoard, data: PostCreate, user: CurrentUser, session: SessionDep) -> PostDetail:
    return posts_service.create(session, board=board, user=user, data=data)


@router.get("/posts/{post_id}", response_model=PostDetail, summary="Read a post (counts a view)")
async def read_post(reading: PostBeingRead) -> PostDetail:
    return await posts_service.read(reading.session, post=reading.post, user=reading.user)


@router.patch(
    "/posts/{post_id}",
    response_model=PostDetail,
    summary="Edit a post (author or administrator; is_visible: administrators)",
)
def update_post(
    post: WritablePost, changes: PostUpdate, user: CurrentUser, session: SessionDep
) -> PostDetail:
    return posts_service.update(session, post=post, user=user, changes=changes)


@router.delete(
    "/posts/{post_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a post (soft; author or admin)",
)
def delete_post(post: WritablePost, session: SessionDep) -> None:
    posts_service.delete(session, post=post)


@router.put("/posts/{post_id}/like", response_model=LikeState, summary="Like a post (idempotent)")
def like_post(post: ReadablePost, user: CurrentUser, session: SessionDep) -> LikeState:
    return posts_service.like(session, post=post, user=user)


@router.delete("/posts/{post_id}/like", response_model=LikeState, summary="Take back a like (idempotent)")
def unlike_post(post: ReadablePost, user: CurrentUser, session: SessionDep) -> LikeState:
    return posts_service.unlike(session, post=post, user=user)
