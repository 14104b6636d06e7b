"""Posts: list and search a board, read (counting the view), write, delete, like.

Counters move only in SQL (UPDATE ... SET n = n + 1), and only when the row that justifies
the change (a like, a view) was really inserted or deleted. Every such change locks the post
row first, so concurrent likes and views of one post queue instead of deadlocking.
"""

from datetime import timedelta

from sqlalchemy.orm import Session

from config import settings
from crud import attachments as attachments_crud
from crud import pages
from crud import posts as posts_crud
from crud.authors import with_author
from database import utcnow
from errors import Forbidden
from models import Board, Post, User
from schemas import (
    AttachmentPublic,
    LikeState,
    Page,
    PostCreate,
    PostDetail,
    PostSort,
    PostSummary,
    PostUpdate,
)
from services import access, ai


def list_posts(
    session: Session, *, board: Board, user: User, sort: PostSort, q: str | None, offset: int, limit: int
) -> Page[PostSummary]:
    """One page of the board's posts: one COUNT and one SELECT (authors joined), whatever
    the page size. Hidden posts are left out, and not counted, except for administrators."""
    q = (q or "").strip() or None
    listing = posts_crud.listing(board_id=board.id, include_hidden=access.sees_hidden(user), sort=sort, q=q)
    rows, total = pages.fetch_page(
        session,
        listing.query,
        count_query=listing.count_query,
        params=listing.params,
        offset=offset,
        limit=limit,
    )
    # One validation call for the whole page.
    return Page[PostSummary].model_validate(
        {"items": with_author(rows), "total": total, "offset": offset, "limit": limit}
    )


def read(session: Session, *, post: Post, user: User) -> PostDetail:
    """The post for its reader, counting the view once per reader per VIEW_DEDUPE_MINUTES."""
    _count_view(session, post_id=post.id, user_id=user.id)
    return describe(session, post_id=post.id, viewer=user)


def describe(session: Session, *, post_id: int, viewer: User) -> PostDetail:
    """The post with author, current counts, the viewer's like and attachments: two queries,
    however many attachments there are."""
    row = posts_crud.detail(session, post_id=post_id, viewer_id=viewer.id)
    attachments = [AttachmentPublic.model_validate(a) for a in attachments_crud.of_post(session, post_id)]
    return PostDetail.model_validate({**with_author([row])[0], "attachments": attachments})


def create(session: Session, *, board: Board, user: User, data: PostCreate) -> PostDetail:
    post = Post(board_id=board.id, user_id=user.id, name=data.name, content=data.content)
    session.add(post)
    session.commit()
    ai.post_changed(post.id)  # similar-posts: its embedding is computed in the background
    return describe(session, post_id=post.id, viewer=user)


def update(session: Session, *, post: Post, user: User, changes: PostUpdate) -> PostDetail:
    values = changes.model_dump(exclude_unset=True)
    if "is_visible" in values and not access.can_restore(user):
        raise Forbidden("only administrators may hide or restore a post", code="admin_only")
    text_changed = "name" in values or "content" in values
    if text_changed:
        post.update_date = utcnow()
    for field, value in values.items():
        setattr(post, field, value)
    session.commit()
    if text_changed:
        ai.post_changed(post.id)  # similar-posts: its embedding is computed again
    return describe(session, post_id=post.id, viewer=user)


def delete(session: Session, *, post: Post) -> None:
    """Soft delete: the post (and with it its comments and attachments) disappears for everyone
    but administrators, who may restore it."""
    post.is_visible = False
    session.commit()


def like(session: Session, *, post: Post, user: User) -> LikeState:
    """Idempotent: liking twice leaves one like."""
    posts_crud.lock(session, post.id)
    if posts_crud.add_like(session, post_id=post.id, user_id=user.id):
        posts_crud.add_to_counter(session, post.id, Post.number_of_like, +1)
    session.commit()
    return _like_state(session, post_id=post.id, liked=True)


def unlike(session: Session, *, post: Post, user: User) -> LikeState:
    """Idempotent: unliking a post one does not like changes nothing."""
    posts_crud.lock(session, post.id)
    if posts_crud.remove_like(session, post_id=post.id, user_id=user.id):
        posts_crud.add_to_counter(session, post.id, Post.number_of_like, -1)
    session.commit()
    return _like_state(session, post_id=post.id, liked=False)


def _like_state(session: Session, *, post_id: int, liked: bool) -> LikeState:
    # Read after the commit: a fresh snapshot sees every like committed so far.
    return LikeState(
        liked=liked, number_of_like=posts_crud.counter_value(session, post_id, Post.number_of_like)
    )


def _count_view(session: Session, *, post_id: int, user_id: int) -> None:
    now = utcnow()
    since = now - timedelta(minutes=settings.VIEW_DEDUPE_MINUTES)
    # A reader counted recently costs one indexed read and takes no lock.
    if posts_crud.viewed_since(session, post_id=post_id, user_id=user_id, since=since):
        return
    posts_crud.lock(session, post_id)
    if posts_crud.record_view(session, post_id=post_id, user_id=user_id, now=now, since=since):
        posts_crud.add_to_counter(session, post_id, Post.number_of_view, +1)
    session.commit()
