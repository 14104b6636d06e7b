from fastapi import APIRouter, status

from deps import ClientIP, CurrentUser, Pagination, RuntimeDep, SessionDep
from models import User
from routers.responses import AUTHENTICATED, JSON_BODY, NAME_OR_EMAIL_TAKEN, errors, refusal
from schemas import AccountDeletion, BoardPublic, Page, PasswordChange, UserPublic, UserUpdate
from services import boards as boards_service
from services import users as users_service

router = APIRouter(prefix="/users", tags=["users"], responses=AUTHENTICATED)
LAST_ADMINISTRATOR = refusal("The last administrator cannot leave.", "last_administrator")
WRONG_PASSWORD = refusal("The password is wrong; or the body is unreadable.", "bad_request", "wrong_password")


@router.get("/me", response_model=UserPublic, summary="My profile")
def read_me(user: CurrentUser) -> User:
    return user


@router.patch(
    "/me",
    response_model=UserPublic,
    summary="Edit my profile",
    description="A new `email` needs my current `password` in the same body; the old address "
    "is told of the change and pending password reset codes stop working.",
    responses=errors(
        409,
        429,
        *JSON_BODY,
        notes={
            400: WRONG_PASSWORD,
            409: NAME_OR_EMAIL_TAKEN,
            422: refusal(
                "The request failed validation, or (code `password_required`) a new email came "
                "without the password.",
                "password_required",
            ),
        },
    ),
)
def update_me(changes: UserUpdate, user: CurrentUser, session: SessionDep, ip: ClientIP) -> User:
    return users_service.update_profile(session, user=user, changes=changes, client_ip=ip)


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password (ends every session)",
    responses=errors(429, *JSON_BODY, notes={400: WRONG_PASSWORD}),
)
def change_password(
    data: PasswordChange, user: CurrentUser, session: SessionDep, ip: ClientIP, runtime: RuntimeDep
) -> None:
    users_service.change_password(
        session,
        user=user,
        current_password=data.current_password,
        new_password=data.new_password,
        client_ip=ip,
        live=runtime.broker,
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete my account (anonymized; posts stay under a placeholder name)",
    responses=errors(
        409,
        429,
        *JSON_BODY,
        notes={400: WRONG_PASSWORD, 409: LAST_ADMINISTRATOR},
    ),
)
def delete_me(
    data: AccountDeletion, user: CurrentUser, session: SessionDep, ip: ClientIP, runtime: RuntimeDep
) -> None:
    users_service.delete_account(
        session, user=user, password=data.password, client_ip=ip, live=runtime.broker
    )


@router.get("/me/boards", response_model=Page[BoardPublic], summary="Boards I may use", responses=errors(422))
def my_boards(user: CurrentUser, session: SessionDep, page: Pagination) -> Page[BoardPublic]:
    return boards_service.list_usable(session, user=user, offset=page.offset, limit=page.limit)
