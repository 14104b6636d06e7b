"""Models administrators train from their own data (docs/api.md, "Training models from a
CSV"): make a model and train it, train a new version, list versions; and what a training job
does where it runs.

A training run is an AIlog job like any other (same shape, same long poll, same `ai.job` events
to the administrator's sockets, same recovery), owned by the administrator, on the model's row,
with its parameters as its input; its AIModelVersion row names the files it makes. Nothing is
stored before the CSV has been read and checked (services/ai/training_data.py): a refused upload
leaves no model row, no version, no job and no file. The checked data is kept under MODEL_DIR
(safetensors, a random name) until the run ends, so a worker on another machine or a run after a
restart reads exactly what was checked.

The run itself happens in a child process (ml/train_process.py, started by ml/training.py), on a
queue of its own: the embedded backend's training threads, or CELERY_TRAIN_QUEUE
(services/ai/training_run.py).
"""

import json
import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from crud import pages
from errors import Conflict, TooManyRequests
from ml import tabular
from models import AI, AIlog, AIModelVersion, User
from schemas import AIModelVersionPublic, JobPublic, ModelCreateForm, Page, TrainingForm
from services.ai import training_data
from services.ai.events import publish_public
from services.ai.job_view import job_public
from services.ai.runtime import AIRuntime
from services.ai.training_data import TrainingData
from services.ai.training_run import fail_training
from services.ai.worker import describe_error

log = logging.getLogger(__name__)

TRAINING_RETRY_AFTER_SECONDS = 30


# --- administrators' requests -------------------------------------------------------------


def create_model(session: Session, *, admin: User, form: ModelCreateForm, ai: AIRuntime) -> JobPublic:
    """A new trained model (not usable until its first version succeeds) and its first training
    job, queued."""
    if ai_crud.model_by_name(session, form.name) is not None or ai.models.builtin(form.name) is not None:
        raise Conflict(f"a model named '{form.name}' already exists", code="model_exists")
    _admit(session)
    data = _read(form)
    model = AI(name=form.name, information=form.information, kind=form.kind, is_ready=False)
    return _start(session, admin=admin, model=model, data=data, form=form, ai=ai)


def train_version(
    session: Session, *, admin: User, model: AI, form: TrainingForm, ai: AIRuntime
) -> JobPublic:
    """A new version of a trained model from new data; the current version serves until the new
    one succeeds."""
    if model.kind != tabular.KIND:
        raise Conflict(f"'{model.name}' is a built-in model; it cannot be trained", code="not_trainable")
    _admit(session)
    data = _read(form)
    return _start(session, admin=admin, model=model, data=data, form=form, ai=ai)


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
        status=version.status,
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


def _start(
    session: Session, *, admin: User, model: AI, data: TrainingData, form: TrainingForm, ai: AIRuntime
) -> JobPublic:
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
    publish_public(ai.publisher, [(admin.id, submitted)])
    backend = ai.backend
    if backend is None:  # no app running (a script): the next start's recovery queues it
        return submitted
    try:
        backend.submit_training(job.id)
    except Exception as exc:
        log.exception("could not hand training job %d to the %s backend", job.id, settings.AI_BACKEND)
        fail_training(
            job.id,
            error=f"could not reach the training queue: {describe_error(exc)}",
            events=ai.publisher,
            from_queued=True,
        )
        failed = ai_crud.job(session, job.id)
        assert failed is not None
        return job_public(failed)
    return submitted
