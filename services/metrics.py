"""Prometheus metrics (METRICS_ENABLED), for GET /metrics (routers/metrics.py):

- HTTP requests by method, route template (`/api/v1/posts/{post_id}`, never the path a client
  wrote; every path no route matches is `unmatched`) and status, with a latency histogram;
  edge.Measured times them;
- AI jobs: their endings by model and status, counted as this process publishes them
  (services/ai/events.JobEvents: the embedded runner's, the timeouts, the cancellations); the
  jobs queued and running by model, read from the database at scrape time (the whole
  deployment's, Celery workers' included); the embedded runner's queue; the sentence encoder's
  model processes alive;
- open chat sockets (edge.Measured) and database connections checked out of the pool.

Several processes on one machine (uvicorn --workers, gunicorn, several `cli.py serve`) answer one
sum when they share the directory PROMETHEUS_MULTIPROC_DIR names (prometheus-client's
multiprocess mode): each writes its values to files there, and a scrape, whichever process it
reaches, reads them all. What a process holds now (sockets, connections, queue, model processes)
is a "livesum" gauge, each process's written when it changes or every SAMPLE_SECONDS; the files of
a process that is gone are dropped at the next scrape, its counters stay in the sums.

Everything lives in the Metrics object of the app's Runtime. What prometheus-client keeps per
process is its choice of storage: in memory, or files in PROMETHEUS_MULTIPROC_DIR, fixed by that
variable when the library is imported (it has no other switch); its global default REGISTRY is
never used.
"""

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from config import Settings, parse_networks
from crud import ai as ai_crud
from database import engine
from errors import Forbidden
from ml.encoder import get_encoder
from services.ai.backends import ThreadBackend
from services.ai.events import JobUpdate
from services.ai.runtime import AIRuntime

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
OTHER_METHOD = "other"  # any method outside these (a client may send any token as its method)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests take ~0.5 ms to seconds; a long poll (wait=30) lands in the last buckets.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SAMPLE_SECONDS = 1.0  # how often a process writes its gauges for the others' scrapes
# prometheus-client's file of a process's live gauges: gauge_livesum_<pid>.db (and other modes).
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


class Metrics:
    """The app's instruments, their registry, and what a scrape reads."""

    def __init__(self, config: Settings, ai: AIRuntime, *, multiprocess_dir: str | None = None) -> None:
        self.ai = ai
        self.allowed = parse_networks(config.METRICS_ALLOW, "METRICS_ALLOW")
        # Parsed here, not Settings.trusted_proxy_networks: a settings copy keeps that cached value.
        self.trusted_proxies = parse_networks(config.TRUSTED_PROXIES, "TRUSTED_PROXIES")
        self.multiprocess_dir = multiprocess_dir
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "madang_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.durations = Histogram(
            "madang_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.jobs_ended = Counter(
            "madang_ai_jobs_ended",
            "AI jobs that ended (succeeded, failed, canceled), by model; counted by the process that "
            "published the ending (with AI_BACKEND=celery, the workers' endings are not).",
            ["model", "status"],
            registry=registry,
        )

        def summed_over_processes(name: str, documentation: str) -> Gauge:
            """What each live process holds, summed over them in a scrape."""
            return Gauge(name, documentation, multiprocess_mode="livesum", registry=registry)

        self.queue_depth = summed_over_processes(
            "madang_ai_queue_depth", "AI jobs waiting in the embedded runners' queues (AI_BACKEND=thread)."
        )
        self.model_processes = summed_over_processes(
            "madang_ai_model_processes", "The sentence encoder's model processes alive (AI_MODEL_PROCESS)."
        )
        self.sockets_open = summed_over_processes("madang_chat_sockets_open", "Chat WebSockets open.")
        self.connections_in_use = summed_over_processes(
            "madang_db_connections_in_use", "Database connections checked out of the processes' pools."
        )
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # A new process may have the id of a dead one whose files are still there: its live
        # gauges start from the values it writes now, not from the dead one's.
        self.sockets_open.set(0)
        self.sample()
        self._scraped: Collector = self.registry
        if multiprocess_dir is not None:
            self._scraped = CollectorRegistry()
            # prometheus_client.multiprocess has no annotations (the library's other modules do).
            MultiProcessCollector(self._scraped, path=multiprocess_dir)  # type: ignore[no-untyped-call]

    # --- what happens ---------------------------------------------------------------------------

    def request_ended(self, method: str, route: str, status: int, seconds: float) -> None:
        """On every request (edge.Measured): a dictionary look-up, a count and an observation."""
        if method not in METHODS:
            method = OTHER_METHOD
        key = (method, route, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.requests.labels(method, route, str(status)),
                self.durations.labels(method, route),
            )
        count, duration = series
        count.inc()
        duration.observe(seconds)

    def socket_opened(self) -> None:
        self.sockets_open.inc()

    def socket_closed(self) -> None:
        self.sockets_open.dec()

    def count_endings(self, updates: list[JobUpdate]) -> None:
        """A JobEvents observer, on the thread that publishes: the updates that end a job."""
        for update in updates:
            job = update.job
            if job.get("is_finished"):
                self.jobs_ended.labels(str(job.get("model")), str(job.get("status"))).inc()

    def sample(self) -> None:
        """Writes what this process holds now."""
        backend = self.ai.backend
        if isinstance(backend, ThreadBackend):
            # The encoder's model processes are this process's children when it runs the models.
            queued, model_processes = backend.runner.pending(), len(get_encoder().child_pids)
        else:
            queued = model_processes = 0  # Celery's workers run them (madang_ai_jobs has the queue)
        self.queue_depth.set(queued)
        self.model_processes.set(model_processes)
        pool = engine.pool
        self.connections_in_use.set(pool.checkedout() if isinstance(pool, QueuePool) else 0)

    def zero_live_gauges(self) -> None:
        """The app stops: this process holds nothing any more (its files may outlive it)."""
        for gauge in (self.queue_depth, self.model_processes, self.sockets_open, self.connections_in_use):
            gauge.set(0)

    # --- the scrape -------------------------------------------------------------------------

    def admit(self, client: str | None, *, forwarded_by_stranger: bool) -> None:
        """Forbidden unless the client's address (TRUSTED_PROXIES resolved) is in METRICS_ALLOW.
        A request forwarded by a proxy the app was not told to trust is refused whatever its
        peer: nginx on loopback would otherwise make every outside client look local."""
        address = _address(client)
        if forwarded_by_stranger or address is None or not any(address in net for net in self.allowed):
            raise Forbidden(
                "metrics are served only to the networks in METRICS_ALLOW", code="metrics_not_allowed"
            )

    def scrape(self, session: Session) -> bytes:
        """The text format: every process's counts (one sum with PROMETHEUS_MULTIPROC_DIR) and
        the AI jobs queued and running now, read from the database."""
        in_flight = ai_crud.count_in_flight(session)
        self.sample()
        if self.multiprocess_dir is not None:
            forget_dead_processes(self.multiprocess_dir)
        jobs = jobs_in_flight(in_flight, [model.name for model in self.ai.models.listed()])
        return generate_latest(_Scrape(self._scraped, [jobs]))


