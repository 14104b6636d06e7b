"""Request and response bodies (Pydantic v2).

Request bodies forbid unknown fields so a typo is a 422, not a silent no-op. PATCH bodies
declare optional fields with a non-null type: a field may be left out, never set to null.
"""

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

from fastapi import UploadFile
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    computed_field,
)

import models
import names
from config import settings
from names import DELETED_USER_PREFIX

# Ids are INT columns; anything larger can name no row and must not reach the database.
MAX_DB_ID = 2**31 - 1

# The default of a field a PATCH body may leave out but never send as null: pydantic does not
# validate a default, so an omitted field is None while an explicit null fails the field's own
# type. Typed Any because no annotation says "absent, but never null" (the services read such a
# field as `value is not None`, or through model_fields_set).
OMITTED: Any = None
DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]


def _not_reserved_name(name: str) -> str:
    if names.is_reserved(name):
        raise ValueError(f"names starting with '{DELETED_USER_PREFIX}' (or a look-alike) are reserved")
    return name


def compatible_form(value: object) -> object:
    """A name in Unicode's compatibility form (NFKC): a full-width "Minji" (U+FF2D ...) is
    "Minji", a ligature its letters, decomposed Hangul jamo the syllables. MariaDB's collation already
    compares such forms as equal and SQLite does not; storing one form makes the unique name and
    the login by name behave alike on both, and keeps look-alike names from being taken twice."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


UserName = Annotated[
    str,
    BeforeValidator(compatible_form),
    StringConstraints(strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[\w.\-]+$"),
    AfterValidator(_not_reserved_name),
    Field(
        description="Letters (any script), digits, '_', '.', '-'; 2-64 characters. Taken (409) when another "
        "user's name is the same ignoring case, or looks the same (Unicode's confusables)."
    ),
]
Email = Annotated[
    EmailStr,
    Field(max_length=256),
    AfterValidator(lambda value: value.lower()),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]


# Control characters (Unicode category Cc: C0, DEL and C1): a NUL or an escape code is never
# meant, and NUL is trouble in a database column. Multi-line text keeps tab and line breaks. A
# one-line name or title also refuses the line and paragraph separators and the bidi embeddings,
# overrides and isolates (U+202A-U+202E, U+2066-U+2069), whose effect runs on past the name into
# whatever is shown after it; the marks (LRM, RLM, ALM) and the joiners that emoji and Persian
# need end with the character and stay.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_CHARS_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _check_text(value: str, controls: re.Pattern[str]) -> str:
    # Lone surrogates never get here: pydantic refuses them as string_unicode.
    if controls.search(value):
        raise ValueError("must not contain control characters")
    return value


def single_line_text(value: str) -> str:
    return _check_text(value, _CONTROL_CHARS)


def multi_line_text(value: str) -> str:
    return _check_text(value, _CONTROL_CHARS_BUT_LINES)


BoardName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(single_line_text),
]
BoardInformation = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=512), AfterValidator(multi_line_text)
]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """Every list of the API but a conversation's messages (see MessageHistory): a page of
    `limit` items from `offset` (both as asked) of `total`."""

    items: list[T]
    total: int = Field(description="How many there are in all, on every page.")
    offset: int = Field(description="How many were skipped: the next page starts at offset + limit.")
    limit: int = Field(description="The most items a page holds (1-100, default 20).")


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

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"refresh_token": "Jq0x4m7Vb9cR2tLwYp8sKd3nHf6gZa1eUo5iQyXvTb0"}]}
    )


class PasswordResetRequest(RequestBody):
    email: Email

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "minji@example.com"}]})


class PasswordResetConfirm(RequestBody):
    token: Annotated[str, Field(min_length=1, max_length=512)]
    new_password: Password

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"token": "Jq0x4m7Vb9cR2tLwYp8sKd3nHf6gZa1eUo5iQyXvTb0", "new_password": "a new long secret"}
            ]
        }
    )


# --- users --------------------------------------------------------------------------------


class UserPublic(ORMModel):
    id: int
    name: str
    email: str | None
    join_date: datetime
    is_superuser: bool
    is_banned: bool


class UserUpdate(RequestBody):
    name: UserName = OMITTED
    email: Email = OMITTED
    # Asked again so a stolen access token alone cannot move the account to another address.
    password: Annotated[
        str, Field(min_length=1, max_length=128, description="My current password; needed to change `email`.")
    ] = OMITTED

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "minji.kim"},
                {"email": "minji.kim@example.com", "password": "a long secret"},
            ]
        }
    )


class AccountDeletion(RequestBody):
    password: Annotated[str, Field(min_length=1, max_length=128)]

    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "a long secret"}]})


class PasswordChange(RequestBody):
    current_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"current_password": "a long secret", "new_password": "an even longer secret"}]
        }
    )


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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "자유게시판", "information": "무엇이든 이야기하는 곳", "is_public": True}]
        }
    )


class BoardUpdate(RequestBody):
    name: BoardName = OMITTED
    information: BoardInformation = OMITTED
    is_public: bool = OMITTED
    is_visible: bool = OMITTED

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"information": "Questions about the service", "is_public": False}]}
    )


# --- admin --------------------------------------------------------------------------------


class AdminUserUpdate(RequestBody):
    is_banned: bool = OMITTED

    model_config = ConfigDict(json_schema_extra={"examples": [{"is_banned": True}]})


class BoardAccessUpdate(RequestBody):
    board_ids: Annotated[list[DbId], Field(max_length=1000)]

    model_config = ConfigDict(json_schema_extra={"examples": [{"board_ids": [1, 3]}]})


class BoardAccess(BaseModel):
    user_id: int
    boards: list[BoardPublic]


class UserActivity(BaseModel):
    posts: int
    comments: int
    conversations: int
    ai_jobs: int


class AdminUserPublic(UserPublic):
    """A user as administrators see them: a deleted (anonymized) account says so."""

    deleted_date: datetime | None = Field(description="When the account was deleted; null: it is not.")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy refuses it
    @property
    def is_deleted(self) -> bool:
        return self.deleted_date is not None


class AdminUserDetail(AdminUserPublic):
    counts: UserActivity
    boards: list[BoardPublic]


# --- posts, comments, likes ---------------------------------------------------------------


def _storable_text(value: str) -> str:
    """Refuses blank text, text that is not valid Unicode (a lone surrogate from a JSON escape),
    which no database column can store, and control characters but tab and line breaks."""
    if not value.strip():
        raise ValueError("must not be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return multi_line_text(value)


def _storable_line(value: str) -> str:
    """Storable text on one line: a title or a name (no tab, no line break, no bidi override)."""
    return single_line_text(_storable_text(value))


PostTitle = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_storable_line)
]
# Content keeps its whitespace (line breaks, indentation); only its length is bounded.
PostContent = Annotated[
    str, Field(max_length=settings.POST_CONTENT_MAX_CHARS), AfterValidator(_storable_text)
]
CommentContent = Annotated[str, Field(max_length=256), AfterValidator(_storable_text)]
PostSort = Literal["latest", "views", "likes", "comments"]


class AuthorPublic(BaseModel):
    """Who wrote a post or comment. A deleted account keeps its id and its anonymized name."""

    id: int
    name: str


class AttachmentPublic(ORMModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    # models.Attachment calls it original_name; the API calls it filename.
    filename: str = Field(validation_alias=AliasChoices("filename", "original_name"))
    content_type: str
    size: int

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy refuses it
    @property
    def url(self) -> str:
        return f"{settings.API_PREFIX}/attachments/{self.id}"


class PostSummary(BaseModel):
    """A post as a list shows it (no content)."""

    id: int
    board_id: int
    name: str
    author: AuthorPublic
    create_date: datetime
    update_date: datetime
    number_of_view: int
    number_of_comment: int
    number_of_like: int
    is_file_attached: bool
    is_visible: bool = Field(description="False only for administrators' eyes: a deleted (hidden) post.")


class PostDetail(PostSummary):
    content: str
    liked_by_me: bool
    attachments: list[AttachmentPublic]


class PostCreate(RequestBody):
    name: PostTitle
    content: PostContent

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "질문 있습니다", "content": "마당에 처음 왔어요."}]}
    )


class PostUpdate(RequestBody):
    name: PostTitle = OMITTED
    content: PostContent = OMITTED
    is_visible: bool = Field(
        OMITTED, description="Administrators only: false hides (deletes) the post, true restores it."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "질문 있습니다 (해결)", "content": "마당에 처음 왔어요. 이제 알겠어요!"},
                {"is_visible": True},
            ]
        }
    )


class LikeState(BaseModel):
    liked: bool
    number_of_like: int


class CommentPublic(BaseModel):
    id: int
    post_id: int
    author: AuthorPublic
    content: str
    create_date: datetime
    update_date: datetime
    is_file_attached: bool
    is_visible: bool = Field(description="False only for administrators' eyes: a deleted (hidden) comment.")


class CommentCreate(RequestBody):
    content: CommentContent

    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "저도 궁금했어요!"}]})


class CommentUpdate(RequestBody):
    content: CommentContent = OMITTED
    is_visible: bool = Field(
        OMITTED, description="Administrators only: false hides (deletes) the comment, true restores it."
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"content": "Thanks, that answers it."}, {"is_visible": False}]}
    )


# --- search -------------------------------------------------------------------------------

SearchSort = Literal["relevance", "latest"]
SearchMode = Literal["keyword", "semantic", "hybrid"]
SEARCH_QUERY_MAX_CHARS = 100


class SearchRequest(BaseModel):
    """GET /search's query (its page's offset and limit are every list's)."""

    q: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SEARCH_QUERY_MAX_CHARS)
    ] = Field(
        description="Words to find, 1-100 characters: a post matches when its title and content "
        "together, or one of its comments, hold all of them. Korean words are found inside "
        "longer ones (김치 in 김치찌개, 파이썬 in 파이썬은); English ignores case and plurals."
    )
    board_id: DbId | None = Field(None, description="Only this board's posts.")
    author: (
        Annotated[
            str,
            BeforeValidator(compatible_form),
            StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
            AfterValidator(single_line_text),
        ]
        | None
    ) = Field(None, description="Only the posts of the user of this name (ignoring case).")
    since: date | None = Field(None, description="Only posts written on this day (UTC) or later.")
    until: date | None = Field(None, description="Only posts written on this day (UTC) or earlier.")
    sort: SearchSort = Field(
        "relevance", description="Best match first (title above content above comment), or newest first."
    )
    mode: SearchMode = Field(
        "hybrid",
        description="keyword: words as written; semantic: by meaning; hybrid: both. Semantic and hybrid "
        "are not available yet: they answer by keyword, saying so in `fallback`.",
    )


