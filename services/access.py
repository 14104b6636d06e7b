"""The one place that decides who may see a board. Every path into a board's data (board
pages, posts, comments, attachments, search, AI) goes through these functions."""

from collections.abc import Callable, Collection
from functools import cache, partial
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    literal,
    or_,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from crud import attachments as attachments_crud
from crud import boards as boards_crud
from crud import comments as comments_crud
from crud import posts as posts_crud
from crud.pages import Listing
from errors import Forbidden, NotFound
from models import Attachment, Board, Comment, Post, User
from services import security


def board_usable_by(user: User) -> ColumnElement[bool]:
    """THE rule, as an SQL condition on Board: administrators may use every board; anyone else
    the visible boards that are public or list them. Lists filter with it, single boards are
    checked with it, so the two can never disagree."""
    return _board_rule(administrator=user.is_superuser, user_id=user.id)


def _board_rule(
    *, administrator: bool | ColumnElement[bool], user_id: int | SQLColumnExpression[int]
) -> ColumnElement[bool]:
    """The rule for a user known in Python (administrator a bool), or for the user of a row the
    same statement loads (administrator and user_id that user's columns)."""
    if administrator is True:
        return true()
    rule = and_(Board.is_visible.is_(True), or_(Board.is_public.is_(True), boards_crud.lists_user(user_id)))
    return rule if administrator is False else or_(administrator, rule)


READER_ID = "reader_id"


@cache
def _reader_rule(administrator: bool) -> ColumnElement[bool]:
    """The rule with the user's id as a bind parameter (READER_ID): the statements below are
    built once per kind of user, since every request into a board runs one, and building a
    statement anew costs more than running it."""
    return _board_rule(administrator=administrator, user_id=bindparam(READER_ID, type_=Integer))


@cache
def _board_check(administrator: bool) -> Select[*tuple[Any, ...]]:
    return boards_crud.with_condition(_reader_rule(administrator))


@cache
def _post_check(administrator: bool) -> Select[*tuple[Any, ...]]:
    return posts_crud.with_board_condition(_reader_rule(administrator))


@cache
def _loaded_reader_rule() -> ColumnElement[bool]:
    """The rule for the user loaded by the same statement (READER_ID picks that user)."""
    return _board_rule(administrator=User.is_superuser.is_(True), user_id=User.id)


def readable_board(session: Session, *, user: User, board_id: int) -> Board:
    """The board, or 404 when it does not exist or is hidden from this user, or 403 when it
    is restricted and the user is not on its access list."""
    found = boards_crud.get_with_condition(
        session, _board_check(user.is_superuser), board_id=board_id, params={READER_ID: user.id}
    )
    return _readable_board(found)


def _readable_board(found: tuple[Board, bool] | None) -> Board:
    if found is None:
        raise NotFound("board")
    board, usable = found
    _check_board(visible=board.is_visible, usable=usable)
    return board


# A request that reads one board or post needs its user and that thing. The functions below load
# both with one statement, a round trip less than authenticating first and checking access
# after; `vet_reader` (authentication's own checks) judges the user before the rule judges the
# board, so a refused token answers 401 whatever it asked for.
VetReader = Callable[[User | None], User]


@cache
def _board_check_with_reader() -> Select[*tuple[Any, ...]]:
    return boards_crud.with_reader_and_condition(_loaded_reader_rule())


def reader_and_readable_board(
    session: Session, *, user_id: int, board_id: int, vet_reader: VetReader
) -> tuple[User, Board]:
    """The user `user_id` as vet_reader lets them through, and the board as readable_board
    gives it to that user."""
    found = boards_crud.get_with_reader(
        session, _board_check_with_reader(), reader_id=user_id, board_id=board_id
    )
    user = vet_reader(None if found is None else found[0])
    assert found is not None, "vet_reader refuses a missing user"
    _, board, usable = found
    return user, _readable_board(None if board is None else (board, usable))


def token_reader(token: str | None) -> tuple[int, VetReader]:
    """The id of the user the bearer token names, and the check the loaded user must pass."""
    claims = security.token_claims(token)
    return claims.user_id, partial(security.vetted_user, claims=claims)


