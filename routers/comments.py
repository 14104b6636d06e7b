from fastapi import APIRouter, status

from deps import CurrentUser, Pagination, ReadablePost, SessionDep, WritableComment
from routers.responses import AUTHENTICATED, JSON_BODY, READABLE_POST, WRITABLE_COMMENT, errors
from schemas import CommentCreate, CommentPublic, CommentUpdate, Page
from services import comments as comments_service

router = APIRouter(tags=["comments"], responses=AUTHENTICATED)


@router.get(
    "/posts/{post_id}/comments",
    response_model=Page[CommentPublic],
    summary="A post's comments",
    responses=errors(403, 404, 422, notes=READABLE_POST),
)
def list_comments(
    post: ReadablePost, user: CurrentUser, session: SessionDep, page: Pagination
) -> Page[CommentPublic]:
    return comments_service.list_comments(session, post=post, user=user, offset=page.offset, limit=page.limit)


@router.post(
    "/posts/{post_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
    summary="Comment on a post",
    responses=errors(403, 404, *JSON_BODY, notes=READABLE_POST),
)
def create_comment(
    post: ReadablePost, data: CommentCreate, user: CurrentUser, session: SessionDep
) -> CommentPublic:
    return comments_service.create(session, post=post, user=user, data=data)


@router.patch(
    "/comments/{comment_id}",
    response_model=CommentPublic,
    summary="Edit a comment (author or administrator; is_visible: administrators)",
    responses=errors(
        403,
        404,
        *JSON_BODY,
        notes={
            **WRITABLE_COMMENT,
            403: WRITABLE_COMMENT[403].also(
                "Only administrators may set is_visible.",
                admin_only="only administrators may hide or restore a comment",
            ),
        },
    ),
)
def update_comment(
    comment: WritableComment, changes: CommentUpdate, user: CurrentUser, session: SessionDep
) -> CommentPublic:
    return comments_service.update(session, comment=comment, user=user, changes=changes)


@router.delete(
    "/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a comment (soft; author or administrator)",
    responses=errors(403, 404, 422, notes=WRITABLE_COMMENT),
)
def delete_comment(comment: WritableComment, session: SessionDep) -> None:
    comments_service.delete(session, comment=comment)
