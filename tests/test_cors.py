"""A browser frontend on another origin (CORS_ORIGINS): allowed origins get their preflight answered
and every answer marked readable, errors included; other origins get no CORS header at all; by
default there is no CORS at all."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from config import Settings, settings
from tests.chat_support import API
from tests.conftest import Person, app_with

FRONTEND = "http://localhost:5173"
OTHER = "http://evil.example"


@pytest.fixture
def cors_client() -> Iterator[TestClient]:
    with TestClient(app_with([], {"CORS_ORIGINS": f"{FRONTEND},https://app.example.com"})) as client:
        yield client


def preflight(client: TestClient, origin: str, method: str = "GET", headers: str = "authorization") -> object:
    return client.options(
        f"{API}/users/me",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_an_allowed_origins_preflight_gets_204_with_the_methods_and_headers(cors_client):
    response = preflight(cors_client, FRONTEND, "PATCH", "authorization, content-type")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "access-control-allow-credentials" not in response.headers  # tokens, never cookies


def test_answers_to_an_allowed_origin_are_readable_by_its_page(cors_client, user: Person):
    response = cors_client.get(f"{API}/users/me", headers={**user.headers, "Origin": FRONTEND})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONTEND
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("location", "retry-after", "x-request-id"):
        assert header in exposed


def test_errors_to_an_allowed_origin_are_readable_too(cors_client):
    response = cors_client.get(f"{API}/users/me", headers={"Origin": FRONTEND})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.json()["code"]


def test_another_origin_gets_no_cors_headers(cors_client, user: Person):
    refused = preflight(cors_client, OTHER)
    assert refused.status_code == 400
    assert refused.json() == {"detail": "disallowed cors origin", "code": "cors_refused"}
    assert "access-control-allow-origin" not in refused.headers
    response = cors_client.get(f"{API}/users/me", headers={**user.headers, "Origin": OTHER})
    assert response.status_code == 200  # the server answers; the browser keeps it from the page
    assert "access-control-allow-origin" not in response.headers


def test_a_preflight_asking_for_a_header_not_allowed_is_refused(cors_client):
    refused = preflight(cors_client, FRONTEND, "GET", "authorization, x-secret")
    assert refused.status_code == 400
    assert refused.json() == {"detail": "disallowed cors headers", "code": "cors_refused"}
    assert "access-control-allow-origin" not in refused.headers


def test_without_cors_origins_there_is_no_cors(client, user: Person):
    assert settings.CORS_ORIGINS == ""
    assert preflight(client, FRONTEND).status_code == 405
    response = client.get(f"{API}/users/me", headers={**user.headers, "Origin": FRONTEND})
    assert "access-control-allow-origin" not in response.headers


def test_any_origin_is_refused_in_production():
    with pytest.raises(ValidationError, match="not \\*"):
        Settings(ENV="production", SECRET_KEY="k" * 40, SMTP_HOST="mail.example.com", CORS_ORIGINS="*")


@pytest.mark.parametrize("origin", ["localhost:5173", "https://app.example.com/path", "ftp://files.example"])
def test_a_cors_origin_must_be_an_origin(origin):
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(CORS_ORIGINS=origin)
