from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from deps import ClientIP, RuntimeDep, SessionDep
from routers.responses import JSON_BODY, NAME_OR_EMAIL_TAKEN, errors, refusal
from schemas import (
    Message,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
)
from services import auth as auth_service

router = APIRouter(prefix="/auth", tags=["auth"])

RESET_ACCEPTED = "If this address has an account, a reset code is on its way."
WRONG_CREDENTIALS = refusal("Wrong name, email or password.", "invalid_credentials")
# The login form, as Swagger UI and a generated client send it.
LOGIN_EXAMPLE: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "example": {"username": "minji", "password": "a long secret"},
            }
        }
    }
}


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    summary="Create an account",
    responses=errors(409, 429, *JSON_BODY, notes={409: NAME_OR_EMAIL_TAKEN}),
)
def signup(data: UserCreate, session: SessionDep, ip: ClientIP) -> object:
    return auth_service.signup(session, data, client_ip=ip)


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with name or email",
    openapi_extra=LOGIN_EXAMPLE,
    responses=errors(401, 403, 429, *JSON_BODY, notes={401: WRONG_CREDENTIALS}),
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, ip: ClientIP
) -> TokenPair:
    return auth_service.login(session, login=form.username, password=form.password, client_ip=ip)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Trade a refresh token for a new pair",
    responses=errors(
        401,
        403,
        *JSON_BODY,
        notes={
            401: refusal(
                "The refresh token is invalid, expired, revoked or was already used.",
                "invalid_refresh_token",
                "refresh_token_reused",
            )
        },
    ),
)
def refresh(data: RefreshRequest, session: SessionDep, runtime: RuntimeDep) -> TokenPair:
    return auth_service.refresh(session, data.refresh_token, live=runtime.broker)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a refresh token",
    responses=errors(*JSON_BODY),
)
def logout(data: RefreshRequest, session: SessionDep) -> None:
    auth_service.logout(session, data.refresh_token)


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Message,
    summary="Mail a password reset code",
    responses=errors(429, *JSON_BODY),
)
def request_password_reset(data: PasswordResetRequest, session: SessionDep, ip: ClientIP) -> Message:
    auth_service.request_password_reset(session, email=data.email, client_ip=ip)
    return Message(detail=RESET_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset code",
    responses=errors(
        403,
        *JSON_BODY,
        notes={
            400: refusal(
                "The reset code is invalid, expired or already used; or the body is unreadable.",
                "bad_request",
                "invalid_reset_token",
            ),
            403: "The code's account is banned.",
        },
    ),
)
def confirm_password_reset(data: PasswordResetConfirm, session: SessionDep, runtime: RuntimeDep) -> None:
    auth_service.confirm_password_reset(
        session, token=data.token, new_password=data.new_password, live=runtime.broker
    )
