"""The error answers an operation declares in /openapi.json, in the shape main.py's handlers
give them. Every decorator names the statuses its route can really answer, and for each the
codes (`code`) its answer may carry: a frontend switches on them from the schema (an enum per
answer), and tests/test_openapi.py checks them against the codes the route's code can raise.

    @router.patch("/{post_id}", responses=errors(403, 404, *JSON_BODY, notes=WRITABLE_POST))
    errors(404, 409, notes={409: refusal("Already running or ended.", "job_running", "job_finished")})

A status without a note answers its usual codes (USUAL_CODES: 401 the token's, 403 `banned`, ...);
a note made with `refusal` says what the status means on this route and names its codes. Routers
whose routes all need a signed-in user declare AUTHENTICATED (or ADMINISTRATORS) once as their
own `responses=`; a route's own entry for a status replaces the router's."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from schemas import JobPublic

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error answer except request validation: a sentence and a stable code."""

    detail: str = Field(description="What went wrong, for people.")
    code: str = Field(description="Why, for programs: stable; each answer lists the codes it may carry.")

    model_config = ConfigDict(extra="forbid")


class ValidationIssue(BaseModel):
    """One problem with the request, as Pydantic names it (the input itself is never echoed)."""

    type: str = Field(description="Pydantic's error type, e.g. missing, string_too_long.")
    loc: list[str | int] = Field(description='Where: ["body", "name"], ["path", "post_id"], ...')
    msg: str
    # SkipJsonSchema: the schema shows an object, since an absent ctx is left out, never null.
    ctx: dict[str, Any] | SkipJsonSchema[None] = Field(
        None, description="The rule's parameters; absent when it has none."
    )

    model_config = ConfigDict(extra="forbid")


VALIDATION_EXAMPLE: dict[str, Any] = {
    "detail": [{"type": "missing", "loc": ["body", "name"], "msg": "Field required"}],
    "code": "invalid_input",
}


class ValidationErrorBody(BaseModel):
    """A request that failed validation (422): every problem found, listed."""

    detail: list[ValidationIssue]
    code: Literal["invalid_input"]

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [VALIDATION_EXAMPLE]})


DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8, a broken form).",
    401: "No token, or an invalid, expired or revoked one.",
    403: "This account is banned.",
    404: "It does not exist, or is hidden from you.",
    409: "It conflicts with the current state.",
    413: "The body is larger than this route accepts.",
    415: "The body's media type is not accepted.",
    422: "The request failed validation; `detail` lists each problem.",
    429: "Too many requests; try again after Retry-After seconds.",
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
    },
}
# A request body the framework parses: unreadable (400), too large (413), invalid (422).
JSON_BODY = (400, 413, 422)

# The codes a status answers where no note names them: the framework's for a body it could not
# take (400, 413, 422), the bearer token's (deps.get_current_user), a ban, a rate limit. 404, 409
# and 415 have none: a route says what is missing or conflicts.
USUAL_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request",),
    401: ("not_authenticated", "invalid_token", "token_expired", "token_revoked"),
    403: ("banned",),
    413: ("payload_too_large",),
    422: ("invalid_input",),
    429: ("rate_limited",),
}

