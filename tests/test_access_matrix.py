"""Who may call what: every endpoint the app serves, called as each kind of caller, against the
rules of docs/api.md ("Who may do what").

The callers (ROLES):
- anonymous: no token. Every endpoint but auth, health and the chat page answers 401.
- reader: a signed-in user who may read what the path points at (on the restricted board's
  access list) but did not write it.
- outsider: a signed-in user who is not on the restricted board's access list.
- banned: a banned user (on the access list, so only the ban explains the refusal): 403
  "banned" for every endpoint that needs a token.
- author: wrote the post, comment and attachment, opened the conversation and owns the AI jobs
  the paths point at.
- admin: an administrator.

Each row of ROWS names an endpoint (method and path as the app declares them), the thing of the
world its path points at (a post on a public, restricted or hidden board, a hidden post, the
author's conversation, ...) and the status each caller gets; `(status, code)` also checks the
error code where two refusals share a status (403 banned / no_board_access / not_author /
admin_only). Each (row, caller) is a test of its own on a world as built, so a request that
changes something changes only its own copy: a case gets the world the case before it had when
that case left every row and file as it found them (a read, a refusal), else one built afresh.
test_every_route_has_a_row fails when the app serves an endpoint no row covers (or a row names
one it does not serve).
"""

import csv
import hashlib
import io
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import WebSocketRoute

from config import settings
from crud import ai as ai_crud
from crud import chat as chat_crud
from database import SessionLocal, engine, utcnow
from main import app, create_app
from ml import tabular
from models import (
    AI,
    AIlog,
    Attachment,
    Base,
    Board,
    Comment,
    PasswordResetToken,
    Post,
    User,
    board_access,
)
from routers.docs import ASSETS_URL as DOCS_ASSETS_URL
from services import auth, rate_limit, security
from services.ai import runtime as ai_runtime
from services.ai.registry import Registry
from services.storage import LocalStorage, get_storage, new_key
from tests.ai_models import EchoModel
from tests.chat_support import live_socket
from tests.conftest import IS_MARIADB, PASSWORD, Person, empty_tables

pytestmark = pytest.mark.db  # the access rule is SQL conditions: every answer comes from them

API = settings.API_PREFIX

ANONYMOUS, READER, OUTSIDER, BANNED, AUTHOR, ADMIN = ROLES = (
    "anonymous",
    "reader",
    "outsider",
    "banned",
    "author",
    "admin",
)

# What the WebSocket answers, in the table's terms: signed in (the `ready` event), or closed
# with the code docs/api.md gives (4401 no or bad token, 4403 banned).
SOCKET_READY = 101

Expected = int | tuple[int, str]


class HiddenEchoModel(EchoModel):
    """An echo model whose row the world hides (is_visible = false)."""

    name = "test-echo-hidden"


# --- the world --------------------------------------------------------------------------------


@dataclass
class World:
    """What the paths point at. `targets[name]` holds the path parameters of one target."""

    people: dict[str, Person]
    targets: dict[str, dict[str, Any]]
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    reset_tokens: dict[str, str] = field(default_factory=dict)

    def person(self, role: str) -> Person | None:
        return self.people.get(role)


@cache
def password_hash() -> str:
    """One Argon2 hash of PASSWORD for every user of every world (hashing is the slow part)."""
    return security.hash_password(PASSWORD)


def attachment(content: bytes, **owner: int) -> Attachment:
    """An attachment whose bytes are written straight to their place in storage (uploads, with
    their content checks and fsync, are tests/test_attachments.py's subject)."""
    key = new_key()
    path = LocalStorage(Path(settings.UPLOAD_DIR)).path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    return Attachment(
        **owner,
        original_name="note.txt",
        storage_key=key,
        content_type="text/plain",
        size=len(content),
        sha256=digest,
    )


def add_people(session: Session) -> dict[str, User]:
    users = {
        role: User(
            name=f"{role}_user",
            email=f"{role}@example.com",
            password_hash=password_hash(),
            is_superuser=role == ADMIN,
            is_banned=role == BANNED,
        )
        for role in ROLES
        if role != ANONYMOUS
    }
    session.add_all(users.values())
    session.flush()
    return users


