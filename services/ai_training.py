"""Models administrators train from their own data (DESIGN.md §3 AI, training): make a model and
train it, train a new version, list versions; and what a training job does where it runs.

A training run is an AIlog job like any other (same shape, same long poll, same `ai.job` events
to the administrator's sockets, same recovery), owned by the administrator, on the model's row,
with its parameters as its input; its AIModelVersion row names the files it makes. Nothing is
stored before the CSV has been read and checked (services/training_data.py): a refused upload
leaves no model row, no version, no job and no file. The checked data is kept under MODEL_DIR
(safetensors, a random name) until the run ends, so a worker on another machine or a run after a
restart reads exactly what was checked.

The run itself happens in a child process (ml/train_process.py, started by ml/training.py), on a
queue of its own: the embedded backend's training threads, or CELERY_TRAIN_QUEUE.
"""

import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from crud import pages
from database import SessionLocal, utcnow
from errors import Conflict, TooManyRequests
from ml import registry, tabular
from ml.backends import Backend
from ml.training import TrainingProcesses
from models import AI, AIlog, AIModelVersion, User
from schemas import AIModelVersionPublic, JobPublic, ModelCreateForm, Page, TrainingForm
from services import ai as ai_service
from services import training_data
from services.ai_worker import attempts_exhausted, describe_error, job_public, publish_jobs, publish_public
from services.training_data import TrainingData

log = logging.getLogger(__name__)

TRAINING_RETRY_AFTER_SECONDS = 30
LOST_ERROR = "lost: no worker finished it"


# --- administrators' requests -------------------------------------------------------------


def create_model(session: Session, *, admin: User, form: ModelCreateForm) -> JobPublic:
    """A new trained model (not usable until its first version succeeds) and its first training
    job, queued."""
    if ai_crud.model_by_name(session, form.name) is not None or registry.builtin(form.name) is not None:
        raise Conflict(f"a model named '{form.name}' already exists", code="model_exists")
    _admit(session)
    data = _read(form)
    model = AI(name=form.name, information=form.information, kind=form.kind, is_ready=False)
    return _start(session, admin=admin, model=model, data=data, form=form)


def train_version(session: Session, *, admin: User, model: AI, form: TrainingForm) -> JobPublic:
    """A new version of a trained model from new data; the current version serves until the new
    one succeeds."""
    if model.kind != tabular.KIND:
        raise Conflict(f"'{model.name}' is a built-in model; it cannot be trained", code="not_trainable")
    _admit(session)
    data = _read(form)
    return _start(session, admin=admin, model=model, data=data, form=form)


def list_versions(session: Session, *, model: AI, offset: int, limit: int) -> Page[AIModelVersionPublic]:
    """The model's versions, newest first, each with its parameters and (once it succeeded) its
    metrics; `is_current` marks the one inference uses."""
    rows, total = pages.fetch_page(
        session,
        training_crud.version_listing(model.id),
        count_query=training_crud.version_listing_count(model.id),
        offset=offset,
        limit=limit,
    )
    current = training_crud.current_version_number(session, model.id)
    items = [_version_public(version, current=current) for version in rows]
    return Page[AIModelVersionPublic](items=items, total=total, offset=offset, limit=limit)


def _version_public(version: AIModelVersion, *, current: int | None) -> AIModelVersionPublic:
    return AIModelVersionPublic(
        id=version.id,
        model_id=version.ai_id,
        version=version.version,
        status=version.status,  # type: ignore[arg-type]
        parameters=json.loads(version.parameters),
        metrics=json.loads(version.metrics) if version.metrics is not None else None,
        training_job_id=version.training_job_id,
        create_date=version.create_date,
        finish_date=version.finish_date,
        is_current=version.version == current and version.status == ai_crud.SUCCEEDED,
    )


def _admit(session: Session) -> None:
    if training_crud.count_training_in_flight(session) >= settings.AI_TRAIN_QUEUE_MAX:
        error = TooManyRequests(
            f"{settings.AI_TRAIN_QUEUE_MAX} training jobs are already queued or running; try again later",
            retry_after=TRAINING_RETRY_AFTER_SECONDS,
        )
        error.code = "training_queue_full"
        raise error


def _read(form: TrainingForm) -> TrainingData:
    text = training_data.read_upload(form.file.file)
    return training_data.parse(text, target=form.target, features=form.feature_names())


def _start(session: Session, *, admin: User, model: AI, data: TrainingData, form: TrainingForm) -> JobPublic:
    """Keeps the checked data, stores the version and its job in one commit, and hands the job to
    the training queue. On any failure before the commit, nothing stays."""
    key = tabular.new_key()
    dataset = tabular.dataset_path(settings.MODEL_DIR, key)
    parameters = {
        "target": data.target,
        "features": data.features,
        "epochs": form.epochs,
        "learning_rate": form.learning_rate,
        "hidden_size": form.hidden_size,
        "rows": data.rows,
    }
    tabular.save_dataset(dataset, data.columns, data.values)
    try:
        if model.id is None:
            session.add(model)
            session.flush()
        number = training_crud.next_version_number(session, model.id)
        job = AIlog(
            user_id=admin.id, ai_id=model.id, content=json.dumps({"train": {"version": number, **parameters}})
        )
        session.add(job)
        session.flush()
        version = AIModelVersion(
            ai_id=model.id,
            version=number,
            parameters=json.dumps(parameters),
            file_key=key,
            training_job_id=job.id,
        )
        session.add(version)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        dataset.unlink(missing_ok=True)
        raise Conflict(
            "another request made this model or version at the same moment; try again", code="conflict"
        ) from exc
    except BaseException:
        session.rollback()
        dataset.unlink(missing_ok=True)
        raise
    submitted = job_public(job, model_name=model.name, structured_input=True)
    publish_public([(admin.id, submitted)])
    backend = ai_service.current_backend()
    if backend is None:  # no app running (a script): the next start's recovery queues it
        return submitted
    try:
        backend.submit_training(job.id)
    except Exception as exc:
        log.exception("could not hand training job %d to the %s backend", job.id, settings.AI_BACKEND)
        fail_training(
            job.id, error=f"could not reach the training queue: {describe_error(exc)}", from_queued=True
        )
        failed = ai_crud.job(session, job.id)
        assert failed is not None
        return job_public(failed)
    return submitted