# An example detail for each code the API answers (the document's examples; tests/test_openapi.py
# checks each is a detail the app writes for it). A route gives its own where one would not fit.
EXAMPLE_DETAILS = {
    "bad_request": "There was an error parsing the body",
    "bad_multipart": "the multipart body is malformed",
    "wrong_password": "the password is wrong",
    "invalid_reset_token": "this reset code is invalid, expired or already used",
    "not_authenticated": "not authenticated",
    "invalid_token": "invalid access token",
    "token_expired": "access token expired",
    "token_revoked": "this token is no longer valid",
    "invalid_credentials": "wrong name, email or password",
    "invalid_refresh_token": "invalid or expired refresh token",
    "refresh_token_reused": "refresh token already used; please log in again",
    "banned": "this account is banned",
    "admin_only": "administrators only",
    "no_board_access": "you have no access to this board",
    "not_author": "only the author or an administrator may change this post",
    "not_uploader": "only the uploader or an administrator may delete this attachment",
    "not_opener": "only the user who opened this conversation may rename it",
    "name_taken": "this name is taken",
    "email_taken": "this email is taken",
    "name_or_email_taken": "this name or email is taken",
    "last_administrator": "the last administrator cannot delete their account",
    "board_name_taken": "a board with this name exists",
    "cannot_ban_self": "administrators cannot ban themselves",
    "user_deleted": "this account was deleted",
    "conversation_closed": "this conversation is closed",
    "client_id_reused": "this client_id was already used in another conversation",
    "message_deleted": "a deleted message cannot be edited",
    "idempotency_key_reused": "this Idempotency-Key was already used for a different request",
    "job_finished": "the job has already ended (succeeded)",
    "job_running": "the job is already running and can no longer be canceled",
    "job_not_finished": "a job can be deleted once it has ended; cancel it first",
    "model_exists": "a model named 'house-prices' already exists",
    "not_trainable": "'board-suggest' is a built-in model; it cannot be trained",
    "conflict": "another request made this model or version at the same moment; try again",
    "payload_too_large": "request body too large",
    "file_too_large": "photo.png is larger than 10 MB",
    "quota_exceeded": "these files (2.0 MB) would take your attachments past your quota of 100 MB "
    "(99.1 MB used); delete some attachments first",
    "extension_mismatch": "photo.jpg is named as a JPEG file but its content is PNG; send it under a "
    "name that fits its content",
    "unsupported_file_type": "setup.exe is not an allowed type (PNG, JPEG, GIF, WebP, PDF, ZIP or UTF-8 "
    "text); the type is judged by the content",
    "not_multipart": "send the files as multipart/form-data in the field 'files'",
    "password_required": "changing the email needs your current password",
    "unsafe_filename": "unsafe file name '../notes.txt': '..' is not allowed",
    "empty_file": "notes.txt is empty",
    "no_files": "send one or more files in the field 'files'",
    "too_many_files": "at most 10 files may be sent at once",
    "unexpected_field": "unexpected form field 'note': send files in the field 'files'",
    "invalid_training_data": "line 3 is not valid CSV: unexpected end of data",
    "too_many_rows": "the file has more than 100000 data rows (AI_TRAIN_MAX_ROWS)",
    "duplicate_columns": "duplicate column name(s) in the header: price",
    "missing_target": "the target column 'price' is not in the file (its columns: area, rooms)",
    "missing_features": "feature column(s) not in the file: floor (its columns: area, rooms, price)",
    "non_numeric_cell": "row 2 (line 3), column 'area' is not a number: 'big'",
    "rate_limited": "too many login attempts; try again in 60 s",
    "no_search_terms": "the query has no words to search for",
    "invalid_date_range": "since is after until",
}


@dataclass(frozen=True)
class Refusal:
    """What an error status means on one route, and the codes its answer may carry."""

    description: str
    codes: tuple[str, ...]
    details: Mapping[str, str] = field(default_factory=dict)

    def also(self, sentence: str, *codes: str, **details: str) -> "Refusal":
        """This refusal, and another reason with its codes (`WRITABLE_POST[403].also(...)`)."""
        more = refusal(sentence, *codes, **details)
        return Refusal(
            f"{self.description} {sentence}", (*self.codes, *more.codes), {**self.details, **details}
        )


def refusal(description: str, *codes: str, **details: str) -> Refusal:
    """A note for `errors`: the status's description on this route and its codes. A code given
    by keyword names its example's detail where EXAMPLE_DETAILS' would not fit
    (`refusal("No such post.", not_found="post not found")`).

    For 422 the codes are those the service answers with a sentence of its own (ErrorBody), on
    top of the validation list (ValidationErrorBody, `invalid_input`) every 422 may be."""
    return Refusal(description, (*codes, *details), details)


def errors(*statuses: int, notes: Mapping[int, str | Refusal] | None = None) -> Responses:
    """The `responses=` entries for these error statuses: each with its description (a note's
    or the generic one), its body's schema with `code` narrowed to the codes it may carry, and
    an example of each code."""
    notes = notes or {}
    unknown = set(statuses) - DESCRIPTIONS.keys() | set(notes) - set(statuses)
    assert not unknown, f"no such error status here: {sorted(unknown)}"
    responses: Responses = {}
    for status in sorted(set(statuses)):
        note = notes.get(status, DESCRIPTIONS[status])
        if isinstance(note, str):
            assert status in USUAL_CODES, (
                f"{status} has no usual codes: name them, notes={{{status}: refusal(...)}}"
            )
            note = Refusal(note, () if status == 422 else USUAL_CODES[status])
        responses[status] = error_response(status, note)
        if status in HEADERS:
            responses[status]["headers"] = HEADERS[status]
    return responses


