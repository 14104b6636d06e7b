"""A user's own account: profile, password, boards."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import users as users_crud
from errors import BadRequest, Conflict
from models import User
from schemas import UserUpdate
from services import auth, security


def update_profile(session: Session, *, user: User, changes: UserUpdate) -> User:
    values = changes.model_dump(exclude_unset=True)
    if "name" in values and users_crud.name_taken(session, values["name"], except_id=user.id):
        raise Conflict("this name is taken", code="name_taken")
    if "email" in values and users_crud.email_taken(session, values["email"], except_id=user.id):
        raise Conflict("this email is taken", code="email_taken")
    for field, value in values.items():
        setattr(user, field, value)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("this name or email is taken", code="name_or_email_taken") from exc
    return user


def change_password(session: Session, *, user: User, current_password: str, new_password: str) -> None:
    """Sets a new password and ends every session of the user, this one included."""
    if not security.verify_password(current_password, user.password_hash):
        raise BadRequest("the current password is wrong", code="wrong_password")
    user.password_hash = security.hash_password(new_password)
    auth.end_all_sessions(session, user)
    session.commit()