def add_boards(session: Session, users: dict[str, User]) -> dict[str, dict[str, Any]]:
    """A public, a restricted and a hidden board, each with the author's post, comment and
    attachment; on the public board also a hidden post and a hidden comment with a file."""
    author = users[AUTHOR]
    boards = {
        "public": Board(name="public board", information="everyone", is_public=True),
        "restricted": Board(name="restricted board", information="members", is_public=False),
        "hidden board": Board(name="hidden board", information="gone", is_visible=False),
    }
    posts = {
        name: Post(
            board=board,
            user=author,
            name=f"a post on the {name}",
            content="text",
            number_of_comment=1,
            is_file_attached=True,
        )
        for name, board in boards.items()
    }
    comments = {name: Comment(post=post, user=author, content="a comment") for name, post in posts.items()}
    hidden_post = Post(board=boards["public"], user=author, name="deleted", content="text", is_visible=False)
    hidden_comment = Comment(
        post=posts["public"], user=author, content="deleted", is_visible=False, is_file_attached=True
    )
    session.add_all([*posts.values(), *comments.values(), hidden_post, hidden_comment])
    session.flush()
    for role in (READER, AUTHOR, BANNED):
        session.execute(
            board_access.insert().values(user_id=users[role].id, board_id=boards["restricted"].id)
        )
    files = {
        name: attachment(b"a file on a post\n", post_id=post.id, uploader_id=author.id)
        for name, post in posts.items()
    }
    comment_file = attachment(
        b"a file on a deleted comment\n", comment_id=hidden_comment.id, uploader_id=author.id
    )
    session.add_all([*files.values(), comment_file])
    session.flush()
    targets: dict[str, dict[str, Any]] = {
        name: {
            "board_id": board.id,
            "post_id": posts[name].id,
            "comment_id": comments[name].id,
            "attachment_id": files[name].id,
        }
        for name, board in boards.items()
    }
    targets["hidden post"] = {"post_id": hidden_post.id}
    targets["hidden comment"] = {"comment_id": hidden_comment.id, "attachment_id": comment_file.id}
    return targets


def add_conversations(session: Session, author: User) -> dict[str, dict[str, Any]]:
    conversation = chat_crud.add_conversation(session, user_id=author.id, name="help, please")
    hidden = chat_crud.add_conversation(session, user_id=author.id, name="deleted")
    hidden.is_visible = False
    message = chat_crud.add_message(
        session, user_id=author.id, conversation_id=conversation.id, content="hello", client_id=None
    )
    chat_crud.add_message(
        session, user_id=author.id, conversation_id=hidden.id, content="hello", client_id=None
    )
    return {
        "conversation": {"session_id": conversation.id, "message_id": message.id},
        "hidden conversation": {"session_id": hidden.id},
    }


def add_ai(session: Session, author: User) -> dict[str, dict[str, Any]]:
    """The test models' rows (one hidden), a trainable model without versions yet, and the
    author's jobs: finished, queued, and finished but deleted from their history."""
    echo = ai_crud.model_by_name(session, EchoModel.name)
    hidden_model = ai_crud.model_by_name(session, HiddenEchoModel.name)
    assert echo is not None and hidden_model is not None, "start-up adds a row for each registered model"
    hidden_model.is_visible = False
    trainable = AI(name="price", information="what a thing costs", kind=tabular.KIND, is_ready=False)
    now = utcnow()
    ended = {"status": "succeeded", "result": '{"echo": "HELLO"}', "is_finished": True}
    jobs = {
        "finished job": AIlog(**ended, started_date=now, finish_date=now),
        # Leased to a live process elsewhere: the running app's sweep for lost jobs (once per
        # lease period) would otherwise take this unleased job and run it between cases.
        "queued job": AIlog(lease_owner="elsewhere:1:live", lease_until=now + timedelta(days=1)),
        "hidden job": AIlog(**ended, started_date=now, finish_date=now, is_visible=False),
    }
    for job in jobs.values():
        job.user_id, job.ai_id, job.content = author.id, echo.id, "hello"
    session.add_all([trainable, *jobs.values()])
    session.flush()
    return {
        "model": {"name": EchoModel.name},
        "hidden model": {"name": HiddenEchoModel.name},
        "trainable model": {"model_id": trainable.id},
        **{name: {"job_id": job.id} for name, job in jobs.items()},
    }


