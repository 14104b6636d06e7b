"""Chat delivery benchmark: many connected clients, a steady message rate, delivery latency.

    .venv/bin/python bench/chat_bench.py                      # one API process, SQLite
    .venv/bin/python bench/chat_bench.py --processes 2        # two processes, MariaDB + Redis

The world: `--conversations` support conversations (20), each opened by its own user, and as
many administrators, each connected once. The rest of `--clients` (200) are the openers'
sockets, spread evenly (20 users x 9 devices), so 200 sockets in all. Every administrator
reads every conversation, so each message is delivered to the opener's sockets and to every
administrator's socket: 9 + 20 = 29 deliveries. Senders take turns (the opener, then the
conversation's administrator) at `--rate` messages a second in total for `--seconds`.

Latency is measured from the moment the client sends `chat.send` to the moment each socket
receives the `chat.message` (one clock: every client lives in this process). It prints p50,
p99 and max, and messages delivered / expected (lost = expected - delivered).

Everything runs on this machine (loopback only) and stops by itself. The API processes get a
database and a Redis channel of their own; nothing else is touched.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/madang_bench_chat?charset=utf8mb4"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PONG = json.dumps({"type": "pong"})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=1, help="API processes (2+ use Redis and MariaDB)")
    parser.add_argument("--clients", type=int, default=200, help="sockets in all")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="messages a second, all senders together")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    parser.add_argument("--database-url", default="", help="default: SQLite (1 process) or MariaDB (2+)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--base-port", type=int, default=8701)
    return parser.parse_args()


def prepare_environment(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    """Settings for the API processes and for this one (tokens are signed with the same key)."""
    database_url = args.database_url or (
        DEFAULT_MARIADB_URL if args.processes > 1 else f"sqlite:///{workdir / 'bench.sqlite3'}"
    )
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "REDIS_URL": args.redis_url if args.processes > 1 else "",
        "BROKER_CHANNEL": f"madang:bench:{uuid.uuid4().hex}",
        "ENV": "development",
    }
    os.environ.update(environment)
    return {**os.environ, **environment}


def recreate_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    server = create_engine(parsed.set(database=""))
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        conn.execute(text(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4"))
    server.dispose()


@dataclass
class World:
    conversation_ids: list[int]
    opener_tokens: list[str]  # one per conversation
    admin_tokens: list[str]  # one per conversation (every admin reads all)


def build_world(conversations: int) -> World:
    """Users, administrators and conversations, written straight to the database."""
    from database import session_scope
    from models import ChatSession, ChatSessionMember, User
    from services import security

    with session_scope() as session:
        openers = [
            User(name=f"bench_user_{n}", email=f"u{n}@bench.local", password_hash="!")
            for n in range(conversations)
        ]
        admins = [
            User(name=f"bench_admin_{n}", email=f"a{n}@bench.local", password_hash="!", is_superuser=True)
            for n in range(conversations)
        ]
        session.add_all(openers + admins)
        session.flush()
        rooms = [ChatSession(user_id=user.id, name=f"bench {n}") for n, user in enumerate(openers)]
        session.add_all(rooms)
        session.flush()
        session.add_all(ChatSessionMember(chat_session_id=room.id, user_id=room.user_id) for room in rooms)
        session.commit()
        return World(
            conversation_ids=[room.id for room in rooms],
            opener_tokens=[security.create_access_token(u.id, 0) for u in openers],
            admin_tokens=[security.create_access_token(u.id, 0) for u in admins],
        )


def start_servers(
    count: int, base_port: int, environment: dict[str, str], workdir: Path
) -> list[subprocess.Popen[bytes]]:
    from serving import UVICORN_FLAGS

    servers = []
    for index in range(count):
        log = (workdir / f"api-{index}.log").open("wb")
        port = str(base_port + index)
        command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", port]
        command += ["--log-level", "warning", "--no-access-log", *UVICORN_FLAGS]  # as `make run` serves
        servers.append(subprocess.Popen(command, cwd=BASE_DIR, env=environment, stdout=log, stderr=log))
    return servers


async def wait_until_up(ports: list[int], timeout: float = 30.0) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    async with httpx2.AsyncClient() as http:
        for port in ports:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API on port {port} did not come up")
                await asyncio.sleep(0.1)


@dataclass
class Tally:
    sent_at: dict[int, float] = field(default_factory=dict)  # sequence -> send time
    latencies: list[float] = field(default_factory=list)  # seconds, one per delivery
    ack_latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    errors: list[str] = field(default_factory=list)


class Client:
    def __init__(self, port: int, token: str, tally: Tally) -> None:
        self.url = f"ws://127.0.0.1:{port}/api/v1/ws?token={token}"
        self.tally = tally
        self.ready = asyncio.Event()
        self.socket = None

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, max_queue=None) as socket:
            self.socket = socket
            async for frame in socket:
                event = json.loads(frame)
                if event["type"] == "ping":
                    await socket.send(PONG)
                else:
                    self.handle(event, time.perf_counter())

    def handle(self, event: dict, now: float) -> None:
        kind = event["type"]
        if kind == "chat.message":
            sequence = int(event["message"]["content"].split()[1])
            self.tally.latencies.append(now - self.tally.sent_at[sequence])
            self.tally.delivered += 1
        elif kind == "chat.ack":
            sequence = int(event["message"]["content"].split()[1])
            self.tally.ack_latencies.append(now - self.tally.sent_at[sequence])
        elif kind == "ready":
            self.ready.set()
        elif kind == "error":
            self.tally.errors.append(event["detail"])

    async def send(self, conversation_id: int, sequence: int) -> None:
        frame = {
            "type": "chat.send",
            "session_id": conversation_id,
            "content": f"bench {sequence}",
            "client_id": f"bench-{sequence}",
        }
        self.tally.sent_at[sequence] = time.perf_counter()
        await self.socket.send(json.dumps(frame))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_benchmark(args: argparse.Namespace, world: World, ports: list[int]) -> None:
    tally = Tally()
    conversations = len(world.conversation_ids)
    devices_per_opener = max(1, (args.clients - conversations) // conversations)
    # Sockets are spread over the processes round-robin, so senders and receivers mix.
    port_of = iter(ports[i % len(ports)] for i in range(10**9))
    admins = [Client(next(port_of), token, tally) for token in world.admin_tokens]
    openers = [
        [Client(next(port_of), token, tally) for _ in range(devices_per_opener)]
        for token in world.opener_tokens
    ]
    clients = admins + [c for devices in openers for c in devices]
    tasks = [asyncio.create_task(c.run()) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), timeout=60)
    print(f"{len(clients)} sockets connected to {len(ports)} process(es): {len(admins)} administrators, "
          f"{conversations} openers x {devices_per_opener} devices")  # fmt: skip

    per_message = devices_per_opener + len(admins)
    total = int(args.rate * args.seconds)
    started = time.perf_counter()
    for sequence in range(total):
        await asyncio.sleep(max(0.0, started + sequence / args.rate - time.perf_counter()))
        room = sequence % conversations
        turn = (sequence // conversations) % 2  # the opener, then the administrator
        sender = openers[room][0] if turn == 0 else admins[room]
        await sender.send(world.conversation_ids[room], sequence)
    sending_took = time.perf_counter() - started
    expected = total * per_message
    deadline = time.perf_counter() + 10
    while (tally.delivered < expected or len(tally.ack_latencies) < total) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    ms = 1000.0
    print(f"sent {total} messages in {sending_took:.1f} s ({total / sending_took:.0f}/s)")
    print(f"each to {per_message} sockets")
    print(f"delivered {tally.delivered} / expected {expected}; lost {expected - tally.delivered}")
    if tally.latencies:
        print(
            f"delivery latency ms: p50 {percentile(tally.latencies, 0.5) * ms:.1f}  "
            f"p99 {percentile(tally.latencies, 0.99) * ms:.1f}  max {max(tally.latencies) * ms:.1f}  "
            f"mean {statistics.fmean(tally.latencies) * ms:.1f}"
        )
    if tally.ack_latencies:
        print(
            f"send -> ack ms: p50 {percentile(tally.ack_latencies, 0.5) * ms:.1f}  "
            f"p99 {percentile(tally.ack_latencies, 0.99) * ms:.1f}  acks {len(tally.ack_latencies)}"
        )
    if tally.errors:
        print(f"{len(tally.errors)} error events, e.g. {tally.errors[0]}")


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="madang-chat-bench-"))
    environment = prepare_environment(args, workdir)
    recreate_database(environment["DATABASE_URL"])
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=BASE_DIR, env=environment, check=True
    )
    world = build_world(args.conversations)
    ports = [args.base_port + n for n in range(args.processes)]
    servers = start_servers(args.processes, args.base_port, environment, workdir)
    try:
        asyncio.run(wait_until_up(ports))
        asyncio.run(run_benchmark(args, world, ports))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
        print(f"server logs: {workdir}")


if __name__ == "__main__":
    main()
