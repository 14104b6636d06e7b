"""Text search helpers shared by every list that takes a `q`."""

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """The text with LIKE's wildcards made literal, so a search for "100%" finds "100%"."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(q: str) -> str:
    """The LIKE pattern for "contains q", for use with `contains_pattern`."""
    return f"%{escape_like(q)}%"


def contains_pattern(
    pattern: ColumnElement[str] | str, *columns: InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """SQL condition: any of the columns matches the `like_pattern`, ignoring case (lower() on
    both sides, so SQLite and MariaDB agree; Hangul has no case and matches as typed). The
    pattern may be a bind parameter, so a statement can be built once and reused."""
    return or_(*(column.ilike(pattern, escape=LIKE_ESCAPE) for column in columns))
