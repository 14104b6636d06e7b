"""The soak test's load generator (run by bench/soak.py in its own process): a JSON spec on
stdin, a JSON result on stdout.

Simulated users (asyncio tasks, httpx2 for HTTP, `websockets` for the live socket) each go
through a mixed workload as fast as their answers come, every request to either API process at
random, until the time is up:
- board users: sign up or log in, refresh tokens, list boards and posts, read posts (a view),
  write and edit posts and comments, delete comments, like and unlike, upload files (PNG, PDF,
  text) to their posts and comments, download them back, delete them, and run AI jobs
  (similar-posts, board-suggest) waiting for the result;
- chatters: open a support conversation, keep a socket on one process, send messages over the
  socket and over REST; the administrator keeps a socket on each process and answers over REST,
  so every message crosses from one process to the other;
- a probe that shares no state with the others: failed logins of one account through both
  processes, then the lockout (the Redis rate limiter counts across processes).

A few requests fail on purpose (a duplicate sign-up, a reused refresh token, a file type outside
the allow-list, the lockout); their statuses are declared expected and counted apart. Every
acknowledged write is recorded (the id and what was written) for bench/soak.py to look for in
the database afterwards.
"""

import asyncio
import hashlib
import heapq
import json
import random
import struct
import sys
import time
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

API = "/api/v1"
REQUEST_TIMEOUT_SECONDS = 60.0
ACK_TIMEOUT_SECONDS = 10.0
DELIVERY_GRACE_SECONDS = 10.0  # after the load, for live events still on their way
AI_WAIT_SECONDS = 10  # one long-poll; a job not finished after AI_WAIT_POLLS is left to the drain
AI_WAIT_POLLS = 3
TOKEN_REFRESH_SECONDS = 300.0  # access tokens last ACCESS_TOKEN_MINUTES (15 by default)
PONG = json.dumps({"type": "pong"})  # the answer to the server's heartbeat
HOT_POSTS = 5
HOT_SHARE = 0.33
HISTORY_PAGE = 100  # messages a history request asks for (the API's most)
SLOWEST_KEPT = 5  # the slowest requests, with when they were sent (a stall shows as a cluster)
LOGINS_PER_MINUTE = 5  # stays under LOGIN_LIMIT_PER_ACCOUNT (10 a minute)
KOREAN = ["마당", "게시판", "질문", "답변", "사진", "모임", "주말", "후기", "추천", "공지", "여행", "요리"]
ENGLISH = ["yard", "board", "question", "answer", "photo", "meetup", "weekend", "review", "tip", "trip"]


@dataclass
class Spec:
    ports: list[int]
    duration: float  # seconds of load
    users: int
    chatters: int
    seed: int
    run_id: str
    password: str
    seeded_users: list[list[Any]]  # [id, name]: board users who log in instead of signing up
    admin_name: str
    admin_password: str
    board_ids: list[int]
    post_ids: list[int]
    models: list[str]
    lockout_limit: int  # LOGIN_LIMIT_PER_ACCOUNT
    warmup: float  # 0: a soak counts every request from the first


# --- what is measured ------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    expected_4xx: Counter[str] = field(default_factory=Counter)  # "endpoint status"
    unexpected: Counter[str] = field(
        default_factory=Counter
    )  # "endpoint status": 4xx, or a 2xx not asked for
    server_errors: Counter[str] = field(default_factory=Counter)  # "endpoint status", 5xx
    transport_errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)  # one answer body per unexpected kind
    integrity: list[str] = field(default_factory=list)  # answers that contradict what was written
    slowest: list[tuple[float, float, str, int]] = field(default_factory=list)  # (s, at s, endpoint, process)
    started: float = field(default_factory=time.perf_counter)

    def timed(self, endpoint: str, process: int, sent: float, seconds: float) -> None:
        self.latencies[endpoint].append(seconds)
        if endpoint.endswith("?wait"):
            return  # a long-poll is slow by design
        entry = (seconds, sent - self.started, endpoint, process)
        if len(self.slowest) < SLOWEST_KEPT:
            heapq.heappush(self.slowest, entry)
        else:
            heapq.heappushpop(self.slowest, entry)

    def record(self, endpoint: str, status: int, expect: tuple[int, ...], body: str) -> None:
        self.statuses[str(status)] += 1
        key = f"{endpoint} {status}"
        if status >= 500:
            self.server_errors[key] += 1
            self.samples.setdefault(key, body[:300])
        elif status in expect:
            if status >= 400:
                self.expected_4xx[key] += 1
        else:
            self.unexpected[key] += 1
            self.samples.setdefault(key, body[:300])


