"""Training models from a CSV (administrators): a new model, a new version, the versions."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, status

from config import settings
from deps import AdminUser, AnyModel, Pagination, SessionDep
from schemas import AIModelVersionPublic, JobPublic, ModelCreateForm, Page, TrainingForm
from services import ai_training

router = APIRouter(prefix="/admin/ai/models", tags=["admin", "ai"])

# The CSV at its limit plus the other fields; the route limit replaces the app's small JSON limit
# (Starlette answers 413 as soon as more arrives). The file's own limit is checked when read.
TRAINING_BODY_LIMIT = settings.MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024
TRAINING_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {"description": "The name is taken, or the model is not trainable."},
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The file is larger than MAX_UPLOAD_MB."},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "The CSV cannot train the model: empty, a non-numeric cell (row and column named), "
        "no such target or feature column, duplicate column names, more than AI_TRAIN_MAX_ROWS rows."
    },
    status.HTTP_429_TOO_MANY_REQUESTS: {"description": "AI_TRAIN_QUEUE_MAX training jobs are in flight."},
}
MultipartForm = Form(media_type="multipart/form-data")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Create a model trained from a CSV; answers with the training job",
    max_body_size=TRAINING_BODY_LIMIT,
    responses=TRAINING_ERRORS,
)
def create_model(
    admin: AdminUser,
    form: Annotated[ModelCreateForm, MultipartForm],
    session: SessionDep,
    response: Response,
) -> JobPublic:
    job = ai_training.create_model(session, admin=admin, form=form)
    response.headers["Location"] = f"{settings.API_PREFIX}/ai/jobs/{job.id}"
    return job


@router.post(
    "/{model_id}/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Train a new version of a model from a CSV; answers with the training job",
    max_body_size=TRAINING_BODY_LIMIT,
    responses=TRAINING_ERRORS,
)
def train_version(
    admin: AdminUser,
    model: AnyModel,
    form: Annotated[TrainingForm, MultipartForm],
    session: SessionDep,
    response: Response,
) -> JobPublic:
    job = ai_training.train_version(session, admin=admin, model=model, form=form)
    response.headers["Location"] = f"{settings.API_PREFIX}/ai/jobs/{job.id}"
    return job


@router.get(
    "/{model_id}/versions",
    response_model=Page[AIModelVersionPublic],
    summary="A trained model's versions with their metrics, newest first",
)
def list_versions(model: AnyModel, session: SessionDep, page: Pagination) -> Page[AIModelVersionPublic]:
    return ai_training.list_versions(session, model=model, offset=page.offset, limit=page.limit)
