"""A user's own account: profile, password, boards."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import boards as boards_crud
from crud import tokens as tokens_crud
from crud import users as users_crud
from database import utcnow
from errors import BadRequest, Conflict, Unprocessable
from models import User
from names import DELETED_USER_PREFIX
from schemas import UserUpdate
from services import auth, chat, mail, rate_limit, security
from services.broker import LiveEvents


def update_profile(session: Session, *, user: User, changes: UserUpdate, client_ip: str) -> User:
    """Renames freely; a new email needs the current password in the same body, since whoever
    controls the address controls password resets, that is, the account."""
    values = changes.model_dump(exclude_unset=True, exclude={"password"})
    old_email = user.email
    if values.get("email") == old_email:  # the address it already has: nothing to confirm or tell
        del values["email"]
    new_email = values.get("email")
    if new_email is not None:
        # Before the look-up of a taken address, so a token alone cannot probe for accounts.
        if changes.password is None:
            raise Unprocessable("changing the email needs your current password", code="password_required")
        check_password(user, changes.password, client_ip=client_ip)
    if "name" in values and users_crud.name_taken(session, values["name"], except_id=user.id):
        raise Conflict("this name is taken", code="name_taken")
    if new_email is not None and users_crud.email_taken(session, new_email, except_id=user.id):
        raise Conflict("this email is taken", code="email_taken")
    for field, value in values.items():
        setattr(user, field, value)
    if new_email is not None:  # codes mailed to the old address must not outlive it
        tokens_crud.expire_resets_for_user(session, user.id, utcnow())
    name = user.name
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("this name or email is taken", code="name_or_email_taken") from exc
    if new_email is not None and old_email is not None:
        tell_old_address(old_email, name=name, new_email=new_email)
    return user


def tell_old_address(old_email: str, *, name: str, new_email: str) -> None:
    """The owner learns of a change they did not make, at the address they still read."""
    mail.send_later(
        old_email,
        f"{settings.PROJECT_NAME}: your email address was changed",
        f"Hello {name},\n\nThe email address of your {settings.PROJECT_NAME} account was changed "
        f"from this one to {mail.mask_address(new_email)}. Mail for the account, password reset "
        "codes included, now goes there.\n\nIf you did not make this change, someone knows your "
        "password: contact the administrators.",
    )


def check_password(user: User, password: str, *, client_ip: str) -> None:
    """The signed-in user's own password, asked again before a change that needs it. Counted
    like logins (per account and per client IP): whoever holds a stolen access token must not
    be able to guess the password behind it, nor spend a hash's CPU per request unchecked."""
    rate_limit.enforce(
        "password check",
        client_ip=client_ip,
        account=f"id:{user.id}",
        per_ip=settings.LOGIN_LIMIT_PER_IP,
        per_account=settings.LOGIN_LIMIT_PER_ACCOUNT,
    )
    if not security.verify_password(password, user.password_hash):
        raise BadRequest("the password is wrong", code="wrong_password")


def change_password(
    session: Session,
    *,
    user: User,
    current_password: str,
    new_password: str,
    client_ip: str,
    live: LiveEvents,
) -> None:
    """Sets a new password, ends every session of the user (this one included) and voids the
    user's pending reset codes."""
    check_password(user, current_password, client_ip=client_ip)
    user.password_hash = security.hash_password(new_password)
    auth.end_all_sessions(session, user)
    tokens_crud.expire_resets_for_user(session, user.id, utcnow())  # a code must not undo the change
    session.commit()
    chat.disconnect_user(user.id, banned=False, live=live)


def delete_account(session: Session, *, user: User, password: str, client_ip: str, live: LiveEvents) -> None:
    """Anonymizes the account: the name becomes a placeholder, the email is freed, no password
    matches, every token and socket dies and board access is cleared. Posts, comments and chat
    history stay, shown under the placeholder name."""
    check_password(user, password, client_ip=client_ip)
    # Locked: of the last two administrators leaving at once, the second waits for the first's
    # commit and then finds itself the last one.
    if user.is_superuser and not set(users_crud.lock_active_superusers(session)) - {user.id}:
        raise Conflict("the last administrator cannot delete their account", code="last_administrator")
    now = utcnow()
    user.name = deleted_user_name(user.id)
    user.email = None
    user.password_hash = security.unusable_password_hash()
    user.is_superuser = False
    user.deleted_date = now
    auth.end_all_sessions(session, user)
    tokens_crud.expire_resets_for_user(session, user.id, now)
    boards_crud.replace_members(session, user_id=user.id, board_ids=[])
    session.commit()
    chat.disconnect_user(user.id, banned=False, live=live)


def deleted_user_name(user_id: int) -> str:
    return f"{DELETED_USER_PREFIX}{user_id}"