class _Scrape:
    """The registry's metrics and those read for this scrape alone."""

    def __init__(self, registry: Collector, metrics: Sequence[Metric]) -> None:
        self.registry = registry
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        yield from self.metrics


def jobs_in_flight(counts: Iterable[tuple[str, str, int]], models: Iterable[str]) -> GaugeMetricFamily:
    """madang_ai_jobs{model, status}; every listed model's queued and running, 0 when it has none
    (a series that vanishes reads as missing data, not as none)."""
    jobs = dict.fromkeys(((model, status) for model in models for status in ai_crud.IN_FLIGHT), 0)
    jobs.update({(model, status): count for model, status, count in counts})
    family = GaugeMetricFamily(
        "madang_ai_jobs",
        "AI jobs queued or running now, by model (the database's: every process and worker).",
        labels=["model", "status"],
    )
    for (model, status), count in sorted(jobs.items()):
        family.add_metric([model, status], count)
    return family


def _address(text: str | None) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text or "")
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forget_dead_processes(directory: str) -> None:
    """Drops the live gauges of processes that are gone (killed, crashed: no shutdown of their
    own). Process ids are this machine's: the directory must not be shared across machines."""
    for name in os.listdir(directory):
        match = LIVE_GAUGE_FILE.fullmatch(name)
        if match is not None and not process_alive(int(match[1])):
            mark_process_dead(int(match[1]), directory)  # type: ignore[no-untyped-call]  # as above


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def multiprocess_directory() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, which prometheus-client read when it was imported."""
    directory = os.environ.get(MULTIPROCESS_VARIABLE) or None
    if directory is not None and not os.path.isdir(directory):
        raise RuntimeError(f"{MULTIPROCESS_VARIABLE}={directory} is not a directory: make it, empty, first")
    return directory


@contextlib.asynccontextmanager
async def running(config: Settings, ai: AIRuntime) -> AsyncIterator[Metrics | None]:
    """The app's metrics while it runs (None unless METRICS_ENABLED): counting the endings of
    the jobs it publishes, and in multiprocess mode writing its gauges every SAMPLE_SECONDS."""
    if not config.METRICS_ENABLED:
        yield None
        return
    metrics = Metrics(config, ai, multiprocess_dir=multiprocess_directory())
    if ai.events is not None:
        ai.events.observers.append(metrics.count_endings)
    sampler = asyncio.create_task(_sample_every(metrics)) if metrics.multiprocess_dir else None
    try:
        yield metrics
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if ai.events is not None:
            ai.events.observers.remove(metrics.count_endings)
        metrics.zero_live_gauges()


async def _sample_every(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(SAMPLE_SECONDS)
        try:
            metrics.sample()
        except Exception:  # a failed sample must not end the sampling
            log.exception("metrics not sampled")
