"""AI models and jobs (docs/api.md, "AI models and jobs"): submit a job, long-poll it, list, cancel, hide."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from config import settings
from deps import (
    AdminUser,
    AnyModel,
    CurrentUser,
    JobSubmitter,
    Pagination,
    PreferredWait,
    ReadableJob,
    RuntimeDep,
    SessionDep,
    WatchedJob,
)
from routers.responses import (
    ADMINISTRATORS,
    AUTHENTICATED,
    JOB_ACCEPTED_OR_ENDED,
    JSON_BODY,
    errors,
    refusal,
)
from schemas import (
    AIModelPublic,
    AIModelUpdate,
    IdempotencyKey,
    JobCreate,
    JobPublic,
    JobStatus,
    Page,
)
from services.ai import jobs as ai_service

router = APIRouter(tags=["ai"], responses=AUTHENTICATED)
# Everyone's jobs and the models' settings, for administrators (training: routers/ai_training.py).
admin_router = APIRouter(prefix="/admin/ai", tags=["admin"], responses=ADMINISTRATORS)

JOB = {404: refusal("No such job, or not yours.", not_found="job not found")}
NO_SUCH_MODEL = refusal("No such model.", not_found="model not found")
SUBMIT_NOTES = {
    404: NO_SUCH_MODEL,
    409: refusal("The Idempotency-Key was used for another request.", "idempotency_key_reused"),
    422: refusal(
        "The input failed validation, or does not fit the model (e.g. a missing column).", "invalid_input"
    ),
    429: refusal(
        "The queue is full, or you have AI_MAX_JOBS_PER_USER jobs in flight; see Retry-After.",
        rate_limited="the AI queue is full; try again later",
    ),
}


@router.get(
    "/ai/models", response_model=Page[AIModelPublic], summary="Models I may use", responses=errors(422)
)
def list_models(
    user: CurrentUser, session: SessionDep, runtime: RuntimeDep, page: Pagination
) -> Page[AIModelPublic]:
    return ai_service.list_models(
        session, user=user, models=runtime.ai.models, offset=page.offset, limit=page.limit
    )


@router.post(
    "/ai/models/{name}/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Submit a job (answers at once, or with Prefer: wait=N once it ends)",
    responses=JOB_ACCEPTED_OR_ENDED | errors(404, 409, 429, *JSON_BODY, notes=SUBMIT_NOTES),
)
async def submit_job(
    submitter: JobSubmitter,
    data: JobCreate,
    response: Response,
    wait: PreferredWait,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(description="Retrying with the same key returns the first job instead of a new one."),
    ] = None,
) -> JobPublic:
    job = await ai_service.submit(submitter, text=data.input, idempotency_key=idempotency_key, wait=wait)
    response.headers["Location"] = f"{settings.API_PREFIX}/ai/jobs/{job.id}"
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        if job.is_finished:
            response.status_code = status.HTTP_200_OK
    return job


@router.get(
    "/ai/jobs", response_model=Page[JobPublic], summary="My jobs, newest first", responses=errors(422)
)
def list_jobs(
    user: CurrentUser, session: SessionDep, page: Pagination, status: JobStatus | None = None
) -> Page[JobPublic]:
    return ai_service.list_jobs(session, user=user, status=status, offset=page.offset, limit=page.limit)


@router.get(
    "/ai/jobs/{job_id}",
    response_model=JobPublic,
    summary="A job; with `wait`, answers as soon as it finishes (long poll)",
    responses=errors(404, 422, notes=JOB),
)
async def read_job(
    watch: WatchedJob,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for the job to end.")] = 0,
) -> JobPublic:
    return await ai_service.wait_for_job(watch, wait=wait)


@router.post(
    "/ai/jobs/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a job that has not started",
    responses=errors(
        404, 409, 422, notes={**JOB, 409: refusal("Already running or ended.", "job_running", "job_finished")}
    ),
)
def cancel_job(job: ReadableJob, session: SessionDep, runtime: RuntimeDep) -> JobPublic:
    return ai_service.cancel(session, job=job, events=runtime.ai.publisher)


@router.delete(
    "/ai/jobs/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an ended job from my history",
    responses=errors(
        404, 409, 422, notes={**JOB, 409: refusal("Still queued or running.", "job_not_finished")}
    ),
)
def hide_job(job: ReadableJob, session: SessionDep) -> None:
    ai_service.hide(session, job=job)


@admin_router.get("/jobs", response_model=Page[JobPublic], summary="Everyone's jobs", responses=errors(422))
def list_all_jobs(
    admin: AdminUser, session: SessionDep, page: Pagination, status: JobStatus | None = None
) -> Page[JobPublic]:
    return ai_service.list_jobs(
        session, user=admin, status=status, offset=page.offset, limit=page.limit, everyone=True
    )


@admin_router.patch(
    "/models/{model_id}",
    response_model=AIModelPublic,
    summary="Edit a model's description, or hide it from users",
    responses=errors(404, *JSON_BODY, notes={404: NO_SUCH_MODEL}),
)
def update_model(model: AnyModel, changes: AIModelUpdate, session: SessionDep) -> AIModelPublic:
    return ai_service.update_model(session, model=model, changes=changes)