def error_response(status: int, note: Refusal) -> dict[str, Any]:
    """One error status's entry: its schema, and an example of each of its codes (keyed by it)."""
    codes = list(dict.fromkeys(note.codes))
    examples = {
        code: {"value": {"detail": note.details.get(code) or EXAMPLE_DETAILS[code], "code": code}}
        for code in codes
        if not (status == 422 and code == "invalid_input")  # shown as the validation list below
    }
    if status != 422:
        content: dict[str, Any] = {"schema": error_body_schema(codes), "examples": examples}
        return {"description": note.description, "content": {"application/json": content}}
    examples = {"invalid_input": {"value": VALIDATION_EXAMPLE}, **examples}
    if not codes:  # the validation list alone
        content = {"examples": examples}
        return {
            "model": ValidationErrorBody,
            "description": note.description,
            "content": {"application/json": content},
        }
    # Written out, not as `model`: FastAPI would merge the model's `$ref` into this schema. The
    # component is in the document: the routes with a plain 422 put it there.
    validation = {"$ref": "#/components/schemas/ValidationErrorBody"}
    content = {"schema": {"anyOf": [validation, error_body_schema(codes)]}, "examples": examples}
    return {"description": note.description, "content": {"application/json": content}}


def error_body_schema(codes: list[str]) -> dict[str, Any]:
    """ErrorBody's schema, written out for this answer with `code` as the enum of its codes
    (a `$ref` with a narrowed sibling would be lost on client generators)."""
    schema = ErrorBody.model_json_schema()
    schema["properties"]["code"]["enum"] = codes
    return schema


# Every route behind the bearer token: missing or bad token (401); banned account (403).
AUTHENTICATED = errors(401, 403)
ADMINISTRATORS = errors(
    401, 403, notes={403: refusal("Administrators only (or this account is banned).", "admin_only", "banned")}
)

# A sign-up or a profile edit: the name or email taken (or taken at the same moment).
NAME_OR_EMAIL_TAKEN = refusal(
    "The name or the email is taken.", "name_taken", "email_taken", "name_or_email_taken"
)

# What the loaders in deps.py answer (services/access.py, the one access rule), as `notes=`.
_RESTRICTED = "its board is restricted to its members"
_BANNED = "or this account is banned"
READABLE_BOARD = {
    403: refusal(f"The board is restricted to its members ({_BANNED}).", "no_board_access", "banned"),
    404: refusal("No such board, or it is hidden.", not_found="board not found"),
}
READABLE_POST = {
    403: refusal(f"The post's board is restricted to its members ({_BANNED}).", "no_board_access", "banned"),
    404: refusal("No such post.", not_found="post not found"),
}
WRITABLE_POST = {
    403: refusal(
        f"Neither the post's author nor an administrator, or {_RESTRICTED} ({_BANNED}).",
        "not_author",
        "no_board_access",
        "banned",
    ),
    404: READABLE_POST[404],
}
READABLE_COMMENT = {
    403: refusal(
        f"The comment's board is restricted to its members ({_BANNED}).", "no_board_access", "banned"
    ),
    404: refusal("No such comment.", not_found="comment not found"),
}
WRITABLE_COMMENT = {
    403: refusal(
        f"Neither the comment's author nor an administrator, or {_RESTRICTED} ({_BANNED}).",
        "no_board_access",
        "banned",
        not_author="only the author or an administrator may change this comment",
    ),
    404: READABLE_COMMENT[404],
}
READABLE_ATTACHMENT = {
    403: refusal(f"The file's board is restricted to its members ({_BANNED}).", "no_board_access", "banned"),
    404: refusal("No such file.", not_found="attachment not found"),
}
DELETABLE_ATTACHMENT = {
    403: refusal(
        f"Neither the uploader nor an administrator, or {_RESTRICTED} ({_BANNED}).",
        "not_uploader",
        "no_board_access",
        "banned",
    ),
    404: READABLE_ATTACHMENT[404],
}

# A job accepted (202): follow it at its Location (GET /api/v1/ai/jobs/{id}).
_JOB_LOCATION = {"Location": {"description": "The job's URL, to follow it.", "schema": {"type": "string"}}}
JOB_ACCEPTED: Responses = {202: {"headers": _JOB_LOCATION}}
_PREFERENCE_APPLIED = {
    "Preference-Applied": {"description": "The wait honoured (`wait=N`).", "schema": {"type": "string"}}
}
# A submission with Prefer: wait=N: answered whole (200) if the job ends within N seconds.
JOB_ACCEPTED_OR_ENDED: Responses = {
    202: {
        "description": "Stored and queued (with Prefer: wait=N, not ended within N seconds).",
        "headers": {**_JOB_LOCATION, **_PREFERENCE_APPLIED},
    },
    200: {
        "description": "With Prefer: wait=N, the job ended within N seconds (succeeded, failed, cancelled).",
        "headers": {**_JOB_LOCATION, **_PREFERENCE_APPLIED},
        "model": JobPublic,
    },
}
