from typing import Annotated

from fastapi import APIRouter, Query, status

from deps import AdminUser, AnyBoard, AnyUser, Pagination, RuntimeDep, SessionDep
from models import Board, User
from routers.responses import ADMINISTRATORS, JSON_BODY, errors, refusal
from schemas import (
    AdminUserDetail,
    AdminUserPublic,
    AdminUserUpdate,
    BoardAccess,
    BoardAccessUpdate,
    BoardCreate,
    BoardPublic,
    BoardUpdate,
    Page,
)
from services import admin as admin_service
from services import boards as boards_service

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMINISTRATORS)
USER = {404: refusal("No such user.", not_found="user not found")}
DELETED = "The account was deleted"
BOARD_NAME_TAKEN = {409: refusal("A board with this name exists.", "board_name_taken")}


@router.get("/users", response_model=Page[AdminUserPublic], summary="Find users", responses=errors(422))
def list_users(
    _: AdminUser,
    session: SessionDep,
    page: Pagination,
    q: Annotated[str | None, Query(max_length=256, description="Part of a name or email")] = None,
    is_banned: bool | None = None,
) -> Page[AdminUserPublic]:
    return admin_service.list_users(session, q=q, is_banned=is_banned, offset=page.offset, limit=page.limit)


@router.get(
    "/users/{user_id}",
    response_model=AdminUserDetail,
    summary="A user with activity counts",
    responses=errors(404, 422, notes=USER),
)
def read_user(user: AnyUser, session: SessionDep) -> AdminUserDetail:
    return admin_service.describe_user(session, user)


@router.patch(
    "/users/{user_id}",
    response_model=AdminUserPublic,
    summary="Ban or unban a user",
    responses=errors(
        404,
        409,
        *JSON_BODY,
        notes={
            **USER,
            409: refusal(
                f"{DELETED}, or administrators cannot ban themselves.", "user_deleted", "cannot_ban_self"
            ),
        },
    ),
)
def update_user(
    user: AnyUser, changes: AdminUserUpdate, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> User:
    return admin_service.update_user(session, admin=admin, user=user, changes=changes, live=runtime.broker)


@router.put(
    "/users/{user_id}/boards",
    response_model=BoardAccess,
    summary="Replace a user's board access list",
    responses=errors(
        404,
        409,
        *JSON_BODY,
        notes={
            404: refusal("No such user, or no such board.", not_found="user not found"),
            409: refusal(f"{DELETED}.", "user_deleted"),
        },
    ),
)
def replace_board_access(user: AnyUser, data: BoardAccessUpdate, session: SessionDep) -> BoardAccess:
    return admin_service.grant_board_access(session, user=user, board_ids=data.board_ids)


@router.post(
    "/boards",
    status_code=status.HTTP_201_CREATED,
    response_model=BoardPublic,
    summary="Add a board",
    responses=errors(409, *JSON_BODY, notes=BOARD_NAME_TAKEN),
)
def create_board(data: BoardCreate, _: AdminUser, session: SessionDep) -> Board:
    return boards_service.create(session, data)


@router.patch(
    "/boards/{board_id}",
    response_model=BoardPublic,
    summary="Edit a board",
    responses=errors(
        404,
        409,
        *JSON_BODY,
        notes={404: refusal("No such board.", not_found="board not found"), **BOARD_NAME_TAKEN},
    ),
)
def update_board(board: AnyBoard, changes: BoardUpdate, session: SessionDep) -> Board:
    return boards_service.update(session, board=board, changes=changes)
