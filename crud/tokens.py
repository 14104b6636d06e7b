"""Queries over refresh and password-reset tokens (stored as SHA-256 digests)."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crud import changed_rows
from models import PasswordResetToken, RefreshToken


def get_refresh(session: Session, token_hash: str) -> RefreshToken | None:
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


def mark_rotated(session: Session, token_id: int, now: datetime) -> bool:
    """Marks a refresh token used, once: False when another request got there first."""
    return (
        changed_rows(
            session,
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id,
                RefreshToken.rotated_date.is_(None),
                RefreshToken.revoked_date.is_(None),
            )
            .values(rotated_date=now),
        )
        == 1
    )


def revoke_family(session: Session, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_date.is_(None))
        .values(revoked_date=now)
    )


def revoke_all_for_user(session: Session, user_id: int, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_date.is_(None))
        .values(revoked_date=now)
    )


def get_reset(session: Session, token_hash: str) -> PasswordResetToken | None:
    return session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash))


def mark_reset_used(session: Session, token_id: int, now: datetime) -> bool:
    return (
        changed_rows(
            session,
            update(PasswordResetToken)
            .where(PasswordResetToken.id == token_id, PasswordResetToken.used_date.is_(None))
            .values(used_date=now),
        )
        == 1
    )


def expire_resets_for_user(session: Session, user_id: int, now: datetime) -> None:
    session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_date.is_(None))
        .values(used_date=now)
    )
