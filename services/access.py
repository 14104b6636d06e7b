"""The one place that decides who may see a board. Every path into a board's data (board
pages, posts, comments, attachments, search, AI) goes through these functions."""

from sqlalchemy.orm import Session

from crud import boards as boards_crud
from errors import Forbidden, NotFound
from models import Board, Comment, Post, User


def can_use_board(session: Session, *, user: User, board: Board) -> bool:
    if user.is_superuser:
        return True
    if not board.is_visible:
        return False
    return board.is_public or boards_crud.is_member(session, board_id=board.id, user_id=user.id)


def readable_board(session: Session, *, user: User, board_id: int) -> Board:
    """The board, or 404 when it does not exist or is hidden from this user, or 403 when it
    is restricted and the user is not on its access list."""
    board = boards_crud.get(session, board_id)
    if board is None or (not board.is_visible and not user.is_superuser):
        raise NotFound("board")
    if not can_use_board(session, user=user, board=board):
        raise Forbidden("you have no access to this board", code="no_board_access")
    return board


def usable_boards(session: Session, *, user: User) -> list[Board]:
    return list(session.scalars(boards_crud.usable_by(user)))


def readable_post(session: Session, *, user: User, post_id: int) -> Post:
    """The post, if the user may read its board; hidden posts exist only for administrators."""
    post = session.get(Post, post_id)
    if post is None or (not post.is_visible and not user.is_superuser):
        raise NotFound("post")
    readable_board(session, user=user, board_id=post.board_id)
    return post


def writable_post(session: Session, *, user: User, post_id: int) -> Post:
    """The post, if the user may read it and is its author or an administrator."""
    post = readable_post(session, user=user, post_id=post_id)
    if post.user_id != user.id and not user.is_superuser:
        raise Forbidden("only the author or an administrator may change this post", code="not_author")
    return post


def readable_comment(session: Session, *, user: User, comment_id: int) -> Comment:
    comment = session.get(Comment, comment_id)
    if comment is None or (not comment.is_visible and not user.is_superuser):
        raise NotFound("comment")
    readable_post(session, user=user, post_id=comment.post_id)
    return comment


def writable_comment(session: Session, *, user: User, comment_id: int) -> Comment:
    comment = readable_comment(session, user=user, comment_id=comment_id)
    if comment.user_id != user.id and not user.is_superuser:
        raise Forbidden("only the author or an administrator may change this comment", code="not_author")
    return comment
