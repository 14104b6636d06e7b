"""Queries over boards and the board access list."""

from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.orm import Session

from crud.pages import Listing
from models import Board, User, board_access


def get(session: Session, board_id: int) -> Board | None:
    return session.get(Board, board_id)


def get_many(session: Session, board_ids: Sequence[int]) -> list[Board]:
    if not board_ids:
        return []
    return list(session.scalars(select(Board).where(Board.id.in_(board_ids)).order_by(Board.id)))


def name_taken(session: Session, name: str, *, except_id: int | None = None) -> bool:
    """Ignoring case on every backend (MariaDB's collation already does, SQLite's does not)."""
    query = select(Board.id).where(func.lower(Board.name) == name.lower())
    if except_id is not None:
        query = query.where(Board.id != except_id)
    return session.scalar(query.limit(1)) is not None


def lists_user(user_id: int | SQLColumnExpression[int]) -> ColumnElement[bool]:
    """SQL condition: the board's access list names this user."""
    return exists().where(board_access.c.board_id == Board.id, board_access.c.user_id == user_id)


def with_condition(condition: ColumnElement[bool]) -> Select[Board, bool]:
    """A board (the `board_id` bind parameter) and whether it meets the condition: a statement
    to build once and run with get_with_condition."""
    return select(Board, condition).where(Board.id == bindparam("board_id"))


def get_with_condition(
    session: Session, query: Select[Board, bool], *, board_id: int, params: dict[str, Any]
) -> tuple[Board, bool] | None:
    """The board and whether it meets the condition, in one query; None when there is no board.
    `params` fill the condition's own bind parameters."""
    row = session.execute(query, {"board_id": board_id, **params}).first()
    return None if row is None else (row[0], bool(row[1]))


def with_reader_and_condition(condition: ColumnElement[bool]) -> Select[User, Board | None, bool]:
    """A user (the `reader_id` bind parameter) and a board (`board_id`; None when there is no
    such board) with whether the board meets the condition, which may name the user's columns:
    a statement to build once and run with get_with_reader."""
    return (
        select(User, Board, condition)
        .select_from(User)
        .outerjoin(Board, Board.id == bindparam("board_id"))
        .where(User.id == bindparam("reader_id"))
    )


def get_with_reader(
    session: Session, query: Select[User, Board | None, bool], *, reader_id: int, board_id: int
) -> tuple[User, Board | None, bool] | None:
    """The user, the board (or None) and the condition's verdict; None when there is no user."""
    row = session.execute(query, {"reader_id": reader_id, "board_id": board_id}).first()
    return None if row is None else (row[0], row[1], bool(row[2]))


def ids_by_user(
    session: Session, condition: ColumnElement[bool], *, user_ids: Sequence[int]
) -> dict[int, list[int]]:
    """For each of these users, the ids (ascending) of the boards meeting a condition that may
    name the user's columns: one query over these users and every board."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, Board.id)
        .select_from(User)
        .join(Board, true())  # every pair; the condition picks
        .where(User.id.in_(list(user_ids)), condition)
        .order_by(User.id, Board.id)
    )
    found: dict[int, list[int]] = {}
    for user_id, board_id in rows:
        found.setdefault(user_id, []).append(board_id)
    return found


def ids_meeting(session: Session, condition: ColumnElement[bool], params: dict[str, Any]) -> list[int]:
    """The ids (ascending) of the boards meeting a condition built once (its bind parameters in
    `params`): no ORM objects, for a reader's scope asked on every search."""
    return list(session.connection().execute(_ids_meeting(condition), params).scalars())


@lru_cache(maxsize=16)
def _ids_meeting(condition: ColumnElement[bool]) -> Select[int]:
    return select(Board.id).where(condition).order_by(Board.id)


def select_where(condition: ColumnElement[bool]) -> Select[Board]:
    return select(Board).where(condition).order_by(Board.id)


def listing(condition: ColumnElement[bool], params: dict[str, Any]) -> Listing:
    """The boards meeting a condition, by id, and their COUNT: a page for fetch_page. `params`
    fill the condition's bind parameters; the statements are kept per condition, which callers
    build once (services/access.py)."""
    query, count_query = _listing_statements(condition)
    return Listing(query, count_query, params)


@lru_cache(maxsize=16)
def _listing_statements(condition: ColumnElement[bool]) -> tuple[Select[Board], Select[int]]:
    return select_where(condition), select(func.count()).select_from(Board).where(condition)


def ids_where(condition: ColumnElement[bool], board_ids: Collection[int]) -> Select[int]:
    """The ids among board_ids of the boards meeting a condition on Board."""
    return select(Board.id).where(Board.id.in_(list(board_ids)), condition)


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
