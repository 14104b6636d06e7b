"""/openapi.json is the contract a frontend generates its TypeScript client from: valid OpenAPI
3.1; every operation tagged, summarized and uniquely named; every request body with an example
that the API accepts; and every error an operation answers declared with the body it really has."""

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from openapi_spec_validator import validate
from pydantic import BaseModel

import models
import schemas
from config import settings
from errors import request_path
from main import app
from tests import raised_codes
from tests.conftest import MakeUser, Person

API = settings.API_PREFIX
SPEC = app.openapi()
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if method in METHODS
]
OPERATION_NAMES = [f"{method} {path}" for method, path, _ in OPERATIONS]
ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "415", "416", "422", "429", "503"}
MakeBoard = Callable[..., models.Board]


def operations() -> pytest.MarkDecorator:
    return pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=OPERATION_NAMES)


def operation_of(method: str, path: str) -> dict[str, Any]:
    return SPEC["paths"][path][method.lower()]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A component schema for a `$ref` to one, else the schema itself."""
    ref = schema.get("$ref", "")
    return SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator (what OpenAPI 3.1 uses) whose `#/components/...`
    references resolve in this spec."""
    return jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]})


def media_type(response: Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


def assert_declared(response: Response, method: str, path: str) -> None:
    """The answer's status is declared on the operation, and its body and headers are what
    that declaration says."""
    declared = operation_of(method, path)["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method} {path} answered {status}, declares {sorted(declared)}"
    for header in declared[status].get("headers", {}):
        assert header in response.headers, f"{status} lacks its declared {header} header"
    content = declared[status].get("content")
    if content is None:
        assert response.content == b""
        return
    assert media_type(response) in content
    schema = content[media_type(response)].get("schema", {})
    if media_type(response) == "application/json":
        validator(schema).validate(response.json())


# --- the document ------------------------------------------------------------------------------


def test_the_schema_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    validate(SPEC)


@operations()
def test_every_operation_has_a_summary_and_exactly_one_described_tag(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    described = {tag["name"]: tag.get("description") for tag in SPEC["tags"]}
    assert operation.get("summary")
    assert len(operation.get("tags", [])) == 1
    assert described.get(operation["tags"][0])


def test_operation_ids_are_unique_function_names() -> None:
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids


def test_fastapis_own_validation_error_schema_is_not_used() -> None:
    assert "HTTPValidationError" not in SPEC["components"]["schemas"]
    assert "ValidationError" not in SPEC["components"]["schemas"]


@operations()
def test_an_operation_behind_the_token_declares_401_and_403(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    """FastAPI marks `security` on every operation whose dependencies read the bearer token
    (deps.get_current_user); those answer 401 without a valid one and 403 to a banned user."""
    if "security" in operation:
        assert {"401", "403"} <= operation["responses"].keys()
    elif "401" in operation["responses"]:  # without a token only a credential can be wrong
        assert path in {f"{API}/auth/login", f"{API}/auth/refresh"}


@operations()
def test_every_parameter_or_body_can_answer_the_apps_422(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    if not (operation.get("parameters") or operation.get("requestBody")):
        assert "422" not in operation["responses"]
        return
    schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
    references = [schema.get("$ref")] + [option.get("$ref") for option in schema.get("anyOf", [])]
    assert "#/components/schemas/ValidationErrorBody" in references


VALIDATION_ERROR_BODY = {"$ref": "#/components/schemas/ValidationErrorBody"}


def is_error_body(schema: dict[str, Any]) -> bool:
    """The {detail, code} object (routers/responses.ErrorBody), its `code` narrowed to an enum."""
    code = schema.get("properties", {}).get("code", {})
    return (
        schema.get("type") == "object"
        and schema["properties"].keys() == {"detail", "code"}
        and set(schema.get("required", [])) == {"detail", "code"}
        and schema.get("additionalProperties") is False
        and schema["properties"]["detail"].get("type") == "string"
        and code.get("type") == "string"
        and bool(code.get("enum"))
    )


@operations()
def test_error_answers_use_the_apps_error_bodies(method: str, path: str, operation: dict[str, Any]) -> None:
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")) and path != "/ready":
            assert status in ERROR_STATUSES
            schema = response["content"]["application/json"]["schema"]
            if status != "422":
                assert is_error_body(schema), schema
            elif "anyOf" in schema:
                first, second = schema["anyOf"]
                assert first == VALIDATION_ERROR_BODY and is_error_body(second), schema
            else:
                assert schema == VALIDATION_ERROR_BODY


@operations()
def test_retry_after_and_www_authenticate_are_declared(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    if "429" in responses:
        assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    if "401" in responses:
        assert "WWW-Authenticate" in responses["401"]["headers"]


@operations()
def test_no_content_answers_declare_no_body(method: str, path: str, operation: dict[str, Any]) -> None:
    if "204" in operation["responses"]:
        assert "content" not in operation["responses"]["204"]


@operations()
def test_every_request_body_declares_its_errors_and_has_valid_examples(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    if "requestBody" not in operation:
        return
    assert {"400", "413", "422"} <= operation["responses"].keys()
    for media, content in operation["requestBody"]["content"].items():
        schema = resolve(content["schema"])
        examples = [
            *schema.get("examples", []),
            *([content["example"]] if "example" in content else []),
            *(example["value"] for example in content.get("examples", {}).values()),
        ]
        assert examples, f"{method} {path} ({media}) has no example"
        for example in examples:
            validator(content["schema"]).validate(example)
            model = getattr(schemas, schema.get("title", ""), None)
            if media == "application/json" and isinstance(model, type) and issubclass(model, BaseModel):
                model.model_validate(example)  # the API's own rules, not only the JSON Schema's


# --- the codes each operation answers ---------------------------------------------------------------
# A frontend switches on `code`: each error answer lists, as an enum, every code its operation can
# answer with that status. What the operation's code can raise is read from the source
# (tests/raised_codes.py: the endpoint, its dependencies and everything they reach); the rest is
# the framework's, for a request it could not take (FRAMEWORK_DETAILS).

ROUTES = {
    (next(iter(route.methods)), route.path): route
    for route in raised_codes.api_routes(app.routes)
    if route.include_in_schema
}
ROUTE_NAMES = [f"{method} {path}" for method, path in ROUTES]
# The framework's codes, by the detail it writes: an unreadable body (400), a body over the
# route's limit (413, main.TooLargeAsJSON); 422's invalid_input lists the problems instead.
FRAMEWORK_DETAILS = {
    "bad_request": "There was an error parsing the body",
    "payload_too_large": "request body too large",
}
# Where codes are made for no documented operation: the command line (cli.py promote), and
# GET /metrics (an operator's page, kept out of /openapi.json).
NOT_THROUGH_THE_API = {"promote_to_superuser", "admitted_metrics", "Metrics.admit"}


def routes() -> pytest.MarkDecorator:
    return pytest.mark.parametrize(("method", "path"), list(ROUTES), ids=ROUTE_NAMES)


def declared_codes(operation: dict[str, Any], status: str) -> set[str]:
    """The codes the operation's answer with this status may carry, from its schema."""
    response = operation["responses"].get(status)
    if response is None:
        return set()
    schema = response["content"]["application/json"]["schema"]
    codes: set[str] = set()
    for option in schema.get("anyOf", [schema]):
        code = resolve(option).get("properties", {}).get("code", {})
        codes.update(code.get("enum", []), [code["const"]] if "const" in code else [])
    return codes


def error_statuses(operation: dict[str, Any]) -> list[str]:
    # GET /ready's 503 is its readiness report (what failed), not an error body.
    readiness = operation_of("GET", "/ready")
    return [
        status for status in operation["responses"] if status in ERROR_STATUSES and operation is not readiness
    ]


@cache
def raised_by_the_source() -> dict[str, set[raised_codes.Raised]]:
    """Every code the app's modules make, with where and how."""
    found: dict[str, set[raised_codes.Raised]] = {}
    for function in raised_codes.project_functions():
        for raised in raised_codes.raised_in(function):
            found.setdefault(raised.code, set()).add(raised)
    return found


@operations()
def test_every_error_answer_lists_its_codes(method: str, path: str, operation: dict[str, Any]) -> None:
    for status in error_statuses(operation):
        assert declared_codes(operation, status), f"{status} lists no code"


@routes()
def test_every_code_the_route_can_raise_is_listed(method: str, path: str) -> None:
    operation = operation_of(method, path)
    missing = {
        f"{raised.status} {raised.code} ({raised.where})"
        for raised in raised_codes.route_raises(ROUTES[method, path])
        if raised.code not in declared_codes(operation, str(raised.status))
    }
    assert not missing, f"{method} {path} can answer codes its document does not list"


@routes()
def test_the_framework_codes_are_listed_where_they_can_happen(method: str, path: str) -> None:
    operation, route = operation_of(method, path), ROUTES[method, path]
    if route.body_field is not None:  # a body FastAPI parses
        assert "bad_request" in declared_codes(operation, "400")
    if "requestBody" in operation:
        assert "payload_too_large" in declared_codes(operation, "413")
    if operation.get("parameters") or "requestBody" in operation:
        assert "invalid_input" in declared_codes(operation, "422")


@routes()
def test_no_route_lists_a_code_it_cannot_answer(method: str, path: str) -> None:
    operation, route = operation_of(method, path), ROUTES[method, path]
    possible = {(raised.status, raised.code) for raised in raised_codes.route_raises(route)}
    possible |= {(400, "bad_request"), (413, "payload_too_large"), (422, "invalid_input")}
    listed = {
        (int(status), code)
        for status in error_statuses(operation)
        for code in declared_codes(operation, status)
    }
    assert listed - possible == set()


def test_a_code_always_comes_with_one_status() -> None:
    statuses = {code: {raised.status for raised in found} for code, found in raised_by_the_source().items()}
    assert {code: status for code, status in statuses.items() if len(status) != 1} == {}
    assert None not in set().union(*statuses.values())


def test_the_source_reading_reaches_every_code_made() -> None:
    """A check of tests/raised_codes.py itself: every function that makes a code is reached from
    some route (or is the command line's), so a way of reaching one it misses shows here."""
    reached = set().union(*(raised_codes.reached(raised_codes.dependency_calls(r)) for r in ROUTES.values()))
    makers = {function for function in raised_codes.project_functions() if raised_codes.raised_in(function)}
    assert {function.__qualname__ for function in makers - reached} == NOT_THROUGH_THE_API


@operations()
def test_every_listed_code_has_an_example_that_fits(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    """One example per code, named by it, that the answer's schema accepts; its detail is one the
    source (or the framework) writes for that code."""
    for status in error_statuses(operation):
        content = operation["responses"][status]["content"]["application/json"]
        examples = content.get("examples", {})
        assert examples.keys() == declared_codes(operation, status), status
        for code, example in examples.items():
            body = example["value"]
            validator(content["schema"]).validate(body)
            assert body["code"] == code
            if isinstance(body["detail"], str):
                written = [raised.detail for raised in raised_by_the_source().get(code, ()) if raised.detail]
                assert body["detail"] == FRAMEWORK_DETAILS.get(code) or any(
                    pattern.fullmatch(body["detail"]) for pattern in written
                ), f"{status} {code}: {body['detail']!r} is not a detail the app writes"


def test_a_401_lists_and_shows_not_authenticated() -> None:
    unauthorized = operation_of("GET", f"{API}/users/me")["responses"]["401"]["content"]["application/json"]
    assert unauthorized["examples"]["not_authenticated"]["value"] == {
        "detail": "not authenticated",
        "code": "not_authenticated",
    }
    assert declared_codes(operation_of("GET", f"{API}/users/me"), "401") == {
        "not_authenticated",
        "invalid_token",
        "token_expired",
        "token_revoked",
    }


def test_a_board_routes_403_lists_banned_and_no_board_access_and_its_404_a_missing_board() -> None:
    operation = operation_of("GET", f"{API}/boards/{{board_id}}/posts")
    assert declared_codes(operation, "403") == {"banned", "no_board_access"}
    not_found = operation["responses"]["404"]["content"]["application/json"]["examples"]
    assert not_found == {"not_found": {"value": {"detail": "board not found", "code": "not_found"}}}


def test_the_login_401_lists_only_wrong_credentials() -> None:
    assert declared_codes(operation_of("POST", f"{API}/auth/login"), "401") == {"invalid_credentials"}


# --- real answers against their declarations ----------------------------------------------------


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


ANONYMOUS = [(method, path) for method, path, operation in OPERATIONS if "security" in operation]


def test_the_anonymous_calls_below_cover_the_api() -> None:
    assert len(ANONYMOUS) > 40


@pytest.mark.parametrize(("method", "path"), ANONYMOUS, ids=[f"{m} {p}" for m, p in ANONYMOUS])
def test_an_anonymous_call_answers_the_declared_401(client: TestClient, method: str, path: str) -> None:
    body = None if method in ("GET", "DELETE") else {}
    response = client.request(method, concrete(path), json=body)
    assert response.status_code == 401
    assert_declared(response, method, path)


def test_a_banned_user_gets_the_declared_403(client: TestClient, make_user: MakeUser) -> None:
    banned = make_user("banned", is_banned=True)
    response = client.get(f"{API}/users/me", headers=banned.headers)
    assert response.status_code == 403
    assert_declared(response, "GET", f"{API}/users/me")


def test_a_missing_post_gets_the_declared_404(client: TestClient, user: Person) -> None:
    response = client.get(f"{API}/posts/424242", headers=user.headers)
    assert response.status_code == 404
    assert_declared(response, "GET", f"{API}/posts/{{post_id}}")


def test_a_restricted_board_gets_the_declared_403(
    client: TestClient, user: Person, make_board: MakeBoard
) -> None:
    board = make_board("staff", is_public=False)
    response = client.get(f"{API}/boards/{board.id}/posts", headers=user.headers)
    assert response.status_code == 403
    assert_declared(response, "GET", f"{API}/boards/{{board_id}}/posts")


def test_bad_input_gets_the_declared_422_without_echoing_it(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": "x", "email": "not an email", "password": "short"}
    )
    assert response.status_code == 422
    assert_declared(response, "POST", f"{API}/auth/signup")
    assert len(response.json()["detail"]) == 3


def test_a_bad_path_parameter_gets_the_declared_422(client: TestClient, user: Person) -> None:
    response = client.get(f"{API}/posts/0", headers=user.headers)
    assert response.status_code == 422
    assert_declared(response, "GET", f"{API}/posts/{{post_id}}")


def test_a_body_that_is_not_utf8_gets_the_declared_400(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/refresh",
        content=b'{"refresh_token": "\xff"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert_declared(response, "POST", f"{API}/auth/refresh")


def test_a_taken_name_gets_the_declared_409(client: TestClient, user: Person) -> None:
    response = client.post(
        f"{API}/auth/signup", json={"name": user.name, "email": "else@example.com", "password": "long enough"}
    )
    assert response.status_code == 409
    assert_declared(response, "POST", f"{API}/auth/signup")


def test_a_body_over_the_json_limit_gets_the_declared_413(
    client: TestClient, user: Person, make_board: MakeBoard
) -> None:
    board = make_board("free")
    content = "가" * (settings.MAX_JSON_BODY_KB * 1024)
    response = client.post(
        f"{API}/boards/{board.id}/posts", headers=user.headers, json={"name": "big", "content": content}
    )
    assert response.status_code == 413
    assert_declared(response, "POST", f"{API}/boards/{{board_id}}/posts")


def test_too_many_logins_get_the_declared_429_with_retry_after(client: TestClient, user: Person) -> None:
    form = {"username": user.name, "password": "wrong password"}
    answers = [
        client.post(f"{API}/auth/login", data=form) for _ in range(settings.LOGIN_LIMIT_PER_ACCOUNT + 1)
    ]
    assert [answer.status_code for answer in answers] == [401] * settings.LOGIN_LIMIT_PER_ACCOUNT + [429]
    for answer in answers[-2:]:
        assert_declared(answer, "POST", f"{API}/auth/login")


def test_too_many_signups_get_the_declared_429_with_retry_after(client: TestClient) -> None:
    answers = [
        client.post(
            f"{API}/auth/signup",
            json={"name": f"newcomer{n}", "email": f"newcomer{n}@example.com", "password": "long enough"},
        )
        for n in range(settings.SIGNUP_LIMIT_PER_IP + 1)
    ]
    assert [answer.status_code for answer in answers] == [201] * settings.SIGNUP_LIMIT_PER_IP + [429]
    for answer in answers[-2:]:
        assert_declared(answer, "POST", f"{API}/auth/signup")


def test_an_email_change_without_the_password_gets_the_declared_422(client: TestClient, user: Person) -> None:
    response = client.patch(f"{API}/users/me", json={"email": "else@example.com"}, headers=user.headers)
    assert (response.status_code, response.json()["code"]) == (422, "password_required")
    assert_declared(response, "PATCH", f"{API}/users/me")
    wrong = client.patch(
        f"{API}/users/me", json={"email": "else@example.com", "password": "not mine"}, headers=user.headers
    )
    assert wrong.status_code == 400
    assert_declared(wrong, "PATCH", f"{API}/users/me")


def test_an_upload_that_is_not_multipart_gets_the_declared_415(
    client: TestClient, user: Person, make_board: MakeBoard, make_post: Callable[..., models.Post]
) -> None:
    post = make_post(make_board("free"), user)
    response = client.post(f"{API}/posts/{post.id}/attachments", headers=user.headers, json={"files": []})
    assert response.status_code == 415
    assert_declared(response, "POST", f"{API}/posts/{{post_id}}/attachments")


def test_an_upload_refused_by_the_service_gets_the_declared_422(
    client: TestClient, user: Person, make_board: MakeBoard, make_post: Callable[..., models.Post]
) -> None:
    post = make_post(make_board("free"), user)
    response = client.post(
        f"{API}/posts/{post.id}/attachments",
        headers=user.headers,
        files=[("note", ("note.txt", b"hello", "text/plain"))],
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert_declared(response, "POST", f"{API}/posts/{{post_id}}/attachments")


def test_an_upload_and_its_download_match_their_declarations(
    client: TestClient, user: Person, make_board: MakeBoard, make_post: Callable[..., models.Post]
) -> None:
    post = make_post(make_board("free"), user)
    uploaded = client.post(
        f"{API}/posts/{post.id}/attachments",
        headers=user.headers,
        files=[("files", ("회의록.txt", "마당 회의록\n".encode(), "text/plain"))],
    )
    assert uploaded.status_code == 201
    assert_declared(uploaded, "POST", f"{API}/posts/{{post_id}}/attachments")
    downloaded = client.get(uploaded.json()[0]["url"], headers=user.headers)
    assert downloaded.status_code == 200
    assert_declared(downloaded, "GET", f"{API}/attachments/{{attachment_id}}")
    deleted = client.delete(uploaded.json()[0]["url"], headers=user.headers)
    assert deleted.status_code == 204
    assert_declared(deleted, "DELETE", f"{API}/attachments/{{attachment_id}}")


def test_the_request_examples_work_against_the_api(client: TestClient) -> None:
    """The signup and login examples, sent as they are, sign a user up and in."""
    signup = resolve(
        operation_of("POST", f"{API}/auth/signup")["requestBody"]["content"]["application/json"]["schema"]
    )
    login = operation_of("POST", f"{API}/auth/login")["requestBody"]["content"]
    signed_up = client.post(f"{API}/auth/signup", json=signup["examples"][0])
    assert signed_up.status_code == 201
    logged_in = client.post(f"{API}/auth/login", data=login["application/x-www-form-urlencoded"]["example"])
    assert logged_in.status_code == 200
    assert_declared(logged_in, "POST", f"{API}/auth/login")


def test_the_chat_page_is_declared_as_html(client: TestClient) -> None:
    response = client.get("/chat")
    assert response.status_code == 200
    assert_declared(response, "GET", "/chat")


# --- 422s name where the problem is -------------------------------------------------------------
# A union field (a job's input: text, a row or rows of numbers) is tried against each choice;
# Pydantic names the choice in `loc` (`function-after[_storable_text(), constrained-str]`),
# which is no place in the request.


def submit_input(client: TestClient, person: Person, value: object) -> Response:
    return client.post(f"{API}/ai/models/board-suggest/jobs", json={"input": value}, headers=person.headers)


def test_a_wrong_type_in_a_union_field_is_located_at_the_field(client: TestClient, user: Person) -> None:
    response = submit_input(client, user, 5)
    assert response.status_code == 422
    assert_declared(response, "POST", f"{API}/ai/models/{{name}}/jobs")
    assert {tuple(issue["loc"]) for issue in response.json()["detail"]} == {("body", "input")}


def test_a_bad_value_inside_a_union_field_is_located_at_the_value(client: TestClient, user: Person) -> None:
    in_a_row = submit_input(client, user, {"x0": "one"})
    assert ("body", "input", "x0") in {tuple(issue["loc"]) for issue in in_a_row.json()["detail"]}
    in_rows = submit_input(client, user, [{"x0": 1.0}, {"x0": "two"}])
    assert ("body", "input", 1, "x0") in {tuple(issue["loc"]) for issue in in_rows.json()["detail"]}
    for response in (in_a_row, in_rows):
        assert response.status_code == 422
        locations = [issue["loc"] for issue in response.json()["detail"]]
        assert all(isinstance(part, int) or "[" not in part for loc in locations for part in loc), locations


def test_a_missing_field_keeps_its_name_in_loc(client: TestClient, user: Person) -> None:
    response = client.post(f"{API}/ai/models/board-suggest/jobs", json={}, headers=user.headers)
    assert response.status_code == 422
    assert [issue["loc"] for issue in response.json()["detail"]] == [["body", "input"]]


@pytest.mark.parametrize(
    ("loc", "body", "missing", "path"),
    [
        (
            ["body", "input", "function-after[_storable_text(), constrained-str]"],
            {"input": 5},
            False,
            ["body", "input"],
        ),
        (
            ["body", "input", "list[dict[str,float]]", 1, "x0"],
            {"input": [{}, {"x0": "a"}]},
            False,
            ["body", "input", 1, "x0"],
        ),
        (["body", "input", "Row", "x0"], {"input": {}}, True, ["body", "input", "x0"]),
        (["body", "name"], {}, True, ["body", "name"]),
        (["body", 17], b'{"name": "minji",', False, ["body", 17]),
        (["body"], [1], False, ["body"]),
        (["query", "limit"], None, False, ["query", "limit"]),
    ],
    ids=[
        "union-choice",
        "union-list-item",
        "missing-in-a-choice",
        "missing",
        "unreadable-json",
        "not-an-object",
        "query",
    ],
)
def test_a_422_loc_is_a_path_in_the_request(
    loc: list[str | int], body: object, missing: bool, path: list[str | int]
) -> None:
    assert request_path(loc, body, missing=missing) == path
