from fastapi import APIRouter

from deps import CurrentUser, ReadableBoard, SessionDep
from models import Board
from schemas import BoardPublic
from services import access

router = APIRouter(prefix="/boards", tags=["boards"])


@router.get("", response_model=list[BoardPublic], summary="Boards I may use")
def list_boards(user: CurrentUser, session: SessionDep) -> object:
    return access.usable_boards(session, user=user)


@router.get("/{board_id}", response_model=BoardPublic, summary="One board")
def read_board(board: ReadableBoard) -> Board:
    return board
