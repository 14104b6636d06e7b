"""Domain errors. Services raise these; main.py maps them once to
`{"detail": ..., "code": ...}` with the status each one carries. And the list of problems a
request that failed validation answers (422, `validation_issues`)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str] | None:
        return None


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    code = "not_authenticated"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"

    def __init__(self, resource: str, *, code: str | None = None) -> None:
        super().__init__(f"{resource} not found", code=code)


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(DomainError):
    status = 422
    code = "invalid_input"


class TooManyRequests(DomainError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(DomainError):
    """503: a service the request needs (the object storage) failed; the request may be retried."""

    status = 503
    code = "service_unavailable"


def banned() -> Forbidden:
    return Forbidden("this account is banned", code="banned")


def validation_issues(issues: Iterable[Mapping[str, Any]], body: object) -> list[dict[str, Any]]:
    """Pydantic's problems with a request, as a 422 lists them: without the input, never echoed
    (it may be a password, a quarter megabyte, or a NaN that JSON cannot encode), and with a
    `loc` that is a path in the request (`request_path`). Two problems that read the same once
    located (a union's choices refusing one value for the same reason) are listed once."""
    listed: list[dict[str, Any]] = []
    for issue in issues:
        shown = {key: value for key, value in issue.items() if key not in ("input", "url")}
        shown["loc"] = request_path(issue["loc"], body, missing=issue.get("type") == "missing")
        if shown not in listed:
            listed.append(shown)
    return listed


_ABSENT = object()


def _part_of(value: object, part: str | int) -> object:
    """value[part] when the request has it there, else _ABSENT."""
    if isinstance(value, Mapping) and part in value:
        return value[part]
    if isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(value):
        return value[part]
    return _ABSENT


def request_path(loc: Sequence[str | int], body: object, *, missing: bool = False) -> list[str | int]:
    """`loc` without the names Pydantic gives a union's choices as it tries each
    (`function-after[_storable_text(), constrained-str]`, `dict[str,float]`, a model's name):
    they are no place in the request. Found by walking the body along `loc`: a part that is
    neither a key nor an index of the value reached is such a name, unless it is the field a
    `missing` problem names. Outside the body (query, path, header) `loc` is kept as it is."""
    if not loc or loc[0] != "body":
        return list(loc)
    path: list[str | int] = [loc[0]]
    value, walking = body, True
    for position, part in enumerate(loc[1:], start=2):
        if not walking:
            path.append(part)
        elif (child := _part_of(value, part)) is not _ABSENT:
            path.append(part)
            value = child
        elif isinstance(part, str) and not (missing and position == len(loc)):
            continue  # a union choice's name: the same value goes on to the next part
        else:
            path.append(part)  # a missing field, a position in unreadable JSON: nothing below it
            walking = False
    return path