@dataclass
class Writes:
    """Every acknowledged write, as the database must hold it afterwards."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    likes: dict[str, bool] = field(default_factory=dict)  # "user_id:post_id" -> liked
    views: set[tuple[int, int]] = field(default_factory=set)  # (user_id, post_id) read
    attachments: dict[int, dict[str, Any]] = field(default_factory=dict)
    chat_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    chat_sessions: dict[int, dict[str, Any]] = field(default_factory=dict)
    ai_jobs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "posts": self.posts,
            "comments": self.comments,
            "likes": self.likes,
            "views": sorted(self.views),
            "attachments": self.attachments,
            "chat_messages": self.chat_messages,
            "chat_sessions": self.chat_sessions,
            "ai_jobs": self.ai_jobs,
        }


class Api:
    """One pooled client per API process; each call goes to a process at random unless told."""

    def __init__(self, ports: list[int], stats: Stats, rng: random.Random) -> None:
        limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
        self.ports = ports
        self.clients = [
            httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
            )
            for port in ports
        ]
        self.stats = stats
        self.rng = rng

    async def call(
        self,
        endpoint: str,
        path: str,
        *,
        token: str | None = None,
        expect: tuple[int, ...] = (200,),
        process: int | None = None,
        **kwargs: Any,
    ) -> httpx2.Response | None:
        """`endpoint` is the method and route template ("GET /posts/{id}"), the kind results are
        grouped by. None when no answer came (counted as a transport error)."""
        method = endpoint.split(" ", 1)[0]
        index = self.rng.randrange(len(self.clients)) if process is None else process
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        try:
            response = await self.clients[index].request(method, path, headers=headers, **kwargs)
        except httpx2.HTTPError as exc:
            self.stats.transport_errors[f"{endpoint} {type(exc).__name__}"] += 1
            return None
        self.stats.timed(endpoint, index, started, time.perf_counter() - started)
        body = response.text if response.status_code >= 300 else ""
        self.stats.record(endpoint, response.status_code, expect, body)
        return response

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


# --- files the allow-list accepts (and one it refuses) -----------------------------------------


def png(rng: random.Random) -> bytes:
    """A real PNG: a small image of random pixels."""
    width, height = rng.randint(1, 24), rng.randint(1, 24)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf(rng: random.Random) -> bytes:
    text = " ".join(rng.choices(ENGLISH, k=rng.randint(3, 30)))
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
        + f"% {text}\n".encode()
        + b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def text_file(rng: random.Random) -> bytes:
    return "\n".join(" ".join(rng.choices(KOREAN + ENGLISH, k=8)) for _ in range(rng.randint(1, 40))).encode()


FILE_KINDS: list[tuple[str, Callable[[random.Random], bytes], str]] = [
    ("photo.png", png, "image/png"),
    ("문서.pdf", pdf, "application/pdf"),
    ("notes.txt", text_file, "text/plain; charset=utf-8"),
]


def refused_file(rng: random.Random) -> bytes:
    """A Windows executable's first bytes: not an allowed type, whatever its name says."""
    return b"MZ\x90\x00\x03\x00\x00\x00" + rng.randbytes(200)


def words(rng: random.Random, low: int, high: int) -> str:
    pool = KOREAN if rng.random() < 0.6 else ENGLISH
    return " ".join(rng.choices(pool, k=rng.randint(low, high)))


def title(rng: random.Random) -> str:
    return words(rng, 2, 8)[:64].strip()  # PostTitle: at most 64 characters, stripped


# --- board users ------------------------------------------------------------------------------


