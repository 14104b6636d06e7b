"""What administrators do to users: find, ban, grant board access."""

from sqlalchemy.orm import Session

from crud import boards as boards_crud
from crud import pages
from crud import users as users_crud
from errors import Conflict, NotFound
from models import Board, User
from schemas import (
    AdminUserDetail,
    AdminUserPublic,
    AdminUserUpdate,
    BoardAccess,
    BoardPublic,
    Page,
    UserActivity,
    UserCreate,
)
from services import auth, chat
from services.broker import LiveEvents


def get_user(session: Session, user_id: int) -> User:
    user = users_crud.get(session, user_id)
    if user is None:
        raise NotFound("user")
    return user


def get_board(session: Session, board_id: int) -> Board:
    board = boards_crud.get(session, board_id)
    if board is None:
        raise NotFound("board")
    return board


def list_users(
    session: Session, *, q: str | None, is_banned: bool | None, offset: int, limit: int
) -> Page[AdminUserPublic]:
    rows, total = pages.fetch_page(
        session, users_crud.search_query(q=q, is_banned=is_banned), offset=offset, limit=limit
    )
    return Page[AdminUserPublic](
        items=[AdminUserPublic.model_validate(u) for u in rows], total=total, offset=offset, limit=limit
    )


def describe_user(session: Session, user: User) -> AdminUserDetail:
    return AdminUserDetail(
        **AdminUserPublic.model_validate(user).model_dump(exclude={"is_deleted"}),
        counts=UserActivity(**users_crud.activity_counts(session, user.id)),
        boards=[BoardPublic.model_validate(b) for b in boards_crud.member_boards(session, user.id)],
    )


def update_user(
    session: Session, *, admin: User, user: User, changes: AdminUserUpdate, live: LiveEvents
) -> User:
    values = changes.model_dump(exclude_unset=True)
    _refuse_deleted(user)
    if values.get("is_banned") and user.id == admin.id:
        raise Conflict("administrators cannot ban themselves", code="cannot_ban_self")
    # A ban ends every token already issued (docs/security.md): an unban does not bring them back,
    # the user logs in again. Open sockets are closed at once, on every process.
    if values.get("is_banned") and not user.is_banned:
        auth.end_all_sessions(session, user)
    for field, value in values.items():
        setattr(user, field, value)
    session.commit()
    if values.get("is_banned"):
        chat.disconnect_user(user.id, banned=True, live=live)
    return user


def _refuse_deleted(user: User) -> None:
    """A deleted account is final: nothing an administrator changes brings it back to life."""
    if user.deleted_date is not None:
        raise Conflict("this account was deleted", code="user_deleted")


def grant_board_access(session: Session, *, user: User, board_ids: list[int]) -> BoardAccess:
    """Replaces the user's access list with exactly these boards."""
    _refuse_deleted(user)
    wanted = sorted(set(board_ids))
    boards = boards_crud.get_many(session, wanted)
    missing = sorted(set(wanted) - {b.id for b in boards})
    if missing:
        raise NotFound(f"board {', '.join(map(str, missing))}")
    boards_crud.replace_members(session, user_id=user.id, board_ids=wanted)
    session.commit()
    return BoardAccess(user_id=user.id, boards=[BoardPublic.model_validate(b) for b in boards])


def create_superuser(session: Session, *, name: str, email: str, password: str) -> User:
    return auth.signup(session, UserCreate(name=name, email=email, password=password), is_superuser=True)


def promote_to_superuser(session: Session, *, name: str) -> User:
    user = users_crud.get_by_login(session, name)
    if user is None or user.deleted_date is not None:
        raise Conflict(f"no user named {name}", code="user_not_found")
    user.is_superuser = True
    session.commit()
    return user
