"""Every operation of the API, fuzzed against the app's own OpenAPI schema (schemathesis).

Each operation is fuzzed twice, as a normal user and as an administrator, in a small world of
real rows (`world`): generated path parameters are sometimes swapped for the id of a row that
exists, so the fuzzer reaches the code behind the 404s. Whatever it sends, the answer must be
no 5xx, a documented status code, the documented content type, and a body that matches the
documented schema. The multipart upload routes are fuzzed like the others; the WebSocket is not
in the schema (tests/test_chat_socket.py covers it).

The app runs in-process, over ASGI, with its lifespan (schemathesis starts it with the first
request of a test and stops it after the test). Every test starts from the empty database of
tests/conftest.py and builds its world again, so no operation sees another's leftovers.

Cost and reproducibility: schemathesis' examples and coverage phases (boundary values of every
parameter, unexpected methods) plus EXAMPLES_PER_OPERATION random requests per operation and
role (FUZZ_EXAMPLES=<n> fuzzes deeper locally), about 5,000 requests in all, 35-45 s on an idle
2-core machine; derandomized, so every run sends the same requests. It runs in both passes of
`make test`: MariaDB refuses what SQLite lets through (over-long values, collations that make
two names equal, strict types), which is exactly where a missing check turns into a 500.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import models
from config import settings as app_settings
from database import SessionLocal
from main import create_app
from services.storage import get_storage
from tests.ai_models import EchoModel
from tests.conftest import MakeUser, Person

pytestmark = pytest.mark.db  # MariaDB refuses what SQLite lets through (see above)

EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

app = create_app(models=[EchoModel()])  # a model that answers at once, without torch

schema = schemathesis.openapi.from_dict(app.openapi())
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

# The ids of the running test's world, by path parameter name (set by `world`, read while
# requests are generated).
REAL_PATH_PARAMETERS: dict[str, list[object]] = {}


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, object] | None
) -> st.SearchStrategy[dict[str, object] | None]:
    """The generated path parameters as they are, or with each known one naming a real row."""
    known = [name for name in path_parameters or {} if name in REAL_PATH_PARAMETERS]
    if not known:
        return st.just(path_parameters)
    real = st.fixed_dictionaries({name: st.sampled_from(REAL_PATH_PARAMETERS[name]) for name in known})
    return st.one_of(st.just(path_parameters), real.map(lambda ids: {**(path_parameters or {}), **ids}))


@dataclass
class World:
    user: Person
    admin: Person


@pytest.fixture
def world(
    make_user: MakeUser,
    make_board: Callable[..., models.Board],
    make_post: Callable[..., models.Post],
    make_comment: Callable[..., models.Comment],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[World]:
    """A public board and a restricted one the user may use, a post on each, a comment, an
    attachment, a conversation with a message, and a finished AI job of a test model."""
    monkeypatch.setattr(app_settings, "RATE_LIMIT_ENABLED", False)  # the fuzzer is one fast client
    monkeypatch.setattr(app_settings, "UPLOAD_DIR", tmp_path / "uploads")
    monkeypatch.setattr(app_settings, "MODEL_DIR", tmp_path / "models")
    user = make_user("minji")
    admin = make_user("root_admin", is_superuser=True)
    public = make_board("free")
    restricted = make_board("staff", is_public=False, members=(user,))
    post = make_post(public, user)
    restricted_post = make_post(restricted, user, name="members only")
    comment = make_comment(post, user)
    content = b"hello"
    writer = get_storage().create()
    writer.write(content)
    writer.commit()
    with SessionLocal() as session:
        attachment = models.Attachment(
            post_id=post.id,
            uploader_id=user.id,
            original_name="hello.txt",
            storage_key=writer.key,
            content_type="text/plain; charset=utf-8",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        conversation = models.ChatSession(user_id=user.id, name="help")
        model = models.AI(name=EchoModel.name, information=EchoModel.information)
        session.add_all([attachment, conversation, model])
        session.flush()
        message = models.Chat(user_id=user.id, chat_session_id=conversation.id, content="hi")
        job = models.AIlog(
            user_id=user.id,
            ai_id=model.id,
            content="hello",
            status="succeeded",
            result=json.dumps({"echo": "HELLO"}),
            is_finished=True,
        )
        member = models.ChatSessionMember(chat_session_id=conversation.id, user_id=user.id)
        session.add_all([member, message, job])
        session.commit()
        REAL_PATH_PARAMETERS.update(
            board_id=[public.id, restricted.id],
            post_id=[post.id, restricted_post.id],
            comment_id=[comment.id],
            attachment_id=[attachment.id],
            session_id=[conversation.id],
            message_id=[message.id],
            user_id=[user.id, admin.id],
            model_id=[model.id],
            job_id=[job.id],
            name=[EchoModel.name],
        )
    yield World(user, admin)
    REAL_PATH_PARAMETERS.clear()


@pytest.mark.parametrize("role", ["user", "admin"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    # The world is built once per operation and role, not per example; generation speed
    # depends on the machine's load, which must not fail a test.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
def test_every_operation_answers_as_documented(case: schemathesis.Case, world: World, role: str) -> None:
    caller = world.admin if role == "admin" else world.user
    case.call_and_validate(app=app, headers=caller.headers, checks=CHECKS)