class BoardUser:
    def __init__(self, load: "Load", index: int, seeded: list[Any] | None) -> None:
        self.load = load
        self.api = load.api
        self.rng = random.Random(load.spec.seed * 1000 + index)
        self.seeded = seeded
        self.name = seeded[1] if seeded else f"soak_{load.spec.run_id}_{index}"
        self.user_id = int(seeded[0]) if seeded else 0
        self.access = ""
        self.refresh = ""
        self.token_time = 0.0
        self.logins: list[float] = []
        self.posts: list[int] = []
        self.comments: list[int] = []  # visible ones
        self.attachments: list[int] = []
        self.deadline = 0.0

    async def run(self, deadline: float) -> None:
        self.deadline = deadline
        if not self.seeded and not await self.sign_up():
            return
        if not await self.log_in():
            return
        actions = list(ACTIONS)
        weights = [ACTIONS[name][1] for name in actions]
        while time.monotonic() < deadline:
            if time.monotonic() - self.token_time > TOKEN_REFRESH_SECONDS:
                await self.refresh_tokens()
            name = self.rng.choices(actions, weights)[0]
            await ACTIONS[name][0](self)
            if not self.access and not await self.log_in():
                return

    # auth

    async def sign_up(self) -> bool:
        email = f"{self.name}@soak.example.com"
        body = {"name": self.name, "email": email, "password": self.load.spec.password}
        response = await self.api.call("POST /auth/signup", f"{API}/auth/signup", json=body, expect=(201,))
        if response is None or response.status_code != 201:
            return False
        self.user_id = response.json()["id"]
        self.load.writes.users[self.user_id] = {"name": self.name, "email": email}
        return True

    async def log_in(self) -> bool:
        form = {"username": self.name, "password": self.load.spec.password}
        response = await self.api.call("POST /auth/login", f"{API}/auth/login", data=form)
        if response is None or response.status_code != 200:
            return False
        self.logins.append(time.monotonic())
        self._take(response.json())
        return True

    def _take(self, pair: dict[str, Any]) -> None:
        self.access, self.refresh, self.token_time = (
            pair["access_token"],
            pair["refresh_token"],
            time.monotonic(),
        )

    async def refresh_tokens(self) -> None:
        response = await self.api.call(
            "POST /auth/refresh", f"{API}/auth/refresh", json={"refresh_token": self.refresh}
        )
        if response is not None and response.status_code == 200:
            self._take(response.json())

    async def reuse_refresh_token(self) -> None:
        """Presents a rotated refresh token: 401, and every session of the user ends (the new
        refresh token too), so the user logs in again (when the per-account login limit allows)."""
        recent = [at for at in self.logins if at > time.monotonic() - 60]
        if len(recent) >= LOGINS_PER_MINUTE:
            return
        old = self.refresh
        await self.refresh_tokens()
        await self.api.call(
            "POST /auth/refresh", f"{API}/auth/refresh", json={"refresh_token": old}, expect=(401,)
        )
        await self.api.call(
            "POST /auth/refresh", f"{API}/auth/refresh", json={"refresh_token": self.refresh}, expect=(401,)
        )
        self.access = ""  # run() logs in again

    async def duplicate_sign_up(self) -> None:
        body = {"name": self.name, "email": f"other-{uuid.uuid4().hex[:8]}@soak.example.com"}
        body["password"] = self.load.spec.password
        await self.api.call("POST /auth/signup", f"{API}/auth/signup", json=body, expect=(409,))

    async def me(self) -> None:
        response = await self.api.call("GET /users/me", f"{API}/users/me", token=self.access)
        if response is not None and response.status_code == 200 and response.json()["id"] != self.user_id:
            self.load.stats.integrity.append(f"GET /users/me answered user {response.json()['id']}")

    # reading

    def any_post(self) -> int:
        """A third of the time one of a few hot posts (every user reads, likes and comments on
        the same rows at once, from both processes); otherwise any post, new ones too."""
        if self.rng.random() < HOT_SHARE:
            return self.rng.choice(self.load.post_ids[:HOT_POSTS])
        return self.rng.choice(self.load.post_ids)

    async def list_boards(self) -> None:
        await self.api.call("GET /boards", f"{API}/boards", token=self.access)

    async def list_posts(self) -> None:
        board = self.rng.choice(self.load.spec.board_ids)
        params = {
            "sort": self.rng.choice(["latest", "latest", "views", "likes", "comments"]),
            "offset": self.rng.choice([0, 0, 0, 20, 40]),
            "limit": 20,
        }
        if self.rng.random() < 0.1:
            params["q"] = self.rng.choice(KOREAN + ENGLISH)
        await self.api.call(
            "GET /boards/{id}/posts", f"{API}/boards/{board}/posts", token=self.access, params=params
        )

    async def read_post(self) -> None:
        post_id = self.any_post()
        response = await self.api.call("GET /posts/{id}", f"{API}/posts/{post_id}", token=self.access)
        if response is not None and response.status_code == 200:
            self.load.writes.views.add((self.user_id, post_id))
            written = self.load.writes.posts.get(post_id)
            post = response.json()
            if written is not None and written["user_id"] == self.user_id and post["name"] != written["name"]:
                self.load.stats.integrity.append(
                    f"post {post_id} reads {post['name']!r}, wrote {written['name']!r}"
                )

    async def list_comments(self) -> None:
        post_id = self.any_post()
        await self.api.call(
            "GET /posts/{id}/comments",
            f"{API}/posts/{post_id}/comments",
            token=self.access,
            params={"limit": 20},
        )

    # writing

    async def create_post(self) -> None:
        board = self.rng.choice(self.load.spec.board_ids)
        body = {"name": title(self.rng), "content": words(self.rng, 5, 80)}
        response = await self.api.call(
            "POST /boards/{id}/posts",
            f"{API}/boards/{board}/posts",
            token=self.access,
            json=body,
            expect=(201,),
        )
        if response is not None and response.status_code == 201:
            post_id = response.json()["id"]
            self.load.writes.posts[post_id] = {"board_id": board, "user_id": self.user_id, **body}
            self.posts.append(post_id)
            self.load.post_ids.append(post_id)

    async def edit_post(self) -> None:
        if not self.posts:
            return await self.create_post()
        post_id = self.rng.choice(self.posts)
        body = {"content": words(self.rng, 5, 80)}
        if self.rng.random() < 0.5:
            body["name"] = title(self.rng)
        response = await self.api.call(
            "PATCH /posts/{id}", f"{API}/posts/{post_id}", token=self.access, json=body
        )
        if response is not None and response.status_code == 200:
            self.load.writes.posts[post_id].update(body)

    async def create_comment(self) -> None:
        post_id = self.any_post()
        body = {"content": words(self.rng, 1, 30)}
        response = await self.api.call(
            "POST /posts/{id}/comments",
            f"{API}/posts/{post_id}/comments",
            token=self.access,
            json=body,
            expect=(201,),
        )
        if response is not None and response.status_code == 201:
            comment_id = response.json()["id"]
            self.load.writes.comments[comment_id] = {
                "post_id": post_id,
                "user_id": self.user_id,
                "content": body["content"],
                "is_visible": True,
            }
            self.comments.append(comment_id)

    async def edit_comment(self) -> None:
        if not self.comments:
            return await self.create_comment()
        comment_id = self.rng.choice(self.comments)
        body = {"content": words(self.rng, 1, 30)}
        response = await self.api.call(
            "PATCH /comments/{id}", f"{API}/comments/{comment_id}", token=self.access, json=body
        )
        if response is not None and response.status_code == 200:
            self.load.writes.comments[comment_id]["content"] = body["content"]

    async def delete_comment(self) -> None:
        if not self.comments:
            return
        comment_id = self.comments.pop(self.rng.randrange(len(self.comments)))
        response = await self.api.call(
            "DELETE /comments/{id}", f"{API}/comments/{comment_id}", token=self.access, expect=(204,)
        )
        if response is not None and response.status_code == 204:
            self.load.writes.comments[comment_id]["is_visible"] = False
            for attachment_id in [a for a in self.attachments if self._owner(a) == ("comment", comment_id)]:
                self.attachments.remove(attachment_id)  # hidden with the comment: no longer ours to fetch

    def _owner(self, attachment_id: int) -> tuple[str, int]:
        written = self.load.writes.attachments[attachment_id]
        return written["owner"], written["owner_id"]

    async def like(self) -> None:
        await self._like("PUT")

    async def unlike(self) -> None:
        await self._like("DELETE")

    async def _like(self, method: str) -> None:
        post_id = self.any_post()
        response = await self.api.call(
            f"{method} /posts/{{id}}/like", f"{API}/posts/{post_id}/like", token=self.access
        )
        if response is not None and response.status_code == 200:
            state = response.json()
            self.load.writes.likes[f"{self.user_id}:{post_id}"] = method == "PUT"
            if state["liked"] != (method == "PUT") or state["number_of_like"] < (method == "PUT"):
                self.load.stats.integrity.append(f"{method} like of post {post_id} answered {state}")

    # attachments

    async def upload(self) -> None:
        if not self.posts:
            return await self.create_post()
        if self.comments and self.rng.random() < 0.3:
            owner, owner_id = "comment", self.rng.choice(self.comments)
        else:
            owner, owner_id = "post", self.rng.choice(self.posts)
        files = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            name, make, content_type = self.rng.choice(FILE_KINDS)
            files.append((name, make(self.rng), content_type))
        response = await self.api.call(
            f"POST /{owner}s/{{id}}/attachments",
            f"{API}/{owner}s/{owner_id}/attachments",
            token=self.access,
            files=[("files", (name, data, "application/octet-stream")) for name, data, _ in files],
            expect=(201,),
        )
        if response is None or response.status_code != 201:
            return
        for answer, (_, data, content_type) in zip(response.json(), files, strict=True):
            self.load.writes.attachments[answer["id"]] = {
                "owner": owner,
                "owner_id": owner_id,
                "uploader_id": self.user_id,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "content_type": content_type,
                "deleted": False,
            }
            if answer["content_type"] != content_type or answer["size"] != len(data):
                self.load.stats.integrity.append(
                    f"upload answered {answer}, sent {content_type} {len(data)} B"
                )
            self.attachments.append(answer["id"])

    async def refused_upload(self) -> None:
        """A type outside the allow-list: 415, and nothing may stay on disk."""
        if not self.posts:
            return
        post_id = self.rng.choice(self.posts)
        files = [
            ("files", ("readme.txt", text_file(self.rng))),
            ("files", ("setup.txt", refused_file(self.rng))),
        ]
        await self.api.call(
            "POST /posts/{id}/attachments",
            f"{API}/posts/{post_id}/attachments",
            token=self.access,
            files=files,
            expect=(415,),
        )

    async def download(self) -> None:
        if not self.attachments:
            return
        attachment_id = self.rng.choice(self.attachments)
        response = await self.api.call(
            "GET /attachments/{id}", f"{API}/attachments/{attachment_id}", token=self.access
        )
        if response is not None and response.status_code == 200:
            written = self.load.writes.attachments[attachment_id]
            if hashlib.sha256(response.content).hexdigest() != written["sha256"]:
                self.load.stats.integrity.append(f"attachment {attachment_id}: downloaded bytes differ")

    async def delete_attachment(self) -> None:
        if not self.attachments:
            return
        attachment_id = self.attachments.pop(self.rng.randrange(len(self.attachments)))
        response = await self.api.call(
            "DELETE /attachments/{id}", f"{API}/attachments/{attachment_id}", token=self.access, expect=(204,)
        )
        if response is not None and response.status_code == 204:
            self.load.writes.attachments[attachment_id]["deleted"] = True

    # AI

    async def ai_job(self) -> None:
        model = self.rng.choice(self.load.spec.models)
        text = words(self.rng, 3, 20)
        response = await self.api.call(
            "POST /ai/models/{name}/jobs",
            f"{API}/ai/models/{model}/jobs",
            token=self.access,
            json={"input": text},
            expect=(202,),
        )
        if response is None or response.status_code != 202:
            return
        job = response.json()
        self.load.writes.ai_jobs[job["id"]] = {
            "model": model,
            "user_id": self.user_id,
            "status": job["status"],
        }
        for _ in range(AI_WAIT_POLLS):
            remaining = int(self.deadline - time.monotonic())
            if remaining < 1:
                return  # the load is over; the job is left to the drain
            response = await self.api.call(
                "GET /ai/jobs/{id}?wait",
                f"{API}/ai/jobs/{job['id']}",
                token=self.access,
                params={"wait": min(AI_WAIT_SECONDS, remaining)},
            )
            if response is None or response.status_code != 200:
                return
            job = response.json()
            self.load.writes.ai_jobs[job["id"]]["status"] = job["status"]
            if job["is_finished"]:
                return


