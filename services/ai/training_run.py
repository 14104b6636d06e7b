"""Where a training job runs (the embedded backend's training threads, or a Celery worker on
CELERY_TRAIN_QUEUE): claim it, train in a child process (ml/training.py runs ml/train_process.py),
then store the version and the job's ending in one commit; and the cleaning up of versions whose
job ended without them."""

import json
import logging
import time
from typing import Any

from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from database import session_scope, utcnow
from ml import tabular
from ml.training import TrainingProcesses
from models import AIModelVersion
from services.ai.events import Publisher, publish_jobs
from services.ai.worker import attempts_exhausted

log = logging.getLogger(__name__)


class ProgressReport:
    """Stores a run's progress in its job's result and pushes it to the owner, at most every
    AI_TRAIN_PROGRESS_SECONDS (and always after the first epoch)."""

    def __init__(self, job_id: int, events: Publisher) -> None:
        self.job_id = job_id
        self.events = events
        self.last: dict[str, Any] | None = None
        self._stored_at: float | None = None

    def __call__(self, epoch: int, epochs: int, loss: float) -> None:
        self.last = {"epoch": epoch, "epochs": epochs, "loss": loss}
        now = time.monotonic()
        if self._stored_at is not None and now - self._stored_at < settings.AI_TRAIN_PROGRESS_SECONDS:
            return
        self._stored_at = now
        with session_scope() as session:
            stored = training_crud.set_progress(session, self.job_id, json.dumps({"progress": self.last}))
            session.commit()
            if stored:
                publish_jobs(self.events, ai_crud.jobs(session, [self.job_id]))


def run_training(
    job_id: int, processes: TrainingProcesses, *, events: Publisher, redelivered: bool = False
) -> None:
    """Runs one training job: claim it (queued -> running, the attempt counted), train in a child
    process, then store the version and the job's ending in one commit.

    redelivered: the Celery path, where a message comes back when its worker died; a job that
    worker left `running` is taken again within AI_MAX_ATTEMPTS, and failed past them.
    """
    with session_scope() as session:
        claimed = ai_crud.claim(
            session, [job_id], now=utcnow(), also_running=redelivered, max_attempts=settings.AI_MAX_ATTEMPTS
        )
        gave_up = [job_id] if redelivered and not claimed and _give_up(session, job_id) else []
        version = training_crud.version_by_job(session, job_id)
        if claimed and version is not None:
            training_crud.set_version_status(
                session, version.id, status=ai_crud.RUNNING, from_statuses=training_crud.PENDING
            )
        session.commit()
        publish_jobs(events, ai_crud.jobs(session, claimed + gave_up))
    if not claimed:
        settle()  # canceled before it ran, or out of attempts
        return
    if version is None:  # not a training job (never made so by this module)
        fail_training(job_id, error="this job has no model version to train", events=events)
        return
    parameters = json.loads(version.parameters)
    request = {
        "model_dir": str(settings.MODEL_DIR),
        "key": version.file_key,
        "version": version.version,
        "features": parameters["features"],
        "target": parameters["target"],
        "epochs": parameters["epochs"],
        "learning_rate": parameters["learning_rate"],
        "hidden_size": parameters["hidden_size"],
        "torch_threads": settings.AI_TRAIN_TORCH_THREADS,
        "nice": settings.AI_TRAIN_NICE,
    }
    progress = ProgressReport(job_id, events)
    outcome = processes.run(request, progress=progress, timeout=settings.train_timeout_seconds)
    if outcome.interrupted:
        log.info("training job %d interrupted by a shutdown; the next start runs it again", job_id)
        return  # still running in the database: recovery queues it again
    if outcome.metrics is not None:
        _end_succeeded(job_id, version, metrics=outcome.metrics, progress=progress.last, events=events)
    else:
        fail_training(job_id, error=outcome.error or "training failed", progress=progress.last, events=events)


def _give_up(session: Session, job_id: int) -> bool:
    """A redelivered job that has used its attempts (its worker died each time) is failed."""
    return ai_crud.finish(
        session,
        job_id,
        status=ai_crud.FAILED,
        now=utcnow(),
        error=attempts_exhausted(),
        from_statuses=ai_crud.IN_FLIGHT,
    )


def _end_succeeded(
    job_id: int,
    version: AIModelVersion,
    *,
    metrics: dict[str, Any],
    progress: dict[str, Any] | None,
    events: Publisher,
) -> None:
    """The job and its version succeed in one commit; from then on the model serves this version.
    The uploaded data goes before anyone hears of the ending."""
    now = utcnow()
    result = {"version": version.version, "metrics": metrics, "progress": progress}
    with session_scope() as session:
        if ai_crud.finish(session, job_id, status=ai_crud.SUCCEEDED, now=now, result=json.dumps(result)):
            training_crud.set_version_status(
                session,
                version.id,
                status=ai_crud.SUCCEEDED,
                from_statuses=training_crud.PENDING,
                now=now,
                metrics=json.dumps(metrics),
            )
            training_crud.mark_ready(session, version.ai_id)
            session.commit()
            tabular.dataset_path(settings.MODEL_DIR, version.file_key).unlink(missing_ok=True)
        else:  # ended otherwise meanwhile (failed by a recovery, or run again after a redelivery)
            session.rollback()
            _discard_unless_succeeded(session, job_id)
        publish_jobs(events, ai_crud.jobs(session, [job_id]))


def fail_training(
    job_id: int,
    *,
    error: str,
    events: Publisher,
    progress: dict[str, Any] | None = None,
    from_queued: bool = False,
) -> None:
    """Fails a training job (still running, or still queued with from_queued) and its version in
    one commit; the run's files go before anyone hears of the ending."""
    now = utcnow()
    with session_scope() as session:
        ended = ai_crud.finish(
            session,
            job_id,
            status=ai_crud.FAILED,
            now=now,
            error=error,
            result=json.dumps({"progress": progress}) if progress is not None else None,
            from_statuses=(ai_crud.QUEUED,) if from_queued else (ai_crud.RUNNING,),
        )
        version = training_crud.version_by_job(session, job_id)
        if ended and version is not None:
            training_crud.set_version_status(
                session, version.id, status=ai_crud.FAILED, from_statuses=training_crud.PENDING, now=now
            )
        session.commit()
        if ended:
            _discard_unless_succeeded(session, job_id)
        publish_jobs(events, ai_crud.jobs(session, [job_id]))


def _discard_unless_succeeded(session: Session, job_id: int) -> None:
    """The files of a run whose version did not succeed: its data and any half-made weights (if
    another run of the same version succeeded, they are that version's and stay)."""
    version = training_crud.version_by_job(session, job_id)
    if version is not None and version.status != ai_crud.SUCCEEDED:
        tabular.dataset_path(settings.MODEL_DIR, version.file_key).unlink(missing_ok=True)
        tabular.delete_model(settings.MODEL_DIR, version.file_key)


def settle() -> None:
    """Versions whose training job ended without them (failed, canceled, given up) take the
    job's status; their data set and any half-made files go."""
    with session_scope() as session:
        unsettled = [
            (version, status)
            for version, status in training_crud.unsettled_versions(session)
            if status in (ai_crud.FAILED, ai_crud.CANCELED)
        ]
        now = utcnow()
        settled = [
            version
            for version, status in unsettled
            if training_crud.set_version_status(
                session, version.id, status=status, from_statuses=training_crud.PENDING, now=now
            )
        ]
        session.commit()
    for version in settled:
        tabular.dataset_path(settings.MODEL_DIR, version.file_key).unlink(missing_ok=True)
        tabular.delete_model(settings.MODEL_DIR, version.file_key)