def build_world(models: Registry) -> World:
    """Everything the rows point at, written in one transaction, and each caller's tokens."""
    ai_runtime.sync_models(models)  # the app's models' rows, as start-up adds them (the reset empties them)
    with SessionLocal() as session:
        users = add_people(session)
        author = users[AUTHOR]
        targets = {
            "app": {},
            "user": {"user_id": author.id},
            **add_boards(session, users),
            **add_conversations(session, author),
            **add_ai(session, author),
        }
        world = World(people={}, targets=targets)
        now = utcnow()
        for role, user in users.items():
            pair = auth.issue_token_pair(session, user, family_id=secrets.token_hex(16))
            world.refresh_tokens[role] = pair.refresh_token
            world.reset_tokens[role] = security.new_opaque_token()
            session.add(
                PasswordResetToken(
                    user_id=user.id,
                    token_hash=security.hash_opaque_token(world.reset_tokens[role]),
                    create_date=now,
                    expires_date=now + timedelta(minutes=settings.PASSWORD_RESET_MINUTES),
                )
            )
            bearer = {"Authorization": f"Bearer {pair.access_token}"}
            world.people[role] = Person(user.id, user.name, str(user.email), headers=bearer)
        session.commit()
    return world


@pytest.fixture(scope="module")
def running_app() -> Iterator[TestClient]:
    """One app for the module (conftest's `client` starts one per test: 0.06 s each, times
    several hundred cases). The per-test reset still empties every table between cases."""
    with TestClient(create_app(models=[EchoModel(), HiddenEchoModel()])) as client:
        yield client


@dataclass
class Kept:
    """The world the last case left as it was built, and what its rows and files were."""

    world: World | None = None
    state: str = ""


def state_of_the_world() -> str:
    """A digest of every row of every table and of every stored file's name and bytes. It is
    taken after each of the ~600 cases, so it reads both the cheapest way each allows."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        if IS_MARIADB:  # the server checksums each table's rows: one round trip, not one a table
            tables = ", ".join(f"`{table.name}`" for table in Base.metadata.sorted_tables)
            digest.update(repr(conn.exec_driver_sql(f"CHECKSUM TABLE {tables}").all()).encode())
        else:
            for table in Base.metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                for row in conn.execute(select(table).order_by(*order)):
                    digest.update(repr((table.name, tuple(row))).encode())
    uploads = Path(settings.UPLOAD_DIR)
    # os.walk, not Path.rglob: three times faster over the storage's 256 folders, mostly empty.
    for folder, _, names in sorted(os.walk(uploads)):
        for name in sorted(names):
            path = Path(folder, name)
            digest.update(str(path.relative_to(uploads)).encode() + path.read_bytes())
    return digest.hexdigest()


def discard(kept: Kept) -> None:
    """Empties the tables and removes the world's files."""
    with SessionLocal() as session:
        keys = session.scalars(select(Attachment.storage_key)).all()
    storage = get_storage()
    for key in keys:
        storage.delete(key)
    empty_tables()
    kept.world = None


@pytest.fixture(scope="module")
def kept(running_app: TestClient) -> Iterator[Kept]:
    kept = Kept()
    yield kept
    discard(kept)


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """In place of conftest's: fresh rate-limit counters for each case, but the tables are the
    `world` fixture's to empty (when a case changed them)."""
    rate_limit.get_rate_limiter().reset()
    yield
    rate_limit.get_rate_limiter().reset()


@pytest.fixture
def world(kept: Kept, running_app: TestClient) -> Iterator[World]:
    if kept.world is None:
        kept.world = build_world(running_app.app.state.runtime.ai.models)
        kept.state = state_of_the_world()
    yield kept.world
    if state_of_the_world() != kept.state:
        discard(kept)


# --- what a request sends -----------------------------------------------------------------------

Body = Callable[[World, str], dict[str, Any]]


def sends_json(value: Any) -> Body:
    return lambda world, role: {"json": value}