Action = Callable[[BoardUser], Awaitable[None]]
# What a board user does next, and how often (relative weights).
ACTIONS: dict[str, tuple[Action, float]] = {
    "list boards": (BoardUser.list_boards, 4),
    "list posts": (BoardUser.list_posts, 18),
    "read post": (BoardUser.read_post, 18),
    "list comments": (BoardUser.list_comments, 6),
    "create post": (BoardUser.create_post, 5),
    "edit post": (BoardUser.edit_post, 2),
    "create comment": (BoardUser.create_comment, 8),
    "edit comment": (BoardUser.edit_comment, 2),
    "delete comment": (BoardUser.delete_comment, 1),
    "like": (BoardUser.like, 6),
    "unlike": (BoardUser.unlike, 3),
    "upload": (BoardUser.upload, 3),
    "refused upload": (BoardUser.refused_upload, 0.3),
    "download": (BoardUser.download, 2),
    "delete attachment": (BoardUser.delete_attachment, 1),
    "ai job": (BoardUser.ai_job, 2),
    "me": (BoardUser.me, 1),
    "refresh": (BoardUser.refresh_tokens, 1),
    "reused refresh token": (BoardUser.reuse_refresh_token, 0.2),
    "duplicate sign-up": (BoardUser.duplicate_sign_up, 0.2),
}


