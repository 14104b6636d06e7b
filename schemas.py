"""Request and response bodies (Pydantic v2).

Request bodies forbid unknown fields so a typo is a 422, not a silent no-op. PATCH bodies
declare optional fields with a non-null type: a field may be left out, never set to null.
"""

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

# Ids are INT columns; anything larger can name no row and must not reach the database.
MAX_DB_ID = 2**31 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]

UserName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[\w.\-]+$"),
    Field(description="Letters (any script), digits, '_', '.', '-'; 2-64 characters."),
]
Email = Annotated[
    EmailStr,
    Field(max_length=256),
    AfterValidator(lambda value: value.lower()),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]
BoardName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
BoardInformation = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class Message(BaseModel):
    detail: str


# --- auth ---------------------------------------------------------------------------------


class UserCreate(RequestBody):
    name: UserName
    email: Email
    password: Password

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "minji", "email": "minji@example.com", "password": "a long secret"}]
        }
    )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(RequestBody):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class PasswordResetRequest(RequestBody):
    email: Email


class PasswordResetConfirm(RequestBody):
    token: Annotated[str, Field(min_length=1, max_length=512)]
    new_password: Password


# --- users --------------------------------------------------------------------------------


class UserPublic(ORMModel):
    id: int
    name: str
    email: str | None
    join_date: datetime
    is_superuser: bool
    is_banned: bool


class UserUpdate(RequestBody):
    name: UserName = None  # type: ignore[assignment]  # may be omitted, never null
    email: Email = None  # type: ignore[assignment]


class PasswordChange(RequestBody):
    current_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password


# --- boards -------------------------------------------------------------------------------


class BoardPublic(ORMModel):
    id: int
    name: str
    information: str
    is_public: bool
    is_visible: bool


class BoardCreate(RequestBody):
    name: BoardName
    information: BoardInformation = ""
    is_public: bool = True


class BoardUpdate(RequestBody):
    name: BoardName = None  # type: ignore[assignment]
    information: BoardInformation = None  # type: ignore[assignment]
    is_public: bool = None  # type: ignore[assignment]
    is_visible: bool = None  # type: ignore[assignment]


# --- admin --------------------------------------------------------------------------------


class AdminUserUpdate(RequestBody):
    is_banned: bool = None  # type: ignore[assignment]


class BoardAccessUpdate(RequestBody):
    board_ids: Annotated[list[DbId], Field(max_length=1000)]


class BoardAccess(BaseModel):
    user_id: int
    boards: list[BoardPublic]


class UserActivity(BaseModel):
    posts: int
    comments: int
    conversations: int
    ai_jobs: int


class AdminUserDetail(UserPublic):
    counts: UserActivity
    boards: list[BoardPublic]
