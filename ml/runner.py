"""The embedded runner: a ThreadPoolExecutor behind a bounded queue, with adaptive batching.

Work arrives as ids (a job, a post to embed) on a *lane* (one per model). A dispatcher thread
hands a lane's queued ids to the executor as one batch as soon as a worker is free: a lone
request runs at once, and under load the ids that piled up while the workers were busy form
the next batch (up to max_batch), which is what makes the model fast. AI_MAX_WAIT_MS > 0 lets
the oldest id wait that long for companions; the default 0 never waits.

With several workers, a free worker beside one still computing does not start a small batch at
once: its ids may wait up to AI_FILL_WAIT_MS for companions (or until max_batch are there, or
until no batch computes). Under load the clients of a batch that just ended come back over some
milliseconds; starting on the first few of them made batches of a handful, which cost the model
a quarter more per input (MiniLM, one thread: 4.2 ms per text at 16, 3.6 at 32). A lone request,
with every worker idle, still runs at once.

A worker is free again as soon as its batch's model work is done (the lane calls `computed`):
the batch then stores its results on its thread while the next batch already computes, so the
model never waits for the database.

A batch past its deadline is reported to its lane (which fails its jobs) and stops counting
against the worker budget, so the runner goes on; the pool keeps a few spare threads for such
stuck batches, since a Python thread cannot be killed.

Stopping (the API process shutting down) lets the running batches end within a grace period;
ids still waiting are dropped (their jobs stay queued in the database, for the next start's
recovery) and a batch still running after the grace is reported to its lane (`interrupted`).
"""

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

log = logging.getLogger(__name__)

SPARE_THREADS = 2  # batches that may hang past their deadline before the runner stops taking work
# Each worker's last batch may still be storing its results while its next one computes.
THREADS_PER_WORKER = 2


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(eq=False)
class Lane:
    """One model's queue and what to do with its batches: run(ids, computed) runs one batch and
    calls computed() once the model is done with it (then the worker takes the next batch)."""

    name: str
    run: Callable[[list[int], Callable[[], None]], None]
    timed_out: Callable[[list[int], float], None]
    # The ids of a batch still running when the runner stopped, past the grace period.
    interrupted: Callable[[list[int]], None] = lambda _ids: None
    # Job lanes share the AI_QUEUE_MAX bound (and answer 429); internal lanes (post indexing)
    # have a bound of their own and drop work beyond it (a reindex repairs that).
    counts_toward_limit: bool = True
    # Background work (the re-embedding after a change of model) waits while another lane's
    # work is ready to run.
    background: bool = False
    waiting: deque[tuple[int, float]] = field(default_factory=deque)


@dataclass(eq=False)
class _Batch:
    lane: Lane
    items: list[int]
    started: float
    deadline: float
    timed_out: bool = False
    computing: bool = True  # counts against the workers until the lane says it computed