def token_reader_and_board(session: Session, *, token: str | None, board_id: int) -> tuple[User, Board]:
    """The user the bearer token speaks for (security.vetted_user) and the board they may
    read, in one statement."""
    user_id, vet_reader = token_reader(token)
    return reader_and_readable_board(session, user_id=user_id, board_id=board_id, vet_reader=vet_reader)


def _check_board(*, visible: bool, usable: bool) -> None:
    if not usable and not visible:
        raise NotFound("board")
    if not usable:
        raise Forbidden("you have no access to this board", code="no_board_access")


def usable_boards_listing(user: User) -> Listing:
    """The boards the user may use, by id, as a page to fetch: statements built once per kind
    of user, the user's id a bind parameter."""
    return boards_crud.listing(_reader_rule(user.is_superuser), {READER_ID: user.id})


def readable_post(session: Session, *, user: User, post_id: int) -> Post:
    """The post, if the user may read its board; hidden posts exist only for administrators.
    One query: the post with its board's visibility and the rule's verdict on that board."""
    found = posts_crud.get_with_board_condition(
        session, _post_check(user.is_superuser), post_id=post_id, params={READER_ID: user.id}
    )
    return _readable_post(found, user=user)


def _readable_post(found: tuple[Post, bool, bool] | None, *, user: User) -> Post:
    if found is None:
        raise NotFound("post")
    post, board_visible, usable = found
    if not post.is_visible and not user.is_superuser:
        raise NotFound("post")
    _check_board(visible=board_visible, usable=usable)
    return post


@cache
def _post_check_with_reader() -> Select[*tuple[Any, ...]]:
    return posts_crud.with_reader_and_board_condition(_loaded_reader_rule())


def reader_and_readable_post(
    session: Session, *, user_id: int, post_id: int, vet_reader: VetReader
) -> tuple[User, Post]:
    """The user `user_id` as vet_reader lets them through, and the post as readable_post gives
    it to that user."""
    found = posts_crud.get_with_reader(session, _post_check_with_reader(), reader_id=user_id, post_id=post_id)
    user = vet_reader(None if found is None else found[0])
    assert found is not None, "vet_reader refuses a missing user"
    _, post, board_visible, usable = found
    return user, _readable_post(None if post is None else (post, board_visible, usable), user=user)


def token_reader_and_post(session: Session, *, token: str | None, post_id: int) -> tuple[User, Post]:
    """The user the bearer token speaks for and the post they may read, in one statement."""
    user_id, vet_reader = token_reader(token)
    return reader_and_readable_post(session, user_id=user_id, post_id=post_id, vet_reader=vet_reader)


def writable_post(session: Session, *, user: User, post_id: int) -> Post:
    """The post, if the user may read it and is its author or an administrator."""
    post = readable_post(session, user=user, post_id=post_id)
    if post.user_id != user.id and not user.is_superuser:
        raise Forbidden("only the author or an administrator may change this post", code="not_author")
    return post


def readable_comment(session: Session, *, user: User, comment_id: int) -> Comment:
    comment = comments_crud.get(session, comment_id)
    if comment is None or (not comment.is_visible and not user.is_superuser):
        raise NotFound("comment")
    readable_post(session, user=user, post_id=comment.post_id)
    return comment


def writable_comment(session: Session, *, user: User, comment_id: int) -> Comment:
    comment = readable_comment(session, user=user, comment_id=comment_id)
    if comment.user_id != user.id and not user.is_superuser:
        raise Forbidden("only the author or an administrator may change this comment", code="not_author")
    return comment


def sees_hidden(user: User) -> bool:
    """Whether lists (and their totals) include hidden posts and comments: administrators only,
    as readable_post and readable_comment decide for single rows."""
    return user.is_superuser


def can_restore(user: User) -> bool:
    """Whether the user may set is_visible directly (hide or bring back a post or comment).
    Authors delete their own with DELETE; only administrators undo a deletion."""
    return user.is_superuser


