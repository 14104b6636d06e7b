"""user.name_skeleton: each name's look-alike key, unique

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:00:00.000000

"admin" spelled with a Cyrillic a could sign up beside "admin". Each user now stores the
Unicode confusable skeleton of the name, ignoring case (names.name_skeleton), under a unique
constraint. The existing rows are filled in here, in Python, with the function the app uses.

Existing users whose names already look alike all keep their names: the lowest id keeps the plain
key, each later one gets "<key>#<id>" ("#" is in no name's key), so the constraint can be built; a
new name like any of them is still refused. A name that looks like a deleted account's placeholder
(deleted-user-<id>, which sign-up now refuses) gets the suffix too, so that that account can still
be deleted. (A name stored before names were kept in NFKC form may have a key longer than the
column: it is cut and suffixed the same way.) The downgrade drops the column and its constraint.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import names

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKELETON_CHARS = 512
# Compared exactly on MariaDB: its _ci collation would take "jose" and "jose" + U+0301 for one key.
SKELETON = sa.String(SKELETON_CHARS).with_variant(
    sa.String(SKELETON_CHARS, collation="utf8mb4_bin"), "mysql", "mariadb"
)
# SQLite copies the table to alter it, and its reflection loses the name's NOCASE (0004).
KEEP_NAME_NOCASE = [sa.Column("name", sa.String(64, collation="NOCASE"), nullable=False)]
USER = sa.table("user", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("name_skeleton"))


def upgrade() -> None:
    op.add_column("user", sa.Column("name_skeleton", SKELETON, nullable=True))
    _fill_skeletons()
    with op.batch_alter_table("user", reflect_args=KEEP_NAME_NOCASE) as batch:
        batch.alter_column("name_skeleton", existing_type=SKELETON, nullable=False)
        batch.create_unique_constraint(batch.f("uq_user_name_skeleton"), ["name_skeleton"])


def downgrade() -> None:
    with op.batch_alter_table("user", reflect_args=KEEP_NAME_NOCASE) as batch:
        batch.drop_constraint(batch.f("uq_user_name_skeleton"), type_="unique")
        batch.drop_column("name_skeleton")


def _fill_skeletons() -> None:
    connection = op.get_bind()
    taken: set[str] = set()
    keys: list[dict[str, object]] = []
    for user_id, name in connection.execute(sa.select(USER.c.id, USER.c.name).order_by(USER.c.id)):
        key = names.name_skeleton(name)
        placeholder = name == f"{names.DELETED_USER_PREFIX}{user_id}"
        # A name stored before names were kept in their compatible form (NFKC) may be longer
        # than any a user can now choose; its key is cut, and made unique by the suffix.
        if key in taken or (names.is_reserved(name) and not placeholder) or len(key) > SKELETON_CHARS - 12:
            key = f"{key[: SKELETON_CHARS - 12]}#{user_id}"
        taken.add(key)
        keys.append({"user_id": user_id, "skeleton": key})
    update = (
        USER.update()
        .where(USER.c.id == sa.bindparam("user_id"))
        .values(name_skeleton=sa.bindparam("skeleton"))
    )
    for start in range(0, len(keys), 1000):
        connection.execute(update, keys[start : start + 1000])
