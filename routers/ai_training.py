"""Training models from a CSV (administrators): a new model, a new version, the versions."""

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from config import settings
from deps import AdminUser, AnyModel, Pagination, RuntimeDep, SessionDep
from routers.responses import ADMINISTRATORS, JOB_ACCEPTED, JSON_BODY, Refusal, errors, refusal
from schemas import AIModelVersionPublic, JobPublic, ModelCreateForm, Page, TrainingForm
from services.ai import training as ai_training

router = APIRouter(prefix="/admin/ai/models", tags=["admin"], responses=ADMINISTRATORS)

# The CSV at its limit plus the other fields; the route limit replaces the app's small JSON limit
# (Starlette answers 413 as soon as more arrives). The file's own limit is checked when read.
TRAINING_BODY_LIMIT = settings.MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024
# `conflict`: another request made the same model or version at the same moment.
TRAINING_NOTES: dict[int, str | Refusal] = {
    413: "The file is larger than MAX_UPLOAD_MB.",
    422: refusal(
        "The form failed validation, or the CSV cannot train the model: empty, a non-numeric cell (row "
        "and column named), no such target or feature column, duplicate column names, more than "
        "AI_TRAIN_MAX_ROWS rows.",
        "invalid_training_data",
        "non_numeric_cell",
        "missing_target",
        "missing_features",
        "duplicate_columns",
        "too_many_rows",
        empty_file="the file is empty",
    ),
    429: refusal(
        "AI_TRAIN_QUEUE_MAX training jobs are in flight; see Retry-After.",
        rate_limited="2 training jobs are already queued or running; try again later",
    ),
}
NAME_TAKEN = refusal("The name is taken.", "model_exists", "conflict")
NOT_TRAINABLE = refusal("The model is not trainable (a built-in one).", "not_trainable", "conflict")
NO_SUCH_MODEL = refusal("No such model.", not_found="model not found")
MultipartForm = Form(media_type="multipart/form-data")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Create a model trained from a CSV; answers with the training job",
    max_body_size=TRAINING_BODY_LIMIT,
    responses=JOB_ACCEPTED | errors(409, 429, *JSON_BODY, notes={**TRAINING_NOTES, 409: NAME_TAKEN}),
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
    | errors(404, 409, 429, *JSON_BODY, notes={**TRAINING_NOTES, 404: NO_SUCH_MODEL, 409: NOT_TRAINABLE}),
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
    responses=errors(404, 422, notes={404: NO_SUCH_MODEL}),
)
def list_versions(model: AnyModel, session: SessionDep, page: Pagination) -> Page[AIModelVersionPublic]:
    return ai_training.list_versions(session, model=model, offset=page.offset, limit=page.limit)
