"""The API's view of a job (schemas.JobPublic), from its row or from a row of its columns."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from crud import ai as ai_crud
from models import AI, AIlog
from schemas import JobPublic


def job_public(job: AIlog, *, model_name: str | None = None, structured_input: bool = False) -> JobPublic:
    """The API's view of a job row (its model loaded, or its name given). A trained model's jobs
    (rows of numbers, training parameters) store their input as JSON: given back as JSON."""
    if model_name is None:
        model_name, structured_input = job.ai.name, job.ai.kind is not None
    return _public(job, model_name=model_name, structured_input=structured_input)


def job_public_of_row(row: Row[Any]) -> JobPublic:
    """The same from a row of AIlog's columns with its model's name and kind (model_name,
    model_kind), as crud/ai.reader_and_job reads it."""
    return _public(row, model_name=row.model_name, structured_input=row.model_kind is not None)


def queued_job(job_id: int, *, model: AI, content: str, created: datetime) -> JobPublic:
    """The view of a job just stored (crud/ai.add_job): queued, not yet tried."""
    return JobPublic(
        id=job_id,
        model=model.name,
        status=ai_crud.QUEUED,
        input=json.loads(content) if model.kind is not None else content,
        result=None,
        error=None,
        attempts=0,
        create_date=created,
        started_date=None,
        finish_date=None,
        is_finished=False,
    )


def _public(job: AIlog | Row[Any], *, model_name: str, structured_input: bool) -> JobPublic:
    return JobPublic(
        id=job.id,
        model=model_name,
        status=job.status,
        input=json.loads(job.content) if structured_input else job.content,
        result=json.loads(job.result) if job.result is not None else None,
        error=job.error,
        attempts=job.attempts,
        create_date=job.create_date,
        started_date=job.started_date,
        finish_date=job.finish_date,
        is_finished=job.is_finished,
    )
