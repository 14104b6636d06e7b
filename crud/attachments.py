"""Queries over attachments and the `is_file_attached` flag of their owners."""

from sqlalchemy import Row, bindparam, delete, exists, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import Attachment, Comment, Post, User

BY_ID = select(Attachment).where(Attachment.id == bindparam("attachment_id"))


def get(session: Session, attachment_id: int) -> Attachment | None:
    return session.scalar(BY_ID, {"attachment_id": attachment_id})


def add_many(session: Session, attachments: list[Attachment]) -> None:
    session.add_all(attachments)
    session.flush()


def remove(session: Session, attachment_id: int) -> None:
    session.execute(delete(Attachment).where(Attachment.id == attachment_id))


def of_post(session: Session, post_id: int) -> list[Attachment]:
    """A post's own attachments (not its comments'), oldest first."""
    return list(session.scalars(_OF_POST, {"post_id": post_id}))


# Built once: every read of a post runs it.
_OF_POST = select(Attachment).where(Attachment.post_id == bindparam("post_id")).order_by(Attachment.id)


def of_comment(session: Session, comment_id: int) -> list[Attachment]:
    query = select(Attachment).where(Attachment.comment_id == comment_id).order_by(Attachment.id)
    return list(session.scalars(query))


def refresh_file_flag(session: Session, attachment: Attachment) -> None:
    """One UPDATE on the attachment's post or comment: `is_file_attached` becomes whether any
    attachment of it remains. Objects already loaded keep their old value until refreshed."""
    model, owner_id, owner_column = _owner(attachment)
    session.execute(
        update(model)
        .where(model.id == owner_id)
        .values(is_file_attached=exists().where(owner_column == model.id))
        .execution_options(synchronize_session=False)
    )


def mark_file_attached(session: Session, attachment: Attachment) -> None:
    """Sets `is_file_attached` on the post or comment about to get this attachment. Run before
    the attachment rows are inserted, so the owner's row is locked (MariaDB) before their
    foreign-key check takes a shared lock on it: two uploads to one post then queue instead of
    deadlocking on upgrading that shared lock."""
    model, owner_id, _ = _owner(attachment)
    session.execute(
        update(model)
        .where(model.id == owner_id)
        .values(is_file_attached=True)
        .execution_options(synchronize_session=False)
    )


def _owner(
    attachment: Attachment,
) -> tuple[type[Post] | type[Comment], int, InstrumentedAttribute[int | None]]:
    if attachment.post_id is not None:
        return Post, attachment.post_id, Attachment.post_id
    assert attachment.comment_id is not None, "an attachment belongs to a post or a comment"
    return Comment, attachment.comment_id, Attachment.comment_id


def lock_uploader(session: Session, user_id: int) -> None:
    """Locks the user's row until the transaction ends (SELECT ... FOR UPDATE), so that one
    user's uploads, on any API process, check the quota and insert their rows one at a time.
    SQLite has no row locks: there the transaction's first write takes the database's write
    lock, with the latest data. (Fetched at once: an unread SQLite cursor would keep its older
    snapshot open, and the write would then fail instead of waiting.)"""
    session.scalar(_LOCK_UPLOADER, {"user_id": user_id})


_LOCK_UPLOADER = select(User.id).where(User.id == bindparam("user_id")).with_for_update()


def stored_bytes(session: Session, user_id: int) -> int:
    """The bytes of every attachment the user uploaded (rows that exist, whether or not their
    post or comment is hidden): one SUM over the uploader_id index."""
    return int(session.scalar(_STORED_BYTES, {"user_id": user_id}) or 0)


_STORED_BYTES = select(func.coalesce(func.sum(Attachment.size), 0)).where(
    Attachment.uploader_id == bindparam("user_id")
)


# --- storage maintenance: `cli.py storage migrate` and `storage sweep` (services/storage_maintenance.py)

StoredRow = Row[int, str, str, int, str]  # id, storage_backend, storage_key, size, sha256
_STORED = select(
    Attachment.id, Attachment.storage_backend, Attachment.storage_key, Attachment.size, Attachment.sha256
)


def count_by_backend(session: Session) -> dict[str, int]:
    """How many rows name each backend."""
    query = select(Attachment.storage_backend, func.count()).group_by(Attachment.storage_backend)
    return {backend: count for backend, count in session.execute(query).all()}


def stored_not_on(session: Session, backend: str, *, after_id: int, limit: int) -> list[StoredRow]:
    """The next rows (id, storage_backend, storage_key, size, sha256) naming another backend, by id."""
    query = _STORED.where(Attachment.storage_backend != backend, Attachment.id > after_id)
    return list(session.execute(query.order_by(Attachment.id).limit(limit)).all())


def stored_on(session: Session, backend: str, *, after_id: int, limit: int) -> list[StoredRow]:
    """The next rows (id, storage_backend, storage_key, size, sha256) naming this backend, by id."""
    query = _STORED.where(Attachment.storage_backend == backend, Attachment.id > after_id)
    return list(session.execute(query.order_by(Attachment.id).limit(limit)).all())


def move_object(session: Session, attachment_id: int, *, old: tuple[str, str], new: tuple[str, str]) -> bool:
    """Points the row at (backend, key) `new` if it still names `old`: False when the row was
    deleted or moved meanwhile."""
    result = session.execute(
        update(Attachment)
        .where(
            Attachment.id == attachment_id,
            Attachment.storage_backend == old[0],
            Attachment.storage_key == old[1],
        )
        .values(storage_backend=new[0], storage_key=new[1])
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def named_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of these storage keys a row names (on any backend)."""
    if not keys:
        return set()
    return set(session.scalars(select(Attachment.storage_key).where(Attachment.storage_key.in_(keys))))
