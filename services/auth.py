"""Sign-up, login, token rotation, logout and password reset."""

import logging
import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import tokens as tokens_crud
from crud import users as users_crud
from database import utcnow
from errors import BadRequest, Conflict, Unauthorized, banned
from models import PasswordResetToken, RefreshToken, User
from schemas import TokenPair, UserCreate
from services import chat, mail, rate_limit, security
from services.broker import LiveEvents

log = logging.getLogger(__name__)


def signup(
    session: Session, data: UserCreate, *, client_ip: str | None = None, is_superuser: bool = False
) -> User:
    """Creates an account. A sign-up through the API (`client_ip` given) is counted per client IP
    first, refused ones too: each costs a password hash, and a 409 tells whether an address has
    an account. The command line (no IP) is not limited."""
    if client_ip is not None:
        rate_limit.enforce_per_ip("sign-up", client_ip=client_ip, limit=settings.SIGNUP_LIMIT_PER_IP)
    if users_crud.name_taken(session, data.name):
        raise Conflict("this name is taken", code="name_taken")
    if users_crud.email_taken(session, data.email):
        raise Conflict("this email is taken", code="email_taken")
    user = User(
        name=data.name,
        email=data.email,
        password_hash=security.hash_password(data.password),
        is_superuser=is_superuser,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent sign-up took the name or email first
        session.rollback()
        raise Conflict("this name or email is taken", code="name_or_email_taken") from exc
    return user


def login(session: Session, *, login: str, password: str, client_ip: str) -> TokenPair:
    user = users_crud.get_by_login(session, login)
    # Name and email lead to one account, so the per-account count is keyed by the account
    # (by what was typed only when no account matches).
    rate_limit.enforce(
        "login",
        client_ip=client_ip,
        account=f"id:{user.id}" if user else f"typed:{login}",
        per_ip=settings.LOGIN_LIMIT_PER_IP,
        per_account=settings.LOGIN_LIMIT_PER_ACCOUNT,
    )
    password_ok = security.verify_password(password, user.password_hash if user else None)
    if user is None or not password_ok or user.deleted_date is not None:
        raise Unauthorized("wrong name, email or password", code="invalid_credentials")
    if user.is_banned:
        raise banned()
    pair = issue_token_pair(session, user, family_id=secrets.token_hex(16))
    session.commit()
    return pair


def issue_token_pair(session: Session, user: User, *, family_id: str) -> TokenPair:
    refresh = security.new_opaque_token()
    now = utcnow()
    session.add(
        RefreshToken(
            user_id=user.id,
            token_hash=security.hash_opaque_token(refresh),
            family_id=family_id,
            token_version=user.token_version,
            create_date=now,
            expires_date=now + timedelta(days=settings.REFRESH_TOKEN_DAYS),
        )
    )
    return TokenPair(
        access_token=security.create_access_token(user.id, user.token_version),
        refresh_token=refresh,
        expires_in=settings.ACCESS_TOKEN_MINUTES * 60,
    )


def refresh(session: Session, refresh_token: str, *, live: LiveEvents) -> TokenPair:
    """Trades a refresh token for a new pair. Each refresh token works once: presenting one
    that was already rotated means it leaked, and nobody knows since when or what was traded
    for it, so every session of the user ends (as a password change ends them)."""
    now = utcnow()
    stored = tokens_crud.get_refresh(session, security.hash_opaque_token(refresh_token))
    if stored is None or stored.expires_date <= now:
        raise Unauthorized("invalid or expired refresh token", code="invalid_refresh_token")
    user = users_crud.get(session, stored.user_id)
    if user is not None and user.is_banned:  # the ban revoked the token; say why, as login does
        session.rollback()
        raise banned()
    if stored.revoked_date is not None:
        raise Unauthorized("invalid or expired refresh token", code="invalid_refresh_token")
    if stored.rotated_date is not None or not tokens_crud.mark_rotated(session, stored.id, now):
        tokens_crud.revoke_family(session, stored.family_id, now)
        if user is not None:
            end_all_sessions(session, user)
        session.commit()
        if user is not None:
            chat.disconnect_user(user.id, banned=False, live=live)
        log.warning("refresh token reuse for user %s; every session ended", stored.user_id)
        raise Unauthorized("refresh token already used; please log in again", code="refresh_token_reused")
    if user is None or user.token_version != stored.token_version:
        session.rollback()
        raise Unauthorized("refresh token expired or revoked", code="invalid_refresh_token")
    pair = issue_token_pair(session, user, family_id=stored.family_id)
    session.commit()
    return pair


def logout(session: Session, refresh_token: str) -> None:
    stored = tokens_crud.get_refresh(session, security.hash_opaque_token(refresh_token))
    if stored is not None:
        tokens_crud.revoke_family(session, stored.family_id, utcnow())
        session.commit()


def end_all_sessions(session: Session, user: User) -> None:
    """Invalidates every access and refresh token of the user (no commit)."""
    user.token_version += 1
    tokens_crud.revoke_all_for_user(session, user.id, utcnow())


def request_password_reset(session: Session, *, email: str, client_ip: str) -> None:
    """Mails a single-use reset token when the address has an account. The answer is the same
    either way, so nobody learns which addresses are registered."""
    rate_limit.enforce(
        "password-reset",
        client_ip=client_ip,
        account=email,
        per_ip=settings.PASSWORD_RESET_LIMIT_PER_IP,
        per_account=settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT,
    )
    user = users_crud.get_by_email(session, email)
    if user is None or user.deleted_date is not None or user.is_banned:
        return
    token = security.new_opaque_token()
    now = utcnow()
    session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=security.hash_opaque_token(token),
            create_date=now,
            expires_date=now + timedelta(minutes=settings.PASSWORD_RESET_MINUTES),
        )
    )
    session.commit()
    link = f"\n\n{settings.PASSWORD_RESET_URL}{token}" if settings.PASSWORD_RESET_URL else ""
    mail.send_later(
        user.email or email,
        f"{settings.PROJECT_NAME}: reset your password",
        f"Hello {user.name},\n\nUse this code to set a new password within "
        f"{settings.PASSWORD_RESET_MINUTES} minutes. It works once.\n\n{token}{link}\n\n"
        "If you did not ask for this, ignore this mail.",
    )


def confirm_password_reset(session: Session, *, token: str, new_password: str, live: LiveEvents) -> None:
    now = utcnow()
    stored = tokens_crud.get_reset(session, security.hash_opaque_token(token))
    if (
        stored is None
        or stored.used_date is not None
        or stored.expires_date <= now
        or not tokens_crud.mark_reset_used(session, stored.id, now)
    ):
        session.rollback()
        raise BadRequest("this reset code is invalid, expired or already used", code="invalid_reset_token")
    user = users_crud.get(session, stored.user_id)
    if user is None or user.deleted_date is not None:
        session.rollback()
        raise BadRequest("this reset code is invalid, expired or already used", code="invalid_reset_token")
    if user.is_banned:
        session.rollback()
        raise banned()
    user.password_hash = security.hash_password(new_password)
    end_all_sessions(session, user)
    tokens_crud.expire_resets_for_user(session, user.id, now)
    session.commit()
    chat.disconnect_user(user.id, banned=False, live=live)
