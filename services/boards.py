"""The boards a user may use, a page at a time; creating and editing boards (administrators)."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import boards as boards_crud
from crud import pages
from errors import Conflict
from models import Board, User
from schemas import BoardCreate, BoardPublic, BoardUpdate, Page
from services import access


def list_usable(session: Session, *, user: User, offset: int, limit: int) -> Page[BoardPublic]:
    """The boards the user may use (services/access.py's rule), by id."""
    listing = access.usable_boards_listing(user)
    rows, total = pages.fetch_listing(session, listing, offset=offset, limit=limit)
    return Page[BoardPublic](
        items=[BoardPublic.model_validate(board) for board in rows], total=total, offset=offset, limit=limit
    )


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
