"""What a restart repairs: the jobs, inference and training alike, that the last process left
queued or running."""

import logging
from datetime import timedelta

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from database import session_scope, utcnow
from models import AIlog
from services.ai.backends import Backend
from services.ai.events import Publisher, publish_jobs
from services.ai.training_run import settle
from services.ai.worker import attempts_exhausted

log = logging.getLogger(__name__)

LOST_ERROR = "lost: no worker finished it"


def recover(backend: Backend, events: Publisher) -> tuple[int, int]:
    """Jobs left queued or running when the last process stopped: queued again (the attempt they
    had stays counted) or, past AI_MAX_ATTEMPTS, failed with the reason. A training job goes back
    to the training queue and its version to queued. Returns (requeued, failed).

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
    with session_scope() as session:
        training = {job.id for job in training_crud.training_jobs_in_flight(session)}
        for job in ai_crud.left_behind(session, started_before=started_before):
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
    settle()  # versions whose training job ended without them
    for job, is_training in requeue:
        if is_training:
            backend.submit_training(job.id)
        else:
            backend.resubmit_job(job.ai.name, job.id)
    if requeue or failed:
        log.warning(
            "recovered AI jobs after a restart: %d queued again, %d failed", len(requeue), len(failed)
        )
    return len(requeue), len(failed)
