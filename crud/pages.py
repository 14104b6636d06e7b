"""The one way a list becomes a page: one SELECT and at most one COUNT, whatever the page size."""

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


class Listing(NamedTuple):
    """A list's statements, built once per shape with bind parameters, and the values that
    fill them for one request: what crud hands a service for `fetch_page`."""

    query: Select[*tuple[Any, ...]]
    count_query: Select[*tuple[Any, ...]]
    params: dict[str, Any]


PAGE_OFFSET = "page_offset"
PAGE_LIMIT = "page_limit"


def fetch_page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    *,
    offset: int,
    limit: int,
    count_query: Select[*tuple[Any, ...]] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[list[Any], int]:
    """The page's rows (ORM objects for a one-entity query, Rows for a query of several
    columns) and the total. `count_query` may give a cheaper COUNT (same filters, no joins).
    `params` fill the bind parameters of a statement built once and reused (see crud/posts.py):
    such a statement is neither rebuilt nor re-keyed for SQLAlchemy's compiled cache.

    The page is read first: a page shorter than the limit is the last one, so the total is
    known without a COUNT (most comment lists, the last page of a board). A full page, or an
    empty one past the start, still needs the COUNT."""
    values = dict(params or {})
    # Statements that load no ORM objects (the COUNT, list rows made of columns) run on the
    # session's connection: they give the same Rows, without the ORM's result machinery,
    # which costs more than the query itself.
    connection = session.connection()
    window = {**values, PAGE_OFFSET: offset, PAGE_LIMIT: limit}
    loads_objects, one_per_row = _shape(query)
    if loads_objects:
        result = session.execute(_windowed(query), window)
    else:
        result = connection.execute(_windowed(query), window)
    rows = list(result.scalars() if one_per_row else result.all())
    if len(rows) < limit and (rows or offset == 0):
        return rows, offset + len(rows)
    if count_query is None:
        count_query = select(func.count()).select_from(query.order_by(None).subquery())
    return rows, connection.execute(count_query, values).scalar() or 0


def fetch_listing(session: Session, listing: Listing, *, offset: int, limit: int) -> tuple[list[Any], int]:
    """fetch_page for a Listing: its query, its cheaper COUNT and its parameters."""
    query, count_query, params = listing
    return fetch_page(session, query, count_query=count_query, params=params, offset=offset, limit=limit)


@lru_cache(maxsize=256)
def _shape(query: Select[*tuple[Any, ...]]) -> tuple[bool, bool]:
    """Whether the query loads ORM objects, and whether it selects one thing (an entity or a
    column, which each row then is). Kept per statement: `column_descriptions` is worked out
    anew on each call."""
    selected = query.column_descriptions
    return any(isinstance(column["type"], type) for column in selected), len(selected) == 1


@lru_cache(maxsize=256)
def _windowed(query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """The query with OFFSET and LIMIT as bind parameters, kept per statement object (the cache
    holds it, so its identity cannot be reused by another statement while cached)."""
    return query.offset(bindparam(PAGE_OFFSET, type_=Integer)).limit(bindparam(PAGE_LIMIT, type_=Integer))