# --- chat -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Live delivery: what was sent, acknowledged and received, by socket."""

    sockets: dict[str, int] = field(default_factory=dict)  # socket name -> process index
    sent_ws: int = 0
    sent_rest: int = 0
    acked: int = 0
    unacked: int = 0
    errors: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    received: set[tuple[str, int]] = field(default_factory=set)  # (socket, message id)
    last_seen: dict[tuple[str, int], int] = field(default_factory=dict)  # (socket, session) -> id
    resyncs: int = 0
    recovered: set[tuple[str, int]] = field(default_factory=set)  # read from history after a resync
    sent_at: dict[str, float] = field(default_factory=dict)  # content tag -> when sent
    latencies: list[float] = field(default_factory=list)
    other_events: Counter[str] = field(default_factory=Counter)
    ack_latencies: list[float] = field(default_factory=list)


class Socket:
    """One live socket: reads every event, answers pings, resolves acks."""

    def __init__(self, name: str, port: int, process: int, token: str, tally: Tally) -> None:
        self.name, self.port, self.process, self.token, self.tally = name, port, process, token, tally
        self.ready = asyncio.Event()
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connection: ClientConnection | None = None
        self.closing = False
        self.task: asyncio.Task[None] | None = None
        self.on_resync: Callable[[Socket], None] | None = None

    def start(self) -> None:
        self.tally.sockets[self.name] = self.process
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        url = f"ws://127.0.0.1:{self.port}{API}/ws?token={self.token}"
        ending = "closed by the server"
        try:
            async with connect(url, max_queue=None, open_timeout=30) as connection:
                self.connection = connection
                async for frame in connection:
                    event = json.loads(frame)
                    if event.get("type") == "ping":
                        await connection.send(PONG)
                    else:
                        self._handle(event, time.perf_counter())
        except (ConnectionClosed, OSError) as exc:
            ending = repr(exc)
        finally:
            if not self.closing:
                self.tally.closed.append(f"{self.name}: {ending}"[:200])
            self.ready.set()  # nobody waits for a socket that will never be ready

    def _handle(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        if kind == "ready":
            self.ready.set()
        elif kind == "chat.message":
            message = event["message"]
            self.tally.received.add((self.name, message["id"]))
            key = (self.name, message["session_id"])
            self.tally.last_seen[key] = max(self.tally.last_seen.get(key, 0), message["id"])
            sent = self.tally.sent_at.get(message["content"].split(" ", 2)[1])
            if sent is not None:
                self.tally.latencies.append(now - sent)
        elif kind == "chat.ack":
            future = self.acks.pop(event["client_id"], None)
            if future is not None and not future.done():
                future.set_result(event["message"])
        elif kind == "error":
            future = self.acks.pop(event.get("client_id") or "", None)
            if future is not None and not future.done():
                future.set_exception(RuntimeError(f"{event.get('code')}: {event.get('detail')}"))
            self.tally.errors.append(f"{self.name}: {event.get('code')}: {event.get('detail')}"[:200])
        elif kind == "resync" and self.on_resync is not None:
            self.on_resync(self)
        else:
            self.tally.other_events[str(kind)] += 1

    async def send(self, session_id: int, content: str) -> dict[str, Any] | None:
        """chat.send and its ack (None when no ack came: the message counts as lost)."""
        client_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[client_id] = future
        started = time.perf_counter()
        assert self.connection is not None
        frame = {"type": "chat.send", "session_id": session_id, "content": content, "client_id": client_id}
        try:
            await self.connection.send(json.dumps(frame))
            message = await asyncio.wait_for(future, ACK_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError, ConnectionClosed):
            self.tally.unacked += 1
            return None
        self.tally.ack_latencies.append(time.perf_counter() - started)
        self.tally.acked += 1
        return message

    async def close(self) -> None:
        self.closing = True
        if self.connection is not None:
            await self.connection.close()
        if self.task is not None:
            await self.task


class Chat:
    """Chatters (each a user with a conversation and a socket on one process) and the
    administrator (a socket on every process, answering over REST)."""

    def __init__(self, load: "Load") -> None:
        self.load = load
        self.tally = Tally()
        self.sockets: list[Socket] = []
        self.admin_ready = asyncio.Event()
        self.conversations: dict[int, str] = {}  # session id -> its opener's socket name
        self.sequence = 0
        self.catching_up: set[asyncio.Task[None]] = set()

    def open_socket(self, name: str, process: int, token: str) -> Socket:
        socket = Socket(name, self.load.spec.ports[process], process, token, self.tally)
        socket.on_resync = self.resync
        socket.start()
        self.sockets.append(socket)
        return socket

    def resync(self, socket: Socket) -> None:
        """The server may have missed live events for this socket (its process lost Redis for a
        moment): as a client should, read what came since from the history."""
        self.tally.resyncs += 1
        task = asyncio.create_task(self.catch_up(socket))
        self.catching_up.add(task)
        task.add_done_callback(self.catching_up.discard)

    async def catch_up(self, socket: Socket) -> None:
        followed = [
            session_id
            for session_id, opener in self.conversations.items()
            if socket.name.startswith("admin@") or opener == socket.name
        ]
        for session_id in followed:
            seen = self.tally.last_seen.get((socket.name, session_id), 0)
            params: dict[str, int] = {"limit": HISTORY_PAGE}
            while True:  # pages back from the latest until the last message this socket saw
                response = await self.load.api.call(
                    "GET /chat/sessions/{id}/messages",
                    f"{API}/chat/sessions/{session_id}/messages",
                    token=socket.token,
                    params=params,
                    process=socket.process,
                )
                if response is None or response.status_code != 200:
                    break
                page = response.json()
                self.tally.recovered.update((socket.name, message["id"]) for message in page["items"])
                if page["next_before_id"] is None or page["items"][0]["id"] <= seen:
                    break
                params["before_id"] = page["next_before_id"]

    def tag(self) -> str:
        self.sequence += 1
        tag = f"m{self.sequence}"
        self.tally.sent_at[tag] = time.perf_counter()
        return tag

    def record(self, message: dict[str, Any], process: int, via: str) -> None:
        self.load.writes.chat_messages[message["id"]] = {
            "session_id": message["session_id"],
            "user_id": message["user"]["id"],
            "content": message["content"],
            "process": process,
            "via": via,
        }

    async def log_in(self, name: str, password: str) -> str | None:
        response = await self.load.api.call(
            "POST /auth/login", f"{API}/auth/login", data={"username": name, "password": password}
        )
        return (
            response.json()["access_token"] if response is not None and response.status_code == 200 else None
        )

    async def admin(self, deadline: float) -> None:
        spec = self.load.spec
        token = await self.log_in(spec.admin_name, spec.admin_password)
        if token is None:
            self.admin_ready.set()
            return
        sockets = [self.open_socket(f"admin@{i}", i, token) for i in range(len(spec.ports))]
        await asyncio.gather(*(socket.ready.wait() for socket in sockets))
        self.admin_ready.set()
        rng = random.Random(spec.seed)
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            if not self.conversations:
                continue
            session_id = rng.choice(list(self.conversations))
            if rng.random() < 0.8:
                process = rng.randrange(len(spec.ports))
                body = {"content": f"soak {self.tag()} {words(rng, 1, 12)}"}
                response = await self.load.api.call(
                    "POST /chat/sessions/{id}/messages",
                    f"{API}/chat/sessions/{session_id}/messages",
                    token=token,
                    json=body,
                    expect=(201,),
                    process=process,
                )
                self.tally.sent_rest += 1
                if response is not None and response.status_code == 201:
                    self.record(response.json(), process, "REST")
            else:
                await self.load.api.call(
                    "GET /chat/sessions", f"{API}/chat/sessions", token=token, params={"limit": 50}
                )

    async def chatter(self, index: int, deadline: float) -> None:
        spec = self.load.spec
        rng = random.Random(spec.seed * 7919 + index)
        name = f"soak_{spec.run_id}_chat{index}"
        email = f"{name}@soak.example.com"
        response = await self.load.api.call(
            "POST /auth/signup",
            f"{API}/auth/signup",
            json={"name": name, "email": email, "password": spec.password},
            expect=(201,),
        )
        if response is None or response.status_code != 201:
            return
        user_id = response.json()["id"]
        self.load.writes.users[user_id] = {"name": name, "email": email}
        token = await self.log_in(name, spec.password)
        if token is None:
            return
        response = await self.load.api.call(
            "POST /chat/sessions",
            f"{API}/chat/sessions",
            token=token,
            json={"name": f"문의 {index}"},
            expect=(201,),
        )
        if response is None or response.status_code != 201:
            return
        session_id = response.json()["id"]
        self.load.writes.chat_sessions[session_id] = {"user_id": user_id}
        home = index % len(spec.ports)
        socket = self.open_socket(f"chatter{index}@{home}", home, token)
        await socket.ready.wait()
        await self.admin_ready.wait()
        if socket.connection is None:
            return  # it never opened (in tally.closed)
        self.conversations[session_id] = socket.name
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            roll = rng.random()
            content = f"soak {self.tag()} {words(rng, 1, 12)}"
            if roll < 0.55:
                self.tally.sent_ws += 1
                message = await socket.send(session_id, content)
                if message is not None:
                    self.record(message, home, "WebSocket")
            elif roll < 0.85:
                process = rng.randrange(len(spec.ports))
                self.tally.sent_rest += 1
                response = await self.load.api.call(
                    "POST /chat/sessions/{id}/messages",
                    f"{API}/chat/sessions/{session_id}/messages",
                    token=token,
                    json={"content": content, "client_id": uuid.uuid4().hex},
                    expect=(201,),
                    process=process,
                )
                if response is not None and response.status_code == 201:
                    self.record(response.json(), process, "REST")
            elif roll < 0.95:
                response = await self.load.api.call(
                    "GET /chat/sessions/{id}/messages",
                    f"{API}/chat/sessions/{session_id}/messages",
                    token=token,
                    params={"limit": 20},
                )
                if response is not None and response.status_code == 200 and response.json()["items"]:
                    last = response.json()["items"][-1]["id"]
                    await self.load.api.call(
                        "POST /chat/sessions/{id}/read",
                        f"{API}/chat/sessions/{session_id}/read",
                        token=token,
                        json={"last_read_id": last},
                        expect=(204,),
                    )
            else:
                await self.load.api.call("GET /chat/sessions", f"{API}/chat/sessions", token=token)

    def expected_deliveries(self) -> dict[tuple[str, int], int]:
        """(socket, message id) -> the process the message was sent to: every acknowledged
        message reaches its conversation's opener and every administrator socket."""
        admins = [name for name in self.tally.sockets if name.startswith("admin@")]
        expected = {}
        for message_id, message in self.load.writes.chat_messages.items():
            for socket in [self.conversations[message["session_id"]], *admins]:
                expected[(socket, message_id)] = message["process"]
        return expected

    def missing(self) -> set[tuple[str, int]]:
        """Deliveries that came neither live nor from the history read after a resync."""
        return set(self.expected_deliveries()) - self.tally.received - self.tally.recovered

    async def settle(self) -> dict[str, Any]:
        """Waits (bounded) for deliveries still on their way and for catch-ups after a resync,
        closes the sockets, and counts."""
        until = time.monotonic() + DELIVERY_GRACE_SECONDS
        while time.monotonic() < until and (self.catching_up or self.missing()):
            await asyncio.sleep(0.1)
        for socket in self.sockets:
            await socket.close()
        expected = self.expected_deliveries()
        lost = sorted(self.missing())
        recovered = set(expected) & self.tally.recovered - self.tally.received
        crossed = sum(
            1
            for key, process in expected.items()
            if key in self.tally.received and self.tally.sockets[key[0]] != process
        )
        tally = self.tally
        return {
            "sockets": len(self.sockets),
            "sent_ws": tally.sent_ws,
            "sent_rest": tally.sent_rest,
            "acked": tally.acked,
            "unacked": tally.unacked,
            "messages_acknowledged": len(self.load.writes.chat_messages),
            "deliveries_expected": len(expected),
            "deliveries_received": len(expected) - len(lost),
            "deliveries_across_processes": crossed,
            "resyncs": tally.resyncs,
            "recovered_after_resync": len(recovered),
            "lost": len(lost),
            "lost_examples": [
                f"{socket} missed message {message_id} (sent by {sent['via']} to api-{sent['process']})"
                for socket, message_id in lost[:5]
                for sent in [self.load.writes.chat_messages[message_id]]
            ],
            "errors": tally.errors[:10],
            "closed": tally.closed[:10],
            "delivery_latencies": tally.latencies,
            "ack_latencies": tally.ack_latencies,
            "other_events": dict(tally.other_events),
        }


# --- the lockout probe ---------------------------------------------------------------------------


async def lockout_probe(load: "Load") -> dict[str, Any]:
    """An account's failed logins alternate between the processes; the one past the limit is
    refused (429) even with the right password: both processes count in Redis."""
    spec = load.spec
    name = f"soak_{spec.run_id}_lockout"
    email = f"{name}@soak.example.com"
    response = await load.api.call(
        "POST /auth/signup",
        f"{API}/auth/signup",
        json={"name": name, "email": email, "password": spec.password},
        expect=(201,),
    )
    if response is None or response.status_code != 201:
        return {"ran": False}
    load.writes.users[response.json()["id"]] = {"name": name, "email": email}
    statuses = []
    for attempt in range(spec.lockout_limit):
        response = await load.api.call(
            "POST /auth/login",
            f"{API}/auth/login",
            data={"username": name, "password": "wrong password!"},
            expect=(401,),
            process=attempt % len(spec.ports),
        )
        statuses.append(response.status_code if response is not None else 0)
    response = await load.api.call(
        "POST /auth/login",
        f"{API}/auth/login",
        data={"username": name, "password": spec.password},
        expect=(429,),
        process=spec.lockout_limit % len(spec.ports),
    )
    statuses.append(response.status_code if response is not None else 0)
    return {"ran": True, "statuses": statuses}


# --- the run ------------------------------------------------------------------------------------


class Load:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stats = Stats()
        self.writes = Writes()
        self.api = Api(spec.ports, self.stats, random.Random(spec.seed))
        self.post_ids = list(spec.post_ids)  # posts written during the run are added

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        started = time.monotonic()
        deadline = started + spec.duration
        chat = Chat(self)
        seeded = spec.seeded_users[: spec.users // 2]
        users = [BoardUser(self, i, seeded[i] if i < len(seeded) else None) for i in range(spec.users)]
        tasks = [user.run(deadline) for user in users]
        tasks += [chat.admin(deadline)] + [chat.chatter(i, deadline) for i in range(spec.chatters)]
        probe, *_ = await asyncio.gather(lockout_probe(self), *tasks)
        load_seconds = time.monotonic() - started
        delivery = await chat.settle()
        await self.api.close()
        stats = self.stats
        return {
            "seconds": load_seconds,
            "requests": sum(len(values) for values in stats.latencies.values()),
            "latencies": {kind: summary(values) for kind, values in stats.latencies.items()},
            "statuses": dict(stats.statuses),
            "expected_4xx": dict(stats.expected_4xx),
            "unexpected": dict(stats.unexpected),
            "server_errors": dict(stats.server_errors),
            "transport_errors": dict(stats.transport_errors),
            "samples": stats.samples,
            "integrity": stats.integrity[:20],
            "slowest": sorted(stats.slowest, reverse=True),
            "lockout": probe,
            "chat": delivery
            | {
                "delivery_latencies": summary(delivery["delivery_latencies"]),
                "ack_latencies": summary(delivery["ack_latencies"]),
            },
            "writes": self.writes.as_json(),
        }


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000}


def main() -> None:
    spec = Spec(**json.load(sys.stdin))
    result = asyncio.run(Load(spec).run())
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
