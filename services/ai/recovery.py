"""What a restart repairs: the jobs, inference and training alike, that the last process left
queued or running; and, with the embedded runner, what a live process repairs every lease
period: the jobs of another process on the database that stopped renewing its leases."""

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from database import session_scope, utcnow, write_turns
from models import AIlog
from services.ai.backends import Backend
from services.ai.events import Publisher, publish_jobs
from services.ai.leases import Leases
from services.ai.training_run import settle
from services.ai.worker import attempts_exhausted

log = logging.getLogger(__name__)

LOST_ERROR = "lost: no worker finished it"


def recover(backend: Backend, events: Publisher, *, at_start: bool = True) -> tuple[int, int]:
    """Jobs left queued or running when the last process stopped: queued again (the attempt they
    had stays counted) or, past AI_MAX_ATTEMPTS, failed with the reason. A training job goes back
    to the training queue and its version to queued. Returns (requeued, failed).

    With the embedded runner several API processes may share the database, each job leased to
    the process whose runner queued or runs it (services/ai/leases.py): only jobs no process
    holds are taken (no lease, or one that ran out), each leased to this process by the same
    conditional UPDATE, so of two processes recovering at once one takes it. at_start=False: the
    sweep of a live process (its heartbeat, once per lease period), for the jobs of a process
    that died since.

    With Celery the broker still holds their messages and a live worker may be running them, so
    only jobs `running` for longer than any worker may run one (the broker would have handed a
    dead worker's message out again by then; a training run has its own, longer limit) count as
    lost, and are failed.
    """
    now = utcnow()
    visibility = settings.CELERY_VISIBILITY_TIMEOUT_SECONDS
    lost_after = {  # by whether the job is a training run
        False: timedelta(seconds=visibility + settings.celery_hard_time_limit),
        True: timedelta(seconds=visibility + settings.celery_train_hard_time_limit),
    }
    started_before = None if backend.recovers_at_startup else now - min(lost_after.values())
    requeue: list[tuple[AIlog, bool]] = []
    failed: list[int] = []
    # SQLite: one writer at a time in this process (a sweep beside a request's write).
    with session_scope() as session, write_turns.turn():
        left = _left_behind(session, backend.leases, now=now, started_before=started_before)
        training = {job.id for job in training_crud.training_jobs_in_flight(session)} if left else set()
        for job in left:
            is_training = job.id in training
            if not backend.recovers_at_startup:
                started = job.started_date or job.create_date
                lost = job.status == ai_crud.RUNNING and started < now - lost_after[is_training]
                if lost and ai_crud.finish(session, job.id, status=ai_crud.FAILED, now=now, error=LOST_ERROR):
                    failed.append(job.id)
            elif job.status == ai_crud.RUNNING and job.attempts >= settings.AI_MAX_ATTEMPTS:
                if ai_crud.finish(
                    session, job.id, status=ai_crud.FAILED, now=now, error=attempts_exhausted()
                ):
                    failed.append(job.id)
            elif job.status == ai_crud.QUEUED or ai_crud.requeue(session, job.id):
                if is_training:
                    training_crud.version_back_to_queued(session, job.id)
                requeue.append((job, is_training))
        session.commit()
        publish_jobs(events, ai_crud.jobs(session, failed))
    if at_start or failed:
        settle()  # versions whose training job ended without them
    for job, is_training in requeue:
        if is_training:
            backend.submit_training(job.id)
        else:
            backend.resubmit_job(job.ai.name, job.id)
    if requeue or failed:
        log.warning(
            "recovered AI jobs %s: %d queued again, %d failed",
            "after a restart" if at_start else "of a process that stopped renewing their leases",
            len(requeue),
            len(failed),
        )
    return len(requeue), len(failed)


def _left_behind(
    session: Session, leases: Leases | None, *, now: datetime, started_before: datetime | None
) -> list[AIlog]:
    """The jobs in flight this recovery looks at. With leases (the embedded runner): those no
    process holds, leased to this one now (those another process took first are left out)."""
    if leases is None:
        return ai_crud.left_behind(session, started_before=started_before)
    free = ai_crud.left_behind(session, started_before=None, lost_to=(leases.owner, now))
    job_ids = [job.id for job in free]
    taken = set(
        ai_crud.take_leases(
            session, job_ids, owner=leases.owner, until=leases.until(now), now=now, lost_only=True
        )
    )
    return [job for job in free if job.id in taken]