def readable_attachment(session: Session, *, user: User, attachment_id: int) -> Attachment:
    """The attachment, if the user may read the post or comment it belongs to: 404 when that is
    missing or hidden from the user, 403 when its board is restricted and the user lacks access."""
    attachment = attachments_crud.get(session, attachment_id)
    if attachment is None:
        raise NotFound("attachment")
    try:
        if attachment.comment_id is not None:
            readable_comment(session, user=user, comment_id=attachment.comment_id)
        else:
            assert attachment.post_id is not None, "an attachment belongs to a post or a comment"
            readable_post(session, user=user, post_id=attachment.post_id)
    except NotFound as exc:
        raise NotFound("attachment") from exc
    return attachment


def deletable_attachment(session: Session, *, user: User, attachment_id: int) -> Attachment:
    """The attachment, if the user may read it and uploaded it or is an administrator."""
    attachment = readable_attachment(session, user=user, attachment_id=attachment_id)
    if attachment.uploader_id != user.id and not user.is_superuser:
        raise Forbidden(
            "only the uploader or an administrator may delete this attachment", code="not_uploader"
        )
    return attachment


def post_readable_by(user: User) -> ColumnElement[bool]:
    """SQL condition on Post joined to its Board, for lists across boards (similar-posts): the
    post's board is usable by the user and the post is visible, unless the user sees hidden
    posts. Single posts are checked by readable_post, which applies the same rule."""
    return _post_rule(board_usable_by(user), sees_hidden=sees_hidden(user))


def _post_rule(board_usable: ColumnElement[bool], *, sees_hidden: bool) -> ColumnElement[bool]:
    return board_usable if sees_hidden else and_(board_usable, Post.is_visible.is_(True))


class ReaderRule(NamedTuple):
    """post_readable_by for statements built once per kind of reader (the search's): the
    condition, the same object for every reader of a kind, with the reader's id as a bind
    parameter (READER_ID); and the parameters that make it this reader's."""

    condition: ColumnElement[bool]
    params: dict[str, int]


def post_reader_rule(user: User) -> ReaderRule:
    return ReaderRule(_post_reader_rule(user.is_superuser, sees_hidden(user)), {READER_ID: user.id})


@cache
def _post_reader_rule(administrator: bool, sees_hidden: bool) -> ColumnElement[bool]:
    return _post_rule(_reader_rule(administrator), sees_hidden=sees_hidden)


_POST, _BOARD = "post", "board"  # still_readable's rows say which they are


def still_readable(
    session: Session, *, user: User, post_ids: Collection[int], board_ids: Collection[int]
) -> tuple[set[int], set[int]]:
    """Which of these posts the user may read (post_readable_by) and which of these boards they
    may use (board_usable_by), in one query: for what was picked for them earlier (an AI job's
    result) and is read after their access may have changed. Administrators read everything
    (the rule is true for them): no query."""
    if user.is_superuser or not (post_ids or board_ids):
        return set(post_ids), set(board_ids)
    parts = []
    if post_ids:
        parts.append(posts_crud.ids_where(post_readable_by(user), post_ids).add_columns(literal(_POST)))
    if board_ids:
        parts.append(boards_crud.ids_where(board_usable_by(user), board_ids).add_columns(literal(_BOARD)))
    rows = session.execute(parts[0] if len(parts) == 1 else union_all(*parts)).all()
    return {id_ for id_, kind in rows if kind == _POST}, {id_ for id_, kind in rows if kind == _BOARD}


def reading_scope(session: Session, *, user: User) -> tuple[bool, tuple[int, ...]]:
    """A key equal for any two users who may read exactly the same posts: whether they see hidden
    posts, and the boards they may use (post_readable_by depends on nothing else). Lets work
    done for one user be shared with others in the same position (AI batches)."""
    board_ids = boards_crud.ids_meeting(session, _reader_rule(user.is_superuser), {READER_ID: user.id})
    return sees_hidden(user), tuple(board_ids)


def reading_scopes(session: Session, *, users: Collection[User]) -> dict[int, tuple[bool, tuple[int, ...]]]:
    """reading_scope of each of these users, by id, with one query (the rule evaluated for each
    user the statement loads): an AI batch's jobs have as many owners."""
    usable = boards_crud.ids_by_user(session, _loaded_reader_rule(), user_ids=[user.id for user in users])
    return {user.id: (sees_hidden(user), tuple(usable.get(user.id, ()))) for user in users}
