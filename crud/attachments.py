"""Queries over attachments and the `is_file_attached` flag of their owners."""

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.orm import Session

from models import Attachment, Comment, Post

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
    if attachment.post_id is not None:
        model: type[Post] | type[Comment] = Post
        owner_id, owner_column = attachment.post_id, Attachment.post_id
    else:
        assert attachment.comment_id is not None, "an attachment belongs to a post or a comment"
        model = Comment
        owner_id, owner_column = attachment.comment_id, Attachment.comment_id
    session.execute(
        update(model)
        .where(model.id == owner_id)
        .values(is_file_attached=exists().where(owner_column == model.id))
        .execution_options(synchronize_session=False)
    )
