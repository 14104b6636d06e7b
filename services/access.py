"""The one place that decides who may see a board. Every path into a board's data (board
pages, posts, comments, attachments, search, AI) goes through these functions."""

from sqlalchemy.orm import Session

from crud import boards as boards_crud
from errors import Forbidden, NotFound
from models import Board, User


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