class SearchHit(PostSummary):
    """A post a search found: as a list shows it, with its board's name and where it matched."""

    board_name: str
    matched_in: Literal["title", "content", "comment", "meaning"] = Field(
        description="Where the words are: the title; the content (with the title); a comment; or "
        "nowhere: found by meaning (semantic and hybrid search)."
    )
    snippet: str = Field(
        description="HTML: a short window of the matched text around its first match, the matched "
        "words in <mark>...</mark>, everything else escaped."
    )


class SearchPage(Page[SearchHit]):
    """A page of search results, best first (or newest first), and how they were found."""

    total_exact: bool = Field(
        description="False when `total` is a lower bound: a word in thousands of posts is ranked "
        "among its newest matches (1,000 of the posts and 1,000 of the comments), and there are more."
    )
    mode: SearchMode = Field(description="How this answer was ranked.")
    fallback: str | None = Field(
        description="Why the answer is not in the mode asked for (e.g. the semantic model is not "
        "available); null when it is."
    )


# --- chat ---------------------------------------------------------------------------------

CHAT_MESSAGE_MAX_CHARS = 256  # models.Chat.content is String(256)

ChatContent = Annotated[
    str, Field(min_length=1, max_length=CHAT_MESSAGE_MAX_CHARS), AfterValidator(_storable_text)
]
ConversationName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
    AfterValidator(_storable_line),
]
ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$"),
    Field(description="Chosen by the client (e.g. a UUID); a resend with the same id stores nothing twice."),
]