# --- where a training job runs -------------------------------------------------------------


class ProgressReport:
    """Stores a run's progress in its job's result and pushes it to the owner, at most every
    AI_TRAIN_PROGRESS_SECONDS (and always after the first epoch)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.last: dict[str, Any] | None = None
        self._stored_at: float | None = None

    def __call__(self, epoch: int, epochs: int, loss: float) -> None:
        self.last = {"epoch": epoch, "epochs": epochs, "loss": loss}
        now = time.monotonic()
        if self._stored_at is not None and now - self._stored_at < settings.AI_TRAIN_PROGRESS_SECONDS:
            return
        self._stored_at = now
        with SessionLocal() as session:
            stored = training_crud.set_progress(session, self.job_id, json.dumps({"progress": self.last}))
            session.commit()
            if stored:
                publish_jobs(ai_crud.jobs(session, [self.job_id]))


def run_training(job_id: int, processes: TrainingProcesses, *, redelivered: bool = False) -> None:
    """Runs one training job: claim it (queued -> running, the attempt counted), train in a child
    process, then store the version and the job's ending in one commit.

    redelivered: the Celery path, where a message comes back when its worker died; a job that
    worker left `running` is taken again within AI_MAX_ATTEMPTS, and failed past them.
    """
    with SessionLocal() as session:
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
        publish_jobs(ai_crud.jobs(session, claimed + gave_up))
    if not claimed:
        settle()  # canceled before it ran, or out of attempts
        return
    if version is None:  # not a training job (never made so by this module)
        fail_training(job_id, error="this job has no model version to train")
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
    progress = ProgressReport(job_id)
    outcome = processes.run(request, progress=progress, timeout=settings.train_timeout_seconds)
    if outcome.interrupted:
        log.info("training job %d interrupted by a shutdown; the next start runs it again", job_id)
        return  # still running in the database: recovery queues it again
    if outcome.metrics is not None:
        _end_succeeded(job_id, version, metrics=outcome.metrics, progress=progress.last)
    else:
        fail_training(job_id, error=outcome.error or "training failed", progress=progress.last)


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
    job_id: int, version: AIModelVersion, *, metrics: dict[str, Any], progress: dict[str, Any] | None
) -> None:
    """The job and its version succeed in one commit; from then on the model serves this version.
    The uploaded data goes before anyone hears of the ending."""
    now = utcnow()
    result = {"version": version.version, "metrics": metrics, "progress": progress}
    with SessionLocal() as session:
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
        publish_jobs(ai_crud.jobs(session, [job_id]))


def fail_training(
    job_id: int, *, error: str, progress: dict[str, Any] | None = None, from_queued: bool = False
) -> None:
    """Fails a training job (still running, or still queued with from_queued) and its version in
    one commit; the run's files go before anyone hears of the ending."""
    now = utcnow()
    with SessionLocal() as session:
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
        publish_jobs(ai_crud.jobs(session, [job_id]))


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
    with SessionLocal() as session:
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


def recover(backend: Backend) -> set[int]:
    """At startup (services/ai.recover), the training jobs left queued or running, by the rules of
    every job: queued again (the attempt stays counted) or, past AI_MAX_ATTEMPTS, failed. With
    Celery, only a run older than any worker may take is failed as lost; the broker holds the
    others. Returns the ids of all training jobs in flight (the general recovery skips them)."""
    requeue: list[int] = []
    failed: list[int] = []
    with SessionLocal() as session:
        in_flight = training_crud.training_jobs_in_flight(session)
        now = utcnow()
        lost_before = now - timedelta(
            seconds=settings.CELERY_VISIBILITY_TIMEOUT_SECONDS + settings.celery_train_hard_time_limit
        )
        for job in in_flight:
            if not backend.recovers_at_startup:
                started = job.started_date or job.create_date
                lost = job.status == ai_crud.RUNNING and started < lost_before
                if lost and ai_crud.finish(session, job.id, status=ai_crud.FAILED, now=now, error=LOST_ERROR):
                    failed.append(job.id)
            elif job.status == ai_crud.RUNNING and job.attempts >= settings.AI_MAX_ATTEMPTS:
                if ai_crud.finish(
                    session, job.id, status=ai_crud.FAILED, now=now, error=attempts_exhausted()
                ):
                    failed.append(job.id)
            elif job.status == ai_crud.QUEUED or ai_crud.requeue(session, job.id):
                training_crud.version_back_to_queued(session, job.id)
                requeue.append(job.id)
        session.commit()
        publish_jobs(ai_crud.jobs(session, failed))
    settle()
    for job_id in requeue:
        backend.submit_training(job_id)
    if requeue or failed:
        log.warning(
            "recovered training jobs after a restart: %d queued again, %d failed", len(requeue), len(failed)
        )
    return {job.id for job in in_flight}