class BatchRunner:
    def __init__(
        self,
        *,
        workers: int,
        max_batch: int,
        max_wait_ms: int,
        fill_wait_ms: int = 0,
        queue_max: int,
        timeout_seconds: float,
    ) -> None:
        self.workers = max(1, workers)
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0, max_wait_ms) / 1000
        self.fill_wait = max(0, fill_wait_ms) / 1000
        self.queue_max = max(1, queue_max)
        self.timeout = timeout_seconds
        self._cond = threading.Condition()
        self._lanes: dict[str, Lane] = {}
        self._pending = 0  # ids waiting on lanes that count toward the limit
        self._reserved = 0  # admissions promised to submitters still writing their row
        self._active = 0  # batches computing that count against the worker budget
        self._busy = 0  # threads running a batch, stuck ones included
        self._threads = self.workers * THREADS_PER_WORKER + SPARE_THREADS
        self._running: set[_Batch] = set()
        self._seconds_per_item = 0.05  # moving average, for Retry-After
        self._stopping = False
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="ai-runner")
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="ai-dispatcher", daemon=True)
        self._dispatcher.start()

    def stop(self, grace: float = 10.0) -> None:
        """Stops taking and dispatching work and waits up to `grace` seconds for the batches
        running; then drops the ids still waiting and reports each batch still running to its
        lane's `interrupted`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + grace
        if self._dispatcher is not None:
            self._dispatcher.join(grace)
        with self._cond:
            while self._busy and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            unfinished = [batch for batch in self._running if not batch.timed_out]
            for lane in self._lanes.values():
                lane.waiting.clear()
            self._pending = 0
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for batch in unfinished:
            log.warning(
                "%s batch of %d still running after the %g s shutdown grace",
                batch.lane.name,
                len(batch.items),
                grace,
            )
            try:
                batch.lane.interrupted(batch.items)
            except Exception:
                log.exception("could not give back the %s batch cut short by the shutdown", batch.lane.name)

    # --- admission --------------------------------------------------------------------------

    def lane(self, name: str, factory: Callable[[], Lane]) -> Lane:
        with self._cond:
            lane = self._lanes.get(name)
            if lane is None:
                lane = self._lanes[name] = factory()
            return lane

    def reserve(self) -> None:
        """Promises room for one job, or raises QueueFull. The submitter then writes its row and
        calls submit(reserved=True), or release() if it could not."""
        with self._cond:
            if self._stopping or self._pending + self._reserved >= self.queue_max:
                raise QueueFull(self._retry_after())
            self._reserved += 1

    def release(self) -> None:
        with self._cond:
            self._reserved = max(0, self._reserved - 1)

    def submit(self, lane: Lane, item: int, *, reserved: bool = False) -> bool:
        """Queues one id; False (nothing queued) only for an internal lane that is full."""
        return self.submit_many(lane, [item], reserved=reserved) == 1

    def submit_many(self, lane: Lane, items: list[int], *, reserved: bool = False) -> int:
        """Queues these ids at once (a batch can take them all); returns how many were queued:
        fewer only on an internal lane that is full."""
        with self._cond:
            if reserved:
                self._reserved = max(0, self._reserved - len(items))
            if not lane.counts_toward_limit:
                items = items[: max(0, self.queue_max - len(lane.waiting))]
            elif items:
                self._pending += len(items)
            if not items:
                return 0
            now = time.monotonic()
            was_empty = not lane.waiting
            lane.waiting.extend((item, now) for item in items)
            # The dispatcher wakes only when it could act: a worker is free for a batch that is
            # ready, or the lane's first id starts its clock (a wake-up per job costs the
            # submitter a GIL switch under load).
            if was_empty or (self._worker_free() and self._ready(lane, now)):
                self._cond.notify_all()
            return len(items)

    def pending(self) -> int:
        with self._cond:
            return self._pending

    def retry_after(self) -> int:
        with self._cond:
            return self._retry_after()

    def _retry_after(self) -> int:
        # Roughly when the queue ahead would have drained at the recent pace.
        estimate = (self._pending + self._reserved + 1) * self._seconds_per_item / self.workers
        return min(60, max(1, math.ceil(estimate)))

    # --- dispatching ------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            expired: list[_Batch] = []
            batch: _Batch | None = None
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    expired = self._expire(now)
                    batch = self._next_batch(now)
                    if expired or batch is not None:
                        break
                    self._cond.wait(self._next_wakeup(now))
            for stuck in expired:
                log.warning(
                    "%s batch of %d timed out after %.1f s", stuck.lane.name, len(stuck.items), self.timeout
                )
                try:
                    stuck.lane.timed_out(stuck.items, self.timeout)
                except Exception:
                    log.exception("could not report the timeout of a %s batch", stuck.lane.name)
            if batch is not None:
                assert self._executor is not None
                self._executor.submit(self._run, batch)

    def _expire(self, now: float) -> list[_Batch]:
        expired = [b for b in self._running if not b.timed_out and b.deadline <= now]
        for batch in expired:
            batch.timed_out = True
            self._free_worker(batch)
        return expired

    def _free_worker(self, batch: _Batch) -> None:
        """The batch stops counting against the workers (called with the lock held)."""
        if batch.computing:
            batch.computing = False
            self._active -= 1

    def _worker_free(self) -> bool:
        return self._active < self.workers and self._busy < self._threads

    def _next_batch(self, now: float) -> _Batch | None:
        if not self._worker_free():
            return None
        ready = [lane for lane in self._lanes.values() if lane.waiting and self._ready(lane, now)]
        if not ready:
            return None
        # Users' jobs before background work, then the oldest first.
        lane = min(ready, key=lambda candidate: (candidate.background, candidate.waiting[0][1]))
        count = min(len(lane.waiting), self.max_batch)
        items = [lane.waiting.popleft()[0] for _ in range(count)]
        if lane.counts_toward_limit:
            self._pending -= count
        batch = _Batch(lane, items, started=now, deadline=now + self.timeout)
        self._running.add(batch)
        self._active += 1
        self._busy += 1
        return batch

    def _ready(self, lane: Lane, now: float) -> bool:
        return len(lane.waiting) >= self.max_batch or now - lane.waiting[0][1] >= self._companion_wait()

    def _companion_wait(self) -> float:
        """How long the oldest id may wait for companions now: longer while a batch computes."""
        return max(self.max_wait, self.fill_wait) if self._active else self.max_wait

    def _next_wakeup(self, now: float) -> float | None:
        moments = [b.deadline for b in self._running if not b.timed_out]
        wait = self._companion_wait()
        if wait:
            moments += [lane.waiting[0][1] + wait for lane in self._lanes.values() if lane.waiting]
        return max(0.001, min(moments) - now) if moments else None

    def _run(self, batch: _Batch) -> None:
        try:
            batch.lane.run(batch.items, partial(self._computed, batch))
        except Exception:
            log.exception("%s batch of %d failed outside its jobs", batch.lane.name, len(batch.items))
        finally:
            elapsed = time.monotonic() - batch.started
            with self._cond:
                self._busy -= 1
                self._free_worker(batch)
                self._running.discard(batch)
                self._seconds_per_item = 0.8 * self._seconds_per_item + 0.2 * elapsed / len(batch.items)
                self._cond.notify_all()

    def _computed(self, batch: _Batch) -> None:
        with self._cond:
            self._free_worker(batch)
            self._cond.notify_all()
