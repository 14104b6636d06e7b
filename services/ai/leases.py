"""The embedded runner's hold on its jobs, so that several API processes can share one database.

A job the runner of this process has queued (in memory) or is running carries this process's
lease: its owner id (host:pid:random, new with each app) and an expiry, AI_LEASE_SECONDS ahead,
which a heartbeat renews every third of that. Another process takes the job (recovery, at its
start and in a sweep every lease period) only when the lease ran out: the process holding it
died, or stopped renewing. A process that stops gives its leases back, so what it leaves is
taken at once; one killed leaves them to expire. Celery has no leases: its broker redelivers.

Times are the processes' clocks (UTC): the machines sharing a database must keep them in step
(NTP), well within AI_LEASE_SECONDS.
"""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from crud import ai as ai_crud
from database import session_scope, utcnow, write_turns

log = logging.getLogger(__name__)

SWEEP_EVERY_BEATS = 3  # the sweep for lost jobs: once per lease period
SHORTEST_BEAT_SECONDS = 0.05


def new_owner() -> str:
    """This process's id as a lease names it (the column holds 64 characters)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """One app's leases: its owner id, how long a lease lasts, and the heartbeat that renews
    them (and sweeps for the jobs of processes that stopped renewing theirs)."""

    def __init__(self, seconds: float) -> None:
        self.owner = new_owner()
        self.seconds = seconds
        self._stopping = threading.Event()
        self._sweeping = True
        self._thread: threading.Thread | None = None
        # Whether this process ever took a lease: one that never did has none to give back (an
        # app started and stopped with no job, as most tests' apps are, writes nothing).
        self._dated = False

    def until(self, now: datetime) -> datetime:
        """When a lease taken now runs out (every lease this process takes is dated here)."""
        self._dated = True
        return now + timedelta(seconds=self.seconds)

    def take(self, job_ids: Sequence[int]) -> list[int]:
        """Leases these jobs to this process if they are in flight and free (no lease, an
        expired one, or already this process's); returns those it holds."""
        now = utcnow()
        with session_scope() as session, write_turns.turn():
            taken = ai_crud.take_leases(session, job_ids, owner=self.owner, until=self.until(now), now=now)
            session.commit()
        return taken

    def renew(self) -> int:
        """Pushes back the expiry of this process's leases; how many it renewed."""
        with session_scope() as session, write_turns.turn():
            renewed = ai_crud.renew_leases(session, owner=self.owner, until=self.until(utcnow()))
            session.commit()
        return renewed

    def release(self) -> int:
        """Gives back this process's leases (it stops): another process may take the jobs now."""
        with session_scope() as session, write_turns.turn():
            released = ai_crud.release_leases(session, owner=self.owner)
            session.commit()
        return released

    # --- the heartbeat ----------------------------------------------------------------------

    def keep(self, sweep: Callable[[], object] | None = None) -> None:
        """Starts renewing the leases every third of their length, and calling sweep (the
        recovery of jobs whose lease ran out) every SWEEP_EVERY_BEATS beats."""
        self._stopping.clear()
        self._sweeping = True
        self._thread = threading.Thread(target=self._beat, args=(sweep,), name="ai-leases", daemon=True)
        self._thread.start()

    def stop_sweeping(self) -> None:
        """No more sweeps (the runner is stopping: it takes no more work); renewals go on."""
        self._sweeping = False

    def stop(self) -> None:
        """Stops the heartbeat, then gives back the leases."""
        self._sweeping = False
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(max(self.seconds, 5))
            self._thread = None
        if not self._dated:
            return
        try:
            released = self.release()
        except Exception:
            log.exception("could not give back the AI job leases; they expire in %g s", self.seconds)
            return
        if released:
            log.info("gave back the leases of %d AI job(s) for another process to take", released)

    def _beat(self, sweep: Callable[[], object] | None) -> None:
        beats = 0
        while not self._stopping.wait(max(SHORTEST_BEAT_SECONDS, self.seconds / 3)):
            beats += 1
            try:
                self.renew()
                if sweep is not None and self._sweeping and beats % SWEEP_EVERY_BEATS == 0:
                    sweep()
            except Exception:
                # The database may be away for a moment: the next beat tries again (past the
                # lease's length, other processes may take these jobs and run them too).
                log.warning("AI job leases: the heartbeat failed", exc_info=True)
