"""Posts: list and search a board, read (counting the view), write, delete, like.

A post's title and content go into the search index in the transaction that writes them
(services/search.py); hiding or restoring it changes nothing there, visibility being read when
searching.

Counters move only in SQL (UPDATE ... SET n = n + 1), and only when the row that justifies
the change (a like, a view) was really inserted or deleted. The counter's UPDATE comes first in
its transaction: on MariaDB it locks the post row, so concurrent likes and views of one post
queue there instead of deadlocking (the child row's foreign-key check then finds the lock
held), and it costs no separate locking read. When the like or view row turns out unchanged
(a repeat, or another request won), the transaction is rolled back, counter and all.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from config import settings
from crud import attachments as attachments_crud
from crud import pages
from crud import posts as posts_crud
from crud import search as search_crud
from crud.authors import with_author
from crud.pages import Listing
from database import RequestSlots, read_then_write, utcnow, write_turns
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
from services import access, search
from services.ai import jobs as ai
from services.ai.backends import Backend

# A list page may run on the event loop (database.on_database's `inline`) when the indexes
# serve it and the database is in-process: a page of a board without search, near the top, on
# SQLite. It is then a few index reads, cheaper than the trip to a worker thread. A search reads
# the full-text index for every board's matches, and OFFSET walks that many index entries: time
# that grows with the data. (Administrators' lists, hidden posts included, sort a board's posts without an
# index: on SQLite about a millisecond for a board of 2,000 posts, and administrators are few.)
# A database server makes the caller wait on the network, so with one everything runs in a
# worker thread: the token's user, the access rule and the page in one trip.
INLINE_MAX_OFFSET = 1000


async def list_posts(
    db: RequestSlots,
    *,
    token: str | None,
    board_id: int,
    sort: PostSort,
    q: str | None,
    offset: int,
    limit: int,
) -> Page[PostSummary]:
    """One page of the board's posts for the reader the token names: one COUNT and one SELECT
    (authors joined), whatever the page size, after the access rule has passed. Hidden posts
    are left out, and not counted, except for administrators. q: only the posts GET /search would
    find on this board (services/search.py), in the list's order."""
    q = (q or "").strip() or None

    def page(session: Session) -> Page[PostSummary]:
        user, board = access.token_reader_and_board(session, token=token, board_id=board_id)
        include_hidden = access.sees_hidden(user)
        keywords = search.board_keywords(session, q)
        listing = posts_crud.listing(
            board_id=board.id, include_hidden=include_hidden, sort=sort, keywords=keywords
        )
        return _list_page(session, listing=listing, offset=offset, limit=limit)

    return await db.run(page, inline=q is None and offset < INLINE_MAX_OFFSET)


def _list_page(session: Session, *, listing: Listing, offset: int, limit: int) -> Page[PostSummary]:
    rows, total = pages.fetch_listing(session, listing, offset=offset, limit=limit)
    _end_reading(session)
    # One validation call for the whole page.
    return Page[PostSummary].model_validate(
        {"items": with_author(rows), "total": total, "offset": offset, "limit": limit}
    )


def _end_reading(session: Session) -> None:
    """Ends a request's read-only transaction where its reads ran (a worker thread, with a
    database server) instead of when the session closes on the event loop, where the round trip
    would stall every other request. COMMIT and ROLLBACK end a transaction that wrote nothing
    alike; commit leaves the loaded objects usable (expire_on_commit=False)."""
    session.commit()


async def read(db: RequestSlots, *, token: str | None, post_id: int) -> PostDetail:
    """The post for the reader the token names, counting the view once per reader per
    VIEW_DEDUPE_MINUTES.

    The reader and the post are loaded with one statement, then the post's detail with when
    this reader was last counted: a reader counted recently costs nothing more and takes no
    lock. Counting a view writes, and a write may wait (for the post's row lock on MariaDB, the
    database's write lock on SQLite), so it runs in the thread pool, last (database.read_then_write:
    on SQLite the reads run on the event loop, with a database server everything runs in one trip
    to a worker thread). The answer shows the count with this view."""
    async with db.session() as session:
        look = partial(_look, session, token=token, post_id=post_id)
        fields, counted = await read_then_write(session, look)
    if counted:
        fields["number_of_view"] += 1
    return PostDetail.model_validate(fields)


def _look(
    session: Session, *, token: str | None, post_id: int
) -> tuple[dict[str, Any], Callable[[], bool] | None]:
    """The post as the reader the token names sees it, and the view still to count (a callable
    that counts it and tells whether it did), or None when the reader was counted recently."""
    user, post = access.token_reader_and_post(session, token=token, post_id=post_id)
    post_id, user_id = post.id, user.id  # a rolled-back count expires the loaded objects
    fields = _detail(session, post_id=post_id, viewer_id=user_id)
    last_viewed = fields.pop(posts_crud.VIEWER_LAST_VIEWED)
    now = utcnow()
    since = now - timedelta(minutes=settings.VIEW_DEDUPE_MINUTES)
    if last_viewed is not None and last_viewed >= since:
        return fields, None
    seen = last_viewed is not None
    view = partial(_count_view, session, post_id=post_id, user_id=user_id, seen=seen, now=now, since=since)
    return fields, view


