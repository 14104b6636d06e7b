"""The error answers an operation declares in /openapi.json, in the shape main.py's handlers
give them. Every decorator names the statuses its route can really answer, one way:

    @router.patch("/{post_id}", responses=errors(404, 403, *JSON_BODY, notes={403: "..."}))

Routers whose routes all need a signed-in user declare AUTHENTICATED (or ADMINISTRATORS) once
as their own `responses=`; a route's own entry for a status replaces the router's."""

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from schemas import JobPublic

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error answer except request validation: a sentence and a stable code."""

    detail: str = Field(description="What went wrong, for people.")
    code: str = Field(
        description="Why, for programs; stable (e.g. not_found, banned, name_taken, rate_limited)."
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"detail": "post not found", "code": "not_found"}]}
    )


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


class ValidationErrorBody(BaseModel):
    """A request that failed validation (422): every problem found, listed."""

    detail: list[ValidationIssue]
    code: Literal["invalid_input"]

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "detail": [{"type": "missing", "loc": ["body", "name"], "msg": "Field required"}],
                    "code": "invalid_input",
                }
            ]
        },
    )


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


def errors(*statuses: int, notes: Mapping[int, str] | None = None, service_422: bool = False) -> Responses:
    """The `responses=` entries for these error statuses. `notes` replaces the generic
    description of a status with what it means on this route. `service_422`: the service
    also refuses the content with a 422 of its own, whose `detail` is a sentence (ErrorBody),
    besides the validation list (ValidationErrorBody)."""
    unknown = set(statuses) - DESCRIPTIONS.keys() | set(notes or {}) - set(statuses)
    assert not unknown, f"no such error status here: {sorted(unknown)}"
    responses: Responses = {}
    for status in sorted(set(statuses)):
        model: Any = ErrorBody
        if status == 422:
            model = ValidationErrorBody | ErrorBody if service_422 else ValidationErrorBody
        responses[status] = {"model": model, "description": (notes or {}).get(status, DESCRIPTIONS[status])}
        if status in HEADERS:
            responses[status]["headers"] = HEADERS[status]
    return responses


# Every route behind the bearer token: missing or bad token (401); banned account (403).
AUTHENTICATED = errors(401, 403)
ADMINISTRATORS = errors(401, 403, notes={403: "Administrators only (or this account is banned)."})

# What the loaders in deps.py answer (services/access.py, the one access rule), as `notes=`.
_RESTRICTED = "its board is restricted to its members"
_BANNED = "or this account is banned"
READABLE_BOARD = {
    403: f"The board is restricted to its members ({_BANNED}).",
    404: "No such board, or it is hidden.",
}
READABLE_POST = {403: f"The post's board is restricted to its members ({_BANNED}).", 404: "No such post."}
WRITABLE_POST = {
    403: f"Neither the post's author nor an administrator, or {_RESTRICTED} ({_BANNED}).",
    404: "No such post.",
}
READABLE_COMMENT = {
    403: f"The comment's board is restricted to its members ({_BANNED}).",
    404: "No such comment.",
}
WRITABLE_COMMENT = {
    403: f"Neither the comment's author nor an administrator, or {_RESTRICTED} ({_BANNED}).",
    404: "No such comment.",
}
READABLE_ATTACHMENT = {
    403: f"The file's board is restricted to its members ({_BANNED}).",
    404: "No such file.",
}
DELETABLE_ATTACHMENT = {
    403: f"Neither the uploader nor an administrator, or {_RESTRICTED} ({_BANNED}).",
    404: "No such file.",
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