def training_csv() -> bytes:
    """y = 2a + 3b + 1 on a few rows: enough for a real (short) training run."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["a", "b", "y"])
    for i in range(tabular.MIN_ROWS * 3):
        a, b = i % 7, i % 5
        writer.writerow([a, b, 2 * a + 3 * b + 1])
    return text.getvalue().encode()


def training_form(**fields: str) -> Body:
    return lambda world, role: {
        "data": {"target": "y", "epochs": "1", **fields},
        "files": {"file": ("data.csv", training_csv(), "text/csv")},
    }


def searches(q: str) -> Body:
    return lambda world, role: {"params": {"q": q}}


def a_file(world: World, role: str) -> dict[str, Any]:
    return {"files": [("files", ("hello.txt", b"hello from the matrix\n", "text/plain"))]}


def own_login(world: World, role: str) -> dict[str, Any]:
    person = world.person(role)
    return {"data": {"username": person.name if person else "nobody", "password": PASSWORD}}


def own_refresh_token(world: World, role: str) -> dict[str, Any]:
    return {"json": {"refresh_token": world.refresh_tokens.get(role, "a-made-up-refresh-token")}}


def own_email(world: World, role: str) -> dict[str, Any]:
    person = world.person(role)
    return {"json": {"email": person.email if person else "nobody@example.com"}}


def own_reset_code(world: World, role: str) -> dict[str, Any]:
    token = world.reset_tokens.get(role, "a-made-up-reset-code")
    return {"json": {"token": token, "new_password": "a brand new secret"}}


def last_message(world: World, role: str) -> dict[str, Any]:
    return {"json": {"last_read_id": world.targets["conversation"]["message_id"]}}


def restricted_board_access(world: World, role: str) -> dict[str, Any]:
    return {"json": {"board_ids": [world.targets["restricted"]["board_id"]]}}


# --- what each caller gets --------------------------------------------------------------------

BANNED_ANSWER = (403, "banned")
NO_ACCESS = (403, "no_board_access")
NOT_AUTHOR = (403, "not_author")
NOT_UPLOADER = (403, "not_uploader")
ADMIN_ONLY = (403, "admin_only")


def anyone(status: Expected) -> dict[str, Expected]:
    """An endpoint that needs no token: every caller gets the same answer."""
    return dict.fromkeys(ROLES, status)


def signed_in(status: Expected, **others: Expected) -> dict[str, Expected]:
    """An endpoint that needs a token: 401 without one, 403 for a banned user, `status` for
    every other caller unless named in `others`."""
    expected: dict[str, Expected] = {ANONYMOUS: 401, BANNED: BANNED_ANSWER}
    for role in (READER, OUTSIDER, AUTHOR, ADMIN):
        expected[role] = others.pop(role, status)
    assert not others, f"not callers: {others}"
    return expected


def own_credentials(status: int) -> dict[str, Expected]:
    """Auth with the caller's own login or token: made-up ones (anonymous) are refused, and a
    banned account gets 403."""
    return {**anyone(status), ANONYMOUS: 401, BANNED: BANNED_ANSWER}


def admins_only(status: int) -> dict[str, Expected]:
    return signed_in(ADMIN_ONLY, admin=status)


def readers(status: int) -> dict[str, Expected]:
    """Whoever may read the target's board (on a public board: every signed-in user)."""
    return signed_in(status)


def admins_see_hidden(status: int) -> dict[str, Expected]:
    """A hidden board, post or comment: it exists for administrators only (its author too gets 404)."""
    return signed_in(404, admin=status)


def authors(status: int, *, refused: Expected = NOT_AUTHOR) -> dict[str, Expected]:
    """The author and administrators change it; readers are refused."""
    return signed_in(refused, author=status, admin=status)


def owner(status: Expected, *, admin: Expected | None = None) -> dict[str, Expected]:
    """A conversation or AI job: its owner and administrators; anyone else learns nothing (404)."""
    return signed_in(404, author=status, admin=status if admin is None else admin)


@dataclass(frozen=True)
class Row:
    method: str  # WEBSOCKET for the socket
    path: str  # as the app declares it
    target: str  # what the path points at: a key of World.targets
    expect: Mapping[str, Expected]
    body: Body | None = None
    note: str = ""  # tells apart two rows of one endpoint and target

    def __post_init__(self) -> None:
        assert set(self.expect) == set(ROLES), f"{self.method} {self.path}: one answer per caller"

    def url(self, world: World) -> str:
        return self.path.format(**world.targets[self.target])

    @property
    def label(self) -> str:
        note = f" {self.note}" if self.note else ""
        return f"{self.method} {self.path} [{self.target}{note}]"