def describe(session: Session, *, post_id: int, viewer_id: int) -> PostDetail:
    fields = _detail(session, post_id=post_id, viewer_id=viewer_id)
    del fields[posts_crud.VIEWER_LAST_VIEWED]
    return PostDetail.model_validate(fields)


def _detail(session: Session, *, post_id: int, viewer_id: int) -> dict[str, Any]:
    """The post with author, current counts, the viewer's like and last counted view, and the
    attachments: one query, and one more for a post with files, however many it has."""
    row = posts_crud.detail(session, post_id=post_id, viewer_id=viewer_id)
    # is_file_attached changes in the transaction that adds or removes an attachment, so a
    # post without the flag has none to look for.
    found = attachments_crud.of_post(session, post_id) if row.is_file_attached else []
    return {**with_author([row])[0], "attachments": [AttachmentPublic.model_validate(a) for a in found]}


def create(
    session: Session, *, board: Board, user: User, data: PostCreate, ai_backend: Backend | None
) -> PostDetail:
    post = Post(board_id=board.id, user_id=user.id, name=data.name, content=data.content)
    session.add(post)
    session.flush()  # its id, for its search terms
    search_crud.index_post(session, post_id=post.id, title=post.name, content=post.content, new=True)
    session.commit()
    ai.post_changed(ai_backend, post.id)  # similar-posts: its embedding is computed in the background
    return describe(session, post_id=post.id, viewer_id=user.id)


def update(
    session: Session, *, post: Post, user: User, changes: PostUpdate, ai_backend: Backend | None
) -> PostDetail:
    values = changes.model_dump(exclude_unset=True)
    if "is_visible" in values and not access.can_restore(user):
        raise Forbidden("only administrators may hide or restore a post", code="admin_only")
    text_changed = "name" in values or "content" in values
    if text_changed:
        post.update_date = utcnow()
    for field, value in values.items():
        setattr(post, field, value)
    if text_changed:
        search_crud.index_post(session, post_id=post.id, title=post.name, content=post.content)
    session.commit()
    if text_changed:
        ai.post_changed(ai_backend, post.id)  # similar-posts: its embedding is computed again
    return describe(session, post_id=post.id, viewer_id=user.id)


def delete(session: Session, *, post: Post) -> None:
    """Soft delete: the post (and with it its comments and attachments) disappears for everyone
    but administrators, who may restore it."""
    post.is_visible = False
    session.commit()


def like(session: Session, *, post: Post, user: User) -> LikeState:
    """Idempotent: liking twice leaves one like."""
    post_id = post.id
    with write_turns.turn():
        posts_crud.add_to_counter(session, post_id, Post.number_of_like, +1)
        _keep_if(session, posts_crud.add_like(session, post_id=post_id, user_id=user.id))
    return _like_state(session, post_id=post_id, liked=True)


def unlike(session: Session, *, post: Post, user: User) -> LikeState:
    """Idempotent: unliking a post one does not like changes nothing."""
    post_id = post.id
    with write_turns.turn():
        posts_crud.add_to_counter(session, post_id, Post.number_of_like, -1)
        _keep_if(session, posts_crud.remove_like(session, post_id=post_id, user_id=user.id))
    return _like_state(session, post_id=post_id, liked=False)


def _keep_if(session: Session, changed: bool) -> None:
    """Commits a counter change whose like or view row really changed; rolls back the rest."""
    if changed:
        session.commit()
    else:
        session.rollback()


def _like_state(session: Session, *, post_id: int, liked: bool) -> LikeState:
    # Read after the commit: a fresh snapshot sees every like committed so far.
    return LikeState(
        liked=liked, number_of_like=posts_crud.counter_value(session, post_id, Post.number_of_like)
    )


def _count_view(
    session: Session, *, post_id: int, user_id: int, seen: bool, now: datetime, since: datetime
) -> bool:
    """Counts the view unless a request of the same reader counted it first; True when this
    one counted. The counter moves first: on MariaDB that UPDATE takes the post's row lock, so
    views of one post queue there, and the view row's foreign-key check then finds the lock
    already held (taken after it, the shared lock of that check is what concurrent viewers
    deadlock on). The view row decides: a first view is an insert-or-ignore, a renewal a
    conditional UPDATE of the row `seen` before (never an UPDATE of a missing row, which takes a
    gap lock under REPEATABLE READ); when it changes nothing, another request counted this
    view, and all is rolled back."""
    with write_turns.turn():
        posts_crud.add_to_counter(session, post_id, Post.number_of_view, +1)
        if seen:
            counted = posts_crud.renew_view(session, post_id=post_id, user_id=user_id, now=now, since=since)
        else:
            counted = posts_crud.add_view(session, post_id=post_id, user_id=user_id, now=now)
        _keep_if(session, counted)
    return counted