class ChatUser(ORMModel):
    id: int
    name: str


class ChatMessagePublic(ORMModel):
    """A message. A deleted one stays in the history in its place as a tombstone: same id,
    author and dates, `is_deleted: true`, and `content: null` for everyone but administrators,
    who keep the content for moderation."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    session_id: int = Field(validation_alias=AliasChoices("session_id", "chat_session_id"))
    user: ChatUser
    content: str | None = Field(description="Null when the message was deleted (administrators see it).")
    create_date: datetime
    edit_date: datetime | None = Field(description="When the author last edited it; null: never edited.")
    is_visible: bool = Field(description="False once the message is deleted (the same as is_deleted).")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy refuses it
    @property
    def is_deleted(self) -> bool:
        return not self.is_visible


class MessageHistory(BaseModel):
    """A conversation's messages, oldest first, and the cursors to read on: pass
    `next_before_id` as `before_id` for the older ones, `next_after_id` as `after_id` for the
    newer ones. Ids only grow, so a walk either way never repeats or skips a message."""

    items: list[ChatMessagePublic]
    next_before_id: int | None = Field(
        description="The before_id of the messages before these; null when there are none "
        "(these reach back to the first message)."
    )
    next_after_id: int | None = Field(
        description="The after_id of the messages after these; null when there are none yet "
        "(these reach the latest message)."
    )


class ChatSessionPublic(ORMModel):
    id: int
    name: str
    user: ChatUser = Field(description="The user who opened the conversation.")
    create_date: datetime
    is_closed: bool
    is_visible: bool


class ChatSessionSummary(ChatSessionPublic):
    last_message: ChatMessagePublic | None = Field(
        description="The latest message that is not deleted (a conversation's preview)."
    )
    last_read_id: int | None = Field(description="My read marker: the last message id I have read.")
    unread_count: int = Field(
        description="Messages from others after my read marker, deleted ones not counted."
    )


class ChatSessionCreate(RequestBody):
    name: ConversationName

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "로그인이 안 돼요"}]})


class ChatSessionUpdate(RequestBody):
    name: ConversationName = Field(OMITTED, description="The opener only.")
    is_closed: bool = Field(OMITTED, description="Administrators only.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Password reset mail never arrives"}, {"is_closed": True}]}
    )


class ChatMessageCreate(RequestBody):
    content: ChatContent
    client_id: ClientId | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content": "안녕하세요, 비밀번호 재설정 메일이 오지 않아요.",
                    "client_id": "3f1c9a2e-7b4d-4e0a-9c51-2d8f6b1e0a77",
                }
            ]
        }
    )


class ChatMessageUpdate(RequestBody):
    content: ChatContent

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"content": "Hello, the password reset mail never arrives."}]}
    )


class ChatReadMarker(RequestBody):
    last_read_id: DbId

    model_config = ConfigDict(json_schema_extra={"examples": [{"last_read_id": 42}]})


# What a client may send on the socket (`WS /ws`). Unknown extra fields are ignored so a
# client may add its own (e.g. a request id); a missing or unknown `type` is an error event.


class ChatSendEvent(BaseModel):
    type: Literal["chat.send"]
    session_id: DbId
    content: ChatContent
    client_id: ClientId


class ChatReadEvent(BaseModel):
    type: Literal["chat.read"]
    session_id: DbId
    last_read_id: DbId


class ChatTypingEvent(BaseModel):
    type: Literal["chat.typing"]
    session_id: DbId


class AuthEvent(BaseModel):
    """A fresh access token for an open socket, sent before the one it opened with expires."""

    type: Literal["auth"]
    token: str = Field(min_length=1)


class PingEvent(BaseModel):
    type: Literal["ping"]


class PongEvent(BaseModel):
    type: Literal["pong"]


ClientEvent = Annotated[
    ChatSendEvent | ChatReadEvent | ChatTypingEvent | AuthEvent | PingEvent | PongEvent,
    Field(discriminator="type"),
]


# --- AI -----------------------------------------------------------------------------------

JobStatus: TypeAlias = models.JobStatus  # the statuses the job table holds

JobInput = Annotated[
    str,
    Field(max_length=settings.POST_CONTENT_MAX_CHARS, description="The text the model reads."),
    AfterValidator(_storable_text),
]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
# A trained model's input: one row of numbers by column name, or a list of rows (services/ai/trained.py
# checks the columns against the model's features).
FeatureName = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(single_line_text)
]
FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
TabularRow = Annotated[
    dict[FeatureName, FeatureValue], Field(min_length=1, max_length=settings.AI_TRAIN_MAX_FEATURES)
]
TabularRows = Annotated[list[TabularRow], Field(min_length=1, max_length=settings.AI_PREDICT_MAX_ROWS)]


class AIModelPublic(ORMModel):
    id: int
    name: str
    information: str
    is_visible: bool
    kind: str | None = Field(None, description='None: a built-in model; "tabular-regression": trained.')
    is_ready: bool = Field(True, description="A trained model takes jobs once a version has succeeded.")


class AIModelUpdate(RequestBody):
    information: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=256), AfterValidator(multi_line_text)
    ] = OMITTED
    is_visible: bool = OMITTED

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"information": "Finds posts like the text you give it.", "is_visible": True}]
        }
    )


class JobCreate(RequestBody):
    input: JobInput | TabularRow | TabularRows = Field(
        description="Text for the built-in models; for a trained model a row {column: number} or a list."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"input": "게시판에 사진을 올리는 방법"}, {"input": {"x0": 1.5, "x1": 2.0}}]
        }
    )


class JobPublic(BaseModel):
    """An AI job (a row of AIlog): its input, where it is in its life, and how it ended."""

    id: int
    model: str
    status: JobStatus
    input: str | dict[str, Any] | list[Any] = Field(
        description="What was submitted: text, row(s) for a trained model, or a training run's parameters."
    )
    result: Any = Field(
        None, description="The model's answer (JSON) once the job succeeded; a training's progress meanwhile."
    )
    error: str | None
    attempts: int = Field(description="Runs started; a job is failed after AI_MAX_ATTEMPTS.")
    create_date: datetime
    started_date: datetime | None
    finish_date: datetime | None
    is_finished: bool


# --- AI training (administrators) -----------------------------------------------------------------

TrainedModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$"),
    Field(description="Lower-case letters, digits, '.', '_', '-'; 1-64 characters; the name jobs use."),
]


def _feature_names(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    single_line_text(value)
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ValueError("an empty column name in the list")
    if len(set(names)) != len(names):
        raise ValueError("a column is named twice")
    return ",".join(names)


# A training request's fields, as the examples of /docs show them (a model's, and a version's).
TRAINING_EXAMPLE: dict[str, Any] = {
    "file": "rooms,area,price\n3,84.5,310.0\n2,59.9,215.5\n4,101.2,402.0\n",
    "target": "price",
    "features": "rooms,area",
    "epochs": 50,
    "learning_rate": 0.01,
    "hidden_size": 16,
}


class TrainingForm(RequestBody):
    """A training run's multipart form: the CSV and how to learn from it."""

    file: UploadFile = Field(description="CSV (UTF-8, a header row, numbers); at most MAX_UPLOAD_MB.")
    target: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
        AfterValidator(single_line_text),
    ] = Field(description="The column to predict.")
    features: Annotated[str | None, AfterValidator(_feature_names)] = Field(
        None, max_length=32_768, description="Comma-separated feature columns; default: all but the target."
    )
    epochs: int = Field(20, ge=1, le=settings.AI_TRAIN_MAX_EPOCHS)
    learning_rate: float = Field(0.01, gt=0, le=10, allow_inf_nan=False, description="SGD (momentum 0.9).")
    hidden_size: int | None = Field(
        None, ge=1, le=1024, description="One hidden ReLU layer of this size; none: a linear model."
    )

    model_config = ConfigDict(json_schema_extra={"examples": [TRAINING_EXAMPLE]})

    def feature_names(self) -> list[str] | None:
        return self.features.split(",") if self.features else None