def board_rows(
    method: str, path: str, *, public: Mapping[str, Expected], status: int, body: Body | None = None
) -> list[Row]:
    """One endpoint under a board, post, comment or attachment, pointed at the public, the
    restricted and the hidden board's: the restricted board adds 403 for the outsider, the
    hidden one is 404 for everyone but administrators."""
    restricted = {**public, OUTSIDER: NO_ACCESS}
    return [
        Row(method, path, "public", public, body),
        Row(method, path, "restricted", restricted, body),
        Row(method, path, "hidden board", admins_see_hidden(status), body),
    ]


POST = f"{API}/posts/{{post_id}}"
COMMENT = f"{API}/comments/{{comment_id}}"
ATTACHMENT = f"{API}/attachments/{{attachment_id}}"
CONVERSATION = f"{API}/chat/sessions/{{session_id}}"
MESSAGE = f"{API}/chat/messages/{{message_id}}"
JOB = f"{API}/ai/jobs/{{job_id}}"
MODEL = f"{API}/admin/ai/models/{{model_id}}"

ROWS: list[Row] = [
    # Auth: no token needed; each caller uses their own credentials (anonymous: made-up ones).
    Row(
        "POST",
        f"{API}/auth/signup",
        "app",
        anyone(201),
        sends_json({"name": "newcomer", "email": "newcomer@example.com", "password": "a long secret"}),
    ),
    Row("POST", f"{API}/auth/login", "app", own_credentials(200), own_login),
    Row("POST", f"{API}/auth/refresh", "app", own_credentials(200), own_refresh_token),
    Row("POST", f"{API}/auth/logout", "app", anyone(204), own_refresh_token),
    Row("POST", f"{API}/auth/password-reset", "app", anyone(202), own_email),
    # A banned user's code (issued before the ban) is refused like their login.
    Row(
        "POST",
        f"{API}/auth/password-reset/confirm",
        "app",
        {**anyone(204), ANONYMOUS: 400, BANNED: BANNED_ANSWER},
        own_reset_code,
    ),
    # My account.
    Row("GET", f"{API}/users/me", "app", signed_in(200)),
    Row("PATCH", f"{API}/users/me", "app", signed_in(200), sends_json({"name": "renamed"})),
    Row(
        "PUT",
        f"{API}/users/me/password",
        "app",
        signed_in(204),
        sends_json({"current_password": PASSWORD, "new_password": "a brand new secret"}),
    ),
    # The world's only administrator may not leave (someone must be able to administer).
    Row(
        "DELETE",
        f"{API}/users/me",
        "app",
        signed_in(204, admin=(409, "last_administrator")),
        sends_json({"password": PASSWORD}),
    ),
    Row("GET", f"{API}/users/me/boards", "app", signed_in(200)),
    # Boards, posts, comments, attachments.
    Row("GET", f"{API}/boards", "app", signed_in(200)),
    *board_rows("GET", f"{API}/boards/{{board_id}}", public=readers(200), status=200),
    *board_rows("GET", f"{API}/boards/{{board_id}}/posts", public=readers(200), status=200),
    # Search: every signed-in user; what they may not read is left out of the answer (200 all the same).
    Row("GET", f"{API}/search", "app", signed_in(200), searches("post")),
    *board_rows(
        "POST",
        f"{API}/boards/{{board_id}}/posts",
        public=readers(201),
        status=201,
        body=sends_json({"name": "a new post", "content": "text"}),
    ),
    *board_rows("GET", POST, public=readers(200), status=200),
    Row("GET", POST, "hidden post", admins_see_hidden(200)),
    *board_rows("PATCH", POST, public=authors(200), status=200, body=sends_json({"name": "edited"})),
    Row("PATCH", POST, "hidden post", admins_see_hidden(200), sends_json({"name": "edited"})),
    *board_rows("DELETE", POST, public=authors(204), status=204),
    Row("DELETE", POST, "hidden post", admins_see_hidden(204)),
    *board_rows("PUT", f"{POST}/like", public=readers(200), status=200),
    *board_rows("DELETE", f"{POST}/like", public=readers(200), status=200),
    *board_rows("GET", f"{POST}/comments", public=readers(200), status=200),
    Row("GET", f"{POST}/comments", "hidden post", admins_see_hidden(200)),
    *board_rows(
        "POST", f"{POST}/comments", public=readers(201), status=201, body=sends_json({"content": "me too"})
    ),
    Row("POST", f"{POST}/comments", "hidden post", admins_see_hidden(201), sends_json({"content": "me too"})),
    *board_rows("PATCH", COMMENT, public=authors(200), status=200, body=sends_json({"content": "edited"})),
    Row("PATCH", COMMENT, "hidden comment", admins_see_hidden(200), sends_json({"content": "edited"})),
    *board_rows("DELETE", COMMENT, public=authors(204), status=204),
    Row("DELETE", COMMENT, "hidden comment", admins_see_hidden(204)),
    *board_rows("POST", f"{POST}/attachments", public=authors(201), status=201, body=a_file),
    *board_rows("POST", f"{COMMENT}/attachments", public=authors(201), status=201, body=a_file),
    *board_rows("GET", ATTACHMENT, public=readers(200), status=200),
    Row("GET", ATTACHMENT, "hidden comment", admins_see_hidden(200)),
    *board_rows("DELETE", ATTACHMENT, public=authors(204, refused=NOT_UPLOADER), status=204),
    # Chat: a conversation is its opener's and the administrators'.
    Row("POST", f"{API}/chat/sessions", "app", signed_in(201), sends_json({"name": "a question"})),
    Row("GET", f"{API}/chat/sessions", "app", signed_in(200)),
    # The opener renames; administrators close and reopen.
    Row(
        "PATCH",
        CONVERSATION,
        "conversation",
        owner(200, admin=(403, "not_opener")),
        sends_json({"name": "renamed"}),
        "rename",
    ),
    Row(
        "PATCH",
        CONVERSATION,
        "conversation",
        owner(ADMIN_ONLY, admin=200),
        sends_json({"is_closed": True}),
        "close",
    ),
    Row("GET", f"{CONVERSATION}/messages", "conversation", owner(200)),
    Row("GET", f"{CONVERSATION}/messages", "hidden conversation", owner(404, admin=200)),
    Row("POST", f"{CONVERSATION}/messages", "conversation", owner(201), sends_json({"content": "hello"})),
    Row("POST", f"{CONVERSATION}/read", "conversation", owner(204), last_message),
    # Only the author edits a message; the author or an administrator deletes it.
    Row("PATCH", MESSAGE, "conversation", owner(200, admin=NOT_AUTHOR), sends_json({"content": "edited"})),
    Row("DELETE", MESSAGE, "conversation", owner(204)),
    Row("WEBSOCKET", f"{API}/ws", "app", {**anyone(SOCKET_READY), ANONYMOUS: 4401, BANNED: 4403}),
    # Administration.
    Row("GET", f"{API}/admin/users", "app", admins_only(200)),
    Row("GET", f"{API}/admin/users/{{user_id}}", "user", admins_only(200)),
    Row("PATCH", f"{API}/admin/users/{{user_id}}", "user", admins_only(200), sends_json({"is_banned": True})),
    Row("PUT", f"{API}/admin/users/{{user_id}}/boards", "user", admins_only(200), restricted_board_access),
    Row("POST", f"{API}/admin/boards", "app", admins_only(201), sends_json({"name": "a new board"})),
    Row(
        "PATCH",
        f"{API}/admin/boards/{{board_id}}",
        "public",
        admins_only(200),
        sends_json({"information": "new"}),
    ),
    # AI: models and jobs.
    Row("GET", f"{API}/ai/models", "app", signed_in(200)),
    Row("POST", f"{API}/ai/models/{{name}}/jobs", "model", signed_in(202), sends_json({"input": "hello"})),
    Row(
        "POST",
        f"{API}/ai/models/{{name}}/jobs",
        "hidden model",
        admins_see_hidden(202),
        sends_json({"input": "hello"}),
    ),
    Row("GET", f"{API}/ai/jobs", "app", signed_in(200)),
    Row("GET", JOB, "finished job", owner(200)),
    Row("GET", JOB, "hidden job", owner(404, admin=200)),  # the owner deleted it from their history
    Row("POST", f"{JOB}/cancel", "queued job", owner(200)),
    Row("DELETE", JOB, "finished job", owner(204)),
    Row("GET", f"{API}/admin/ai/jobs", "app", admins_only(200)),
    Row("PATCH", MODEL, "trainable model", admins_only(200), sends_json({"information": "new"})),
    Row("POST", f"{API}/admin/ai/models", "app", admins_only(202), training_form(name="another")),
    Row("POST", f"{MODEL}/train", "trainable model", admins_only(202), training_form()),
    Row("GET", f"{MODEL}/versions", "trainable model", admins_only(200)),
    # Outside the API prefix.
    Row("GET", "/health", "app", anyone(200)),
    Row("GET", "/ready", "app", anyone(200)),
    Row("GET", "/chat", "app", anyone(200)),
]

