"""Creating and editing boards (administrators)."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import boards as boards_crud
from errors import Conflict
from models import Board
from schemas import BoardCreate, BoardUpdate


def create(session: Session, data: BoardCreate) -> Board:
    if boards_crud.name_taken(session, data.name):
        raise Conflict("a board with this name exists", code="board_name_taken")
    board = Board(name=data.name, information=data.information, is_public=data.is_public)
    session.add(board)
    _commit_unique_name(session)
    return board


def update(session: Session, *, board: Board, changes: BoardUpdate) -> Board:
    values = changes.model_dump(exclude_unset=True)
    if "name" in values and boards_crud.name_taken(session, values["name"], except_id=board.id):
        raise Conflict("a board with this name exists", code="board_name_taken")
    for field, value in values.items():
        setattr(board, field, value)
    _commit_unique_name(session)
    return board


def _commit_unique_name(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("a board with this name exists", code="board_name_taken") from exc
