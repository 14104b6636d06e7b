"""Training models from a CSV (administrators): a new model, a new version, the versions."""

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from config import settings
from deps import AdminUser, AnyModel, Pagination, RuntimeDep, SessionDep
from routers.responses import ADMINISTRATORS, JOB_ACCEPTED, JSON_BODY, errors
from schemas import AIModelVersionPublic, JobPublic, ModelCreateForm, Page, TrainingForm
from services.ai import training as ai_training

router = APIRouter(prefix="/admin/ai/models", tags=["admin"], responses=ADMINISTRATORS)

# The CSV at its limit plus the other fields; the route limit replaces the app's small JSON limit
# (Starlette answers 413 as soon as more arrives). The file's own limit is checked when read.
TRAINING_BODY_LIMIT = settings.MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024
TRAINING_NOTES = {
    409: "The name is taken, or the model is not trainable.",
    413: "The file is larger than MAX_UPLOAD_MB.",
    422: "The form failed validation, or the CSV cannot train the model: empty, a non-numeric cell (row "
    "and column named), no such target or feature column, duplicate column names, more than "
    "AI_TRAIN_MAX_ROWS rows.",
    429: "AI_TRAIN_QUEUE_MAX training jobs are in flight; see Retry-After.",
}
MultipartForm = Form(media_type="multipart/form-data")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Create a model trained from a CSV; answers with the training job",
    max_body_size=TRAINING_BODY_LIMIT,
    responses=JOB_ACCEPTED | errors(409, 429, *JSON_BODY, notes=TRAINING_NOTES, service_422=True),
)
def create_model(
    admin: AdminUser,
    form: Annotated[ModelCreateForm, MultipartForm],
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> JobPublic:
    job = ai_training.create_model(session, admin=admin, form=form, ai=runtime.ai)
    response.headers["Location"] = f"{settings.API_PREFIX}/ai/jobs/{job.id}"
    return job


@router.post(
    "/{model_id}/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Train a new version of a model from a CSV; answers with the training job",
    max_body_size=TRAINING_BODY_LIMIT,
    responses=JOB_ACCEPTED
    | errors(404, 409, 429, *JSON_BODY, notes={**TRAINING_NOTES, 404: "No such model."}, service_422=True),
)
def train_version(
    admin: AdminUser,
    model: AnyModel,
    form: Annotated[TrainingForm, MultipartForm],
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> JobPublic:
    job = ai_training.train_version(session, admin=admin, model=model, form=form, ai=runtime.ai)
    response.headers["Location"] = f"{settings.API_PREFIX}/ai/jobs/{job.id}"
    return job


@router.get(
    "/{model_id}/versions",
    response_model=Page[AIModelVersionPublic],
    summary="A trained model's versions with their metrics, newest first",
    responses=errors(404, 422, notes={404: "No such model."}),
)
def list_versions(model: AnyModel, session: SessionDep, page: Pagination) -> Page[AIModelVersionPublic]:
    return ai_training.list_versions(session, model=model, offset=page.offset, limit=page.limit)