CASES = [pytest.param(row, role, id=f"{row.label} as {role}") for row in ROWS for role in ROLES]


# --- the app's own list of endpoints --------------------------------------------------------------


def flattened(routes: list[Any]) -> Iterator[Any]:
    """The app's routes with included routers opened up (FastAPI keeps an included router as one
    entry whose effective routes carry the prefixed paths)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            yield route
            continue
        for context in contexts():
            yield context.starlette_route if context.starlette_route is not None else context


def served_routes() -> set[tuple[str, str]]:
    """Every (method, path) the app serves, WEBSOCKET for sockets; the documentation pages and
    their files aside."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url, DOCS_ASSETS_URL}
    served = set()
    for route in flattened(app.routes):
        if route.path in docs:
            continue
        if isinstance(route, WebSocketRoute):
            served.add(("WEBSOCKET", route.path))
            continue
        methods = set(getattr(route, "methods", None) or {"ANY"}) - {"HEAD"}
        served.update((method, route.path) for method in methods)
    return served


def test_every_route_has_a_row() -> None:
    rows = {(row.method, row.path) for row in ROWS}
    served = served_routes()
    assert sorted(served - rows) == [], "endpoints without a row in the access matrix"
    assert sorted(rows - served) == [], "rows for endpoints the app does not serve"