class ModelCreateForm(TrainingForm):
    name: TrainedModelName
    information: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=256), AfterValidator(multi_line_text)
    ] = ""
    kind: Literal["tabular-regression"] = "tabular-regression"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "house-prices",
                    "information": "A flat's price from its rooms and area.",
                    "kind": "tabular-regression",
                    **TRAINING_EXAMPLE,
                }
            ]
        }
    )


class AIModelVersionPublic(BaseModel):
    """One training run of a trained model: its parameters, and its metrics once it succeeded."""

    id: int
    model_id: int
    version: int
    status: JobStatus
    parameters: dict[str, Any]
    metrics: dict[str, Any] | None
    training_job_id: int | None
    create_date: datetime
    finish_date: datetime | None
    is_current: bool = Field(description="The version inference uses: the highest one that succeeded.")


# --- health -------------------------------------------------------------------------------


class ReembeddingProgress(BaseModel):
    model: str = Field(description="The embedding model the posts are re-embedded with.")
    done: int
    total: int = Field(description="Posts without a vector of that model when it started.")


class Readiness(BaseModel):
    status: Literal["ok", "fail"]
    problems: list[str] = Field(description='What is not ready, e.g. "database unreachable"; empty when ok.')
    reembedding: ReembeddingProgress | None = Field(
        None,
        description="While this process re-embeds the posts after a change of EMBEDDING_MODEL "
        "(similar-posts answers `partial` meanwhile); null otherwise. It does not stop serving.",
    )
