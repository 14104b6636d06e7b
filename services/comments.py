"""Comments: list, write, edit, soft delete. The post's number_of_comment counts its visible
comments; it moves in one UPDATE, only when a comment's visibility really changed, with the
post row locked first (see services/posts.py). A comment's content goes into the search index in
the transaction that writes it (services/search.py); its visibility is read when searching."""

from sqlalchemy.orm import Session

from crud import comments as comments_crud
from crud import pages
from crud import posts as posts_crud
from crud import search as search_crud
from crud.authors import with_author
from database import utcnow, write_turns
from errors import Forbidden
from models import Comment, Post, User
from schemas import CommentCreate, CommentPublic, CommentUpdate, Page
from services import access


def list_comments(
    session: Session, *, post: Post, user: User, offset: int, limit: int
) -> Page[CommentPublic]:
    listing = comments_crud.listing(post_id=post.id, include_hidden=access.sees_hidden(user))
    rows, total = pages.fetch_listing(session, listing, offset=offset, limit=limit)
    return Page[CommentPublic].model_validate(
        {"items": with_author(rows), "total": total, "offset": offset, "limit": limit}
    )


def create(session: Session, *, post: Post, user: User, data: CommentCreate) -> CommentPublic:
    with write_turns.turn():
        # The counter first: its UPDATE locks the post row (see services/posts.py).
        posts_crud.add_to_counter(session, post.id, Post.number_of_comment, +1)
        comment = Comment(post_id=post.id, user_id=user.id, content=data.content)
        session.add(comment)
        session.flush()  # its id, for its search terms
        search_crud.index_comment(session, comment_id=comment.id, content=comment.content, new=True)
        session.commit()
    # Every field of the answer is known here (its id and times were set on insert): nothing to
    # read back, and the transaction has ended with the commit.
    return CommentPublic.model_validate(
        {
            "id": comment.id,
            "post_id": comment.post_id,
            "author": {"id": user.id, "name": user.name},
            "content": comment.content,
            "create_date": comment.create_date,
            "update_date": comment.update_date,
            "is_file_attached": comment.is_file_attached,
            "is_visible": comment.is_visible,
        }
    )


def describe(session: Session, *, comment_id: int) -> CommentPublic:
    return CommentPublic.model_validate(with_author([comments_crud.row(session, comment_id)])[0])


def update(session: Session, *, comment: Comment, user: User, changes: CommentUpdate) -> CommentPublic:
    values = changes.model_dump(exclude_unset=True)
    if "is_visible" in values:
        if not access.can_restore(user):
            raise Forbidden("only administrators may hide or restore a comment", code="admin_only")
        _set_visibility(session, comment=comment, visible=values["is_visible"])
    if "content" in values:
        comment.content = values["content"]
        comment.update_date = utcnow()
        search_crud.index_comment(session, comment_id=comment.id, content=comment.content)
    session.commit()
    return describe(session, comment_id=comment.id)


def delete(session: Session, *, comment: Comment) -> None:
    """Soft delete; repeating it (an administrator can still see the comment) changes nothing."""
    _set_visibility(session, comment=comment, visible=False)
    session.commit()


def _set_visibility(session: Session, *, comment: Comment, visible: bool) -> None:
    posts_crud.lock(session, comment.post_id)
    if comments_crud.set_visibility(session, comment_id=comment.id, visible=visible):
        posts_crud.add_to_counter(session, comment.post_id, Post.number_of_comment, +1 if visible else -1)
