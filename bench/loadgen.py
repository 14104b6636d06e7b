"""The load generator: N keep-alive HTTP/1.1 connections over loopback, each sending its next
request as soon as the last response is in (closed loop), for a warm-up and then a measured
window.

It is a minimal asyncio client (uvloop when present; httptools parses the responses, the same
C parser uvicorn uses) rather than a general HTTP library, so that on a two-core machine the
load generator costs a small fraction of what the server spends per request. `--self-test`
measures how fast it can go against a server that does nothing.

Run by bench/run.py in its own process: a JSON spec on stdin, a JSON result on stdout.
    python -m bench.loadgen < spec.json
    python -m bench.loadgen --serve-static PORT     # the do-nothing server for the self-test
"""

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] brings it
    uvloop = None


@dataclass
class Spec:
    port: int
    scenario: str  # list | read | comment | get (any of `paths`) | static
    host: str = "127.0.0.1"
    connections: int = 32
    warmup: float = 2.0
    duration: float = 10.0
    max_requests: int = 0  # 0: no cap; otherwise stop issuing after this many measured requests
    api_prefix: str = "/api/v1"
    tokens: list[str] = field(default_factory=list)
    board_ids: list[int] = field(default_factory=list)
    post_ids: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    list_pages: int = 5
    list_limit: int = 20
    watch_pids: dict[str, int | list[int]] = field(default_factory=dict)  # a list: their CPU summed
    seed: int = 1
    keep_latencies: bool = False  # also return every measured latency (ms), to merge runs


RequestFactory = Callable[[], bytes]


def request_factory(spec: Spec) -> RequestFactory:
    """Ready-made request bytes for the scenario, a random board/page, post or author each time."""
    rng = random.Random(spec.seed)
    host = f"Host: {spec.host}:{spec.port}\r\n"
    auth = [f"Authorization: Bearer {token}\r\n" for token in spec.tokens] or [""]
    prefix = spec.api_prefix

    def get(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\n{host}{rng.choice(auth)}Accept: application/json\r\n\r\n".encode()

    if spec.scenario == "list":
        pages = range(spec.list_pages)

        def make() -> bytes:
            offset = rng.choice(pages) * spec.list_limit
            board = rng.choice(spec.board_ids)
            return get(f"{prefix}/boards/{board}/posts?offset={offset}&limit={spec.list_limit}")

        return make
    if spec.scenario == "read":
        return lambda: get(f"{prefix}/posts/{rng.choice(spec.post_ids)}")
    if spec.scenario == "comment":
        bodies = [json.dumps({"content": text}, ensure_ascii=False).encode() for text in spec.comments]

        def make_comment() -> bytes:
            body = rng.choice(bodies)
            head = (
                f"POST {prefix}/posts/{rng.choice(spec.post_ids)}/comments HTTP/1.1\r\n{host}"
                f"{rng.choice(auth)}Accept: application/json\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            return head.encode() + body

        return make_comment
    if spec.scenario == "get":
        return lambda: get(rng.choice(spec.paths))
    if spec.scenario == "static":
        return lambda: get("/")
    raise ValueError(f"unknown scenario {spec.scenario!r}")


class Connection(asyncio.Protocol):
    """One keep-alive connection; `send` resolves with (status, keep_alive) on a full response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), self.parser.should_keep_alive()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(str(exc)))

    def send(self, request: bytes) -> "asyncio.Future[tuple[int, bool]]":
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measurements:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    cpu_marks: dict[str, list[float]] = field(default_factory=dict)

    def mark_cpu(self, watch_pids: dict[str, int | list[int]]) -> None:
        self.cpu_marks.setdefault("machine", []).append(machine_busy_seconds())
        self.cpu_marks.setdefault("loadgen", []).append(time.process_time())
        for name, pids in watch_pids.items():
            with contextlib.suppress(OSError):  # a watched process that is gone is left out
                used = [cpu_seconds(pid) for pid in ([pids] if isinstance(pids, int) else pids)]
                self.cpu_marks.setdefault(name, []).append(sum(used))


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (every core), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


async def run(spec: Spec) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    make_request = request_factory(spec)
    measure_from = time.perf_counter() + spec.warmup
    measure_until = measure_from + spec.duration
    seen = Measurements()

    async def connect() -> Connection:
        _, protocol = await loop.create_connection(Connection, spec.host, spec.port)
        return protocol

    async def client() -> None:
        connection = await connect()
        while time.perf_counter() < measure_until:
            if spec.max_requests and len(seen.latencies) >= spec.max_requests:
                break
            sent = time.perf_counter()
            try:
                status, keep_alive = await connection.send(make_request())
            except ConnectionError:
                seen.statuses["connection error"] += 1
                connection = await connect()
                continue
            done = time.perf_counter()
            if measure_from <= done <= measure_until:
                seen.latencies.append(done - sent)
                seen.statuses[str(status)] += 1
            if not keep_alive:
                if connection.transport is not None:
                    connection.transport.close()
                connection = await connect()
        if connection.transport is not None:
            connection.transport.close()

    loop.call_at(loop.time() + spec.warmup, seen.mark_cpu, spec.watch_pids)
    loop.call_at(loop.time() + spec.warmup + spec.duration, seen.mark_cpu, spec.watch_pids)
    await asyncio.gather(*(client() for _ in range(spec.connections)))
    window = min(spec.duration, time.perf_counter() - measure_from)
    return summarize(spec, seen, window)


def summarize(spec: Spec, seen: Measurements, window: float) -> dict[str, Any]:
    latencies = sorted(seen.latencies)

    def percentile(fraction: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    ok = sum(count for status, count in seen.statuses.items() if status.startswith("2"))
    kept = {"latencies_ms": [round(x * 1000, 3) for x in latencies]} if spec.keep_latencies else {}
    return kept | {
        "scenario": spec.scenario,
        "connections": spec.connections,
        "seconds": round(window, 3),
        "requests": len(latencies),
        "ok": ok,
        "statuses": dict(seen.statuses),
        "rps": ok / window if window > 0 else 0.0,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        # Share of one core each process used during the measured window; "others" is what
        # the rest of the machine used meanwhile (other work competing for the same cores).
        "cpu_percent": cpu_shares(seen.cpu_marks, window),
    }


def cpu_shares(marks: dict[str, list[float]], window: float) -> dict[str, float]:
    used = {name: pair[1] - pair[0] for name, pair in marks.items() if len(pair) == 2}
    if window <= 0 or "machine" not in used:
        return {}
    machine = used.pop("machine")
    used["others"] = max(0.0, machine - sum(used.values()))
    return {name: round(100 * seconds / window, 1) for name, seconds in used.items()}


class StaticServer(asyncio.Protocol):
    """Answers every request with the same small JSON body, for the load generator's self-test."""

    RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(self.RESPONSE)


async def serve_static(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(StaticServer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    run_loop = uvloop.run if uvloop is not None else asyncio.run
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-static":
        run_loop(serve_static(int(sys.argv[2])))
        return
    spec = Spec(**json.load(sys.stdin))
    result = run_loop(run(spec))
    result["event_loop"] = "uvloop" if uvloop is not None else "asyncio"
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
