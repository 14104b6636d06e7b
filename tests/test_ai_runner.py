"""The embedded runner's batching (ml/runner.py), on its own: real threads, a lane that records
its batches and holds each until the test lets it go. No database, no model."""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ml.runner import BatchRunner, Lane

PATIENT = 30_000  # ms: longer than any test waits, so only filling or a free runner starts a batch


@dataclass
class HeldLane:
    """Records each batch as it starts; a batch computes until `release` is set."""

    batches: list[list[int]] = field(default_factory=list)
    started: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    def run(self, items: list[int], computed: Callable[[], None]) -> None:
        with self.started:
            self.batches.append(items)
            self.started.notify_all()
        self.release.wait(10)
        computed()

    def wait_for_batches(self, count: int, timeout: float = 5.0) -> list[list[int]]:
        with self.started:
            assert self.started.wait_for(lambda: len(self.batches) >= count, timeout), self.batches
            return list(self.batches)

    def lane(self) -> Lane:
        return Lane(name="held", run=self.run, timed_out=lambda _items, _seconds: None)


@pytest.fixture
def held() -> Iterator[HeldLane]:
    lane = HeldLane()
    yield lane
    lane.release.set()


StartRunner = Callable[..., tuple[BatchRunner, Lane]]


@pytest.fixture
def start_runner(held: HeldLane) -> Iterator[StartRunner]:
    runners: list[BatchRunner] = []

    def start(**options: int) -> tuple[BatchRunner, Lane]:
        runner = BatchRunner(
            **{"workers": 2, "max_batch": 4, "max_wait_ms": 0, "queue_max": 100, "timeout_seconds": 30}
            | options
        )
        runner.start()
        runners.append(runner)
        return runner, runner.lane("held", held.lane)

    yield start
    held.release.set()
    for runner in runners:
        runner.stop(grace=5)


def one_computing(start_runner: StartRunner, held: HeldLane, **options: int) -> tuple[BatchRunner, Lane]:
    """A runner with these options whose first batch, item 1 alone, is computing (held)."""
    runner, lane = start_runner(**options)
    runner.submit(lane, 1)
    assert held.wait_for_batches(1) == [[1]]
    return runner, lane


def test_a_lone_item_runs_at_once_when_every_worker_is_idle(
    start_runner: StartRunner, held: HeldLane
) -> None:
    runner, lane = start_runner(fill_wait_ms=PATIENT)
    runner.submit(lane, 1)
    assert held.wait_for_batches(1, timeout=2) == [[1]]


def test_beside_a_computing_batch_a_free_worker_waits_for_a_full_batch(
    start_runner: StartRunner, held: HeldLane
) -> None:
    runner, lane = one_computing(start_runner, held, fill_wait_ms=PATIENT)
    for item in (2, 3, 4):
        runner.submit(lane, item)
    time.sleep(0.3)
    assert held.batches == [[1]], "a worker started a partial batch beside a computing one"
    runner.submit(lane, 5)
    assert held.wait_for_batches(2) == [[1], [2, 3, 4, 5]]


def test_a_batch_that_does_not_fill_starts_once_the_fill_wait_is_over(
    start_runner: StartRunner, held: HeldLane
) -> None:
    runner, lane = one_computing(start_runner, held, fill_wait_ms=200)
    queued = time.monotonic()
    runner.submit(lane, 2)
    assert held.wait_for_batches(2) == [[1], [2]]
    assert time.monotonic() - queued >= 0.15


def test_what_waits_to_fill_starts_as_soon_as_no_batch_computes(
    start_runner: StartRunner, held: HeldLane
) -> None:
    runner, lane = one_computing(start_runner, held, fill_wait_ms=PATIENT)
    runner.submit(lane, 2)
    time.sleep(0.2)
    held.release.set()  # the computing batch ends: nothing is left to wait beside
    assert held.wait_for_batches(2, timeout=2) == [[1], [2]]


def test_with_one_worker_the_next_batch_takes_what_queued_meanwhile(
    start_runner: StartRunner, held: HeldLane
) -> None:
    runner, lane = one_computing(start_runner, held, workers=1, fill_wait_ms=PATIENT)
    for item in (2, 3):
        runner.submit(lane, item)
    held.release.set()
    assert held.wait_for_batches(2, timeout=2) == [[1], [2, 3]]


def test_background_work_waits_while_a_job_is_ready(start_runner: StartRunner, held: HeldLane) -> None:
    """The re-embedding after a change of model queued first; a user's job queued after it
    still goes first once the one worker is free."""
    runner, lane = one_computing(start_runner, held, workers=1)
    background = runner.lane(
        "background",
        lambda: Lane(name="background", run=held.run, timed_out=lambda _i, _s: None, background=True),
    )
    assert runner.submit_many(background, [10, 11, 12]) == 3
    runner.submit(lane, 2)
    held.release.set()
    assert held.wait_for_batches(3)[1:] == [[2], [10, 11, 12]]


def test_submit_many_queues_ids_for_one_batch(start_runner: StartRunner, held: HeldLane) -> None:
    runner, lane = one_computing(start_runner, held, workers=1)
    assert runner.submit_many(lane, [2, 3, 4]) == 3
    held.release.set()
    assert held.wait_for_batches(2)[1] == [2, 3, 4]
