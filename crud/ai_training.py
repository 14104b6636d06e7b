"""Queries over trained models and their versions (models.AIModelVersion), and the progress of a
running training job. No commits.

A version's status follows its training job: set in the same transaction as the job's ending, or
settled afterwards from the job when the job ended some other way (canceled, failed by recovery).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, joinedload

from crud import changed_rows
from crud.ai import IN_FLIGHT, QUEUED, RUNNING, SUCCEEDED
from models import AI, AIlog, AIModelVersion

PENDING = (QUEUED, RUNNING)


def trained_models(session: Session, *, kind: str, include_unready: bool, include_hidden: bool) -> list[AI]:
    query = select(AI).where(AI.kind == kind).order_by(AI.id)
    if not include_unready:
        query = query.where(AI.is_ready.is_(True))
    if not include_hidden:
        query = query.where(AI.is_visible.is_(True))
    return list(session.scalars(query))


def current_version(session: Session, *, name: str, kind: str) -> tuple[AI, AIModelVersion] | None:
    """The trained model of this name and its highest succeeded version, if it has one."""
    row = session.execute(
        select(AI, AIModelVersion)
        .join(AIModelVersion, AIModelVersion.ai_id == AI.id)
        .where(AI.name == name, AI.kind == kind, AIModelVersion.status == SUCCEEDED)
        .order_by(AIModelVersion.version.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def current_version_number(session: Session, ai_id: int) -> int | None:
    return session.scalar(
        select(func.max(AIModelVersion.version)).where(
            AIModelVersion.ai_id == ai_id, AIModelVersion.status == SUCCEEDED
        )
    )


def next_version_number(session: Session, ai_id: int) -> int:
    highest = session.scalar(select(func.max(AIModelVersion.version)).where(AIModelVersion.ai_id == ai_id))
    return (highest or 0) + 1


def version_by_job(session: Session, job_id: int) -> AIModelVersion | None:
    return session.scalar(
        select(AIModelVersion)
        .where(AIModelVersion.training_job_id == job_id)
        .execution_options(populate_existing=True)
    )


def version_listing(ai_id: int) -> Select[AIModelVersion]:
    """Newest first."""
    return select(AIModelVersion).where(AIModelVersion.ai_id == ai_id).order_by(AIModelVersion.version.desc())


def version_listing_count(ai_id: int) -> Select[*tuple[Any, ...]]:
    return select(func.count()).select_from(AIModelVersion).where(AIModelVersion.ai_id == ai_id)


def count_training_in_flight(session: Session) -> int:
    """Training jobs queued or running, every model's."""
    query = (
        select(func.count())
        .select_from(AIlog)
        .join(AIModelVersion, AIModelVersion.training_job_id == AIlog.id)
        .where(AIlog.status.in_(IN_FLIGHT))
    )
    return session.scalar(query) or 0


def training_jobs_in_flight(session: Session) -> list[AIlog]:
    """Training jobs queued or running (recovery), with their model loaded."""
    query = (
        select(AIlog)
        .join(AIModelVersion, AIModelVersion.training_job_id == AIlog.id)
        .where(AIlog.status.in_(IN_FLIGHT))
        .options(joinedload(AIlog.ai))
        .order_by(AIlog.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def set_version_status(
    session: Session,
    version_id: int,
    *,
    status: str,
    from_statuses: Sequence[str],
    now: datetime | None = None,
    metrics: str | None = None,
) -> bool:
    values: dict[str, Any] = {"status": status}
    if now is not None:
        values["finish_date"] = now
    if metrics is not None:
        values["metrics"] = metrics
    return (
        changed_rows(
            session,
            update(AIModelVersion)
            .where(AIModelVersion.id == version_id, AIModelVersion.status.in_(list(from_statuses)))
            .values(**values)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def mark_ready(session: Session, ai_id: int) -> None:
    session.execute(
        update(AI).where(AI.id == ai_id).values(is_ready=True).execution_options(synchronize_session=False)
    )


def unsettled_versions(session: Session) -> list[tuple[AIModelVersion, str]]:
    """Versions still queued or running whose training job has ended (canceled before it ran,
    failed by the recovery): each with the job's status."""
    query = (
        select(AIModelVersion, AIlog.status)
        .join(AIlog, AIlog.id == AIModelVersion.training_job_id)
        .where(AIModelVersion.status.in_(PENDING), AIlog.is_finished.is_(True))
    )
    return [(version, status) for version, status in session.execute(query).all()]


def set_progress(session: Session, job_id: int, result: str) -> bool:
    """Stores a running job's progress in its result (only while it runs)."""
    return (
        changed_rows(
            session,
            update(AIlog)
            .where(AIlog.id == job_id, AIlog.status == RUNNING)
            .values(result=result)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def version_back_to_queued(session: Session, job_id: int) -> None:
    """The version of a training job the recovery queues again."""
    session.execute(
        update(AIModelVersion)
        .where(AIModelVersion.training_job_id == job_id, AIModelVersion.status == RUNNING)
        .values(status=QUEUED)
        .execution_options(synchronize_session=False)
    )