# --- the matrix ---------------------------------------------------------------------------------


def socket_answer(client: TestClient, person: Person | None) -> int:
    """SOCKET_READY when the socket signs the caller in, else the code it closes with."""
    token = str(person.headers["Authorization"]).removeprefix("Bearer ") if person else ""
    with live_socket(client, token=token) as socket:
        if token and socket.closed_early is None:
            socket.assert_quiet()
            return SOCKET_READY
        return socket.expect_close().code


def wait_for_the_job(client: TestClient, response: Response, person: Person) -> None:
    """The job the request started runs, and ends before the next case empties the tables
    under it."""
    for _ in range(4):
        job = client.get(response.headers["Location"], params={"wait": 30}, headers=person.headers)
        assert job.status_code == 200, job.text
        if job.json()["is_finished"]:
            assert job.json()["status"] == "succeeded", job.text
            return
    raise AssertionError(f"job {job.json()['id']} did not end")


def answer_of(response: Response, expected: Expected) -> Expected:
    """The answer in the form of the expectation: the status, with the code when one is named."""
    if not isinstance(expected, tuple):
        return response.status_code
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code, response.json().get("code") if is_json else None


@pytest.mark.parametrize(("row", "role"), CASES)
def test_access(running_app: TestClient, world: World, row: Row, role: str) -> None:
    client = running_app
    person = world.person(role)
    expected = row.expect[role]
    if row.method == "WEBSOCKET":
        assert socket_answer(client, person) == expected
        return
    request = row.body(world, role) if row.body else {}
    headers = person.headers if person else {}
    response = client.request(row.method, row.url(world), headers=headers, **request)

    assert answer_of(response, expected) == expected, response.text
    if response.status_code >= 400:
        assert {"detail", "code"} <= set(response.json()), response.text
    if response.status_code == 401:
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    if response.status_code == 202 and "Location" in response.headers and person is not None:
        wait_for_the_job(client, response, person)
