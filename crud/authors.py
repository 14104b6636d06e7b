"""How list rows carry their author: the author's name joined as one labelled column beside
the row's user_id, unpacked into a nested {id, name} for the response."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from models import User

AUTHOR_NAME = User.name.label("author_name")


def with_author(rows: Sequence[Row[*tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """Each row's columns as a dict, user_id and author_name folded into author {id, name}.
    (The column names are read once per result: Row._fields is not free.)"""
    if not rows:
        return []
    names = rows[0]._fields
    fields_of_rows = []
    for row in rows:
        fields = dict(zip(names, row, strict=True))
        fields["author"] = {"id": fields.pop("user_id"), "name": fields.pop("author_name")}
        fields_of_rows.append(fields)
    return fields_of_rows
