from fastapi import APIRouter

from deps import CurrentUser, Pagination, ReadableBoard, SessionDep
from models import Board
from routers.responses import AUTHENTICATED, READABLE_BOARD, errors
from schemas import BoardPublic, Page
from services import boards as boards_service

router = APIRouter(prefix="/boards", tags=["boards"], responses=AUTHENTICATED)


@router.get("", response_model=Page[BoardPublic], summary="Boards I may use", responses=errors(422))
def list_boards(user: CurrentUser, session: SessionDep, page: Pagination) -> Page[BoardPublic]:
    return boards_service.list_usable(session, user=user, offset=page.offset, limit=page.limit)


@router.get(
    "/{board_id}",
    response_model=BoardPublic,
    summary="One board",
    responses=errors(403, 404, 422, notes=READABLE_BOARD),
)
def read_board(board: ReadableBoard) -> Board:
    return board
