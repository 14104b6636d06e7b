"""Queries over boards and the board access list."""

from collections.abc import Sequence

from sqlalchemy import Select, delete, exists, insert, or_, select
from sqlalchemy.orm import Session

from models import Board, User, board_access


def get(session: Session, board_id: int) -> Board | None:
    return session.get(Board, board_id)


def get_many(session: Session, board_ids: Sequence[int]) -> list[Board]:
    if not board_ids:
        return []
    return list(session.scalars(select(Board).where(Board.id.in_(board_ids)).order_by(Board.id)))


def name_taken(session: Session, name: str, *, except_id: int | None = None) -> bool:
    query = select(Board.id).where(Board.name == name)
    if except_id is not None:
        query = query.where(Board.id != except_id)
    return session.scalar(query.limit(1)) is not None


def is_member(session: Session, *, board_id: int, user_id: int) -> bool:
    query = select(exists().where(board_access.c.board_id == board_id, board_access.c.user_id == user_id))
    return bool(session.scalar(query))


def usable_by(user: User) -> Select[tuple[Board]]:
    """Boards the user may read and write: everything for an administrator; otherwise the
    visible boards that are public or list the user."""
    query = select(Board).order_by(Board.id)
    if user.is_superuser:
        return query
    member = exists().where(board_access.c.board_id == Board.id, board_access.c.user_id == user.id)
    return query.where(Board.is_visible.is_(True), or_(Board.is_public.is_(True), member))


def member_boards(session: Session, user_id: int) -> list[Board]:
    query = (
        select(Board)
        .join(board_access, board_access.c.board_id == Board.id)
        .where(board_access.c.user_id == user_id)
        .order_by(Board.id)
    )
    return list(session.scalars(query))


def replace_members(session: Session, *, user_id: int, board_ids: Sequence[int]) -> None:
    session.execute(delete(board_access).where(board_access.c.user_id == user_id))
    if board_ids:
        session.execute(insert(board_access), [{"user_id": user_id, "board_id": b} for b in board_ids])
