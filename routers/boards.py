from fastapi import APIRouter

from deps import CurrentUser, ReadableBoard, SessionDep
from models import Board
from routers.responses import AUTHENTICATED, READABLE_BOARD, errors
from schemas import BoardPublic
from services import access

router = APIRouter(prefix="/boards", tags=["boards"], responses=AUTHENTICATED)


@router.get("", response_model=list[BoardPublic], summary="Boards I may use")
def list_boards(user: CurrentUser, session: SessionDep) -> object:
    return access.usable_boards(session, user=user)


@router.get(
    "/{board_id}",
    response_model=BoardPublic,
    summary="One board",
    responses=errors(403, 404, 422, notes=READABLE_BOARD),
)
def read_board(board: ReadableBoard) -> Board:
    return board
