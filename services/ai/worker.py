"""Running AI work: what a batch of the embedded runner and a Celery task do. Each opens its
own sessions; none holds a transaction while a model computes.

A job runs as: claim (queued -> running, the attempt counted) and commit; the model's forward
for the whole batch; each job's result for its owner; then every ending in one commit. Status
moves only by conditional UPDATEs, so a job canceled, timed out or recovered meanwhile keeps
the ending it got first.
"""

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import embeddings as embeddings_crud
from database import session_scope, utcnow, write_turns
from ml.encoder import to_bytes
from ml.post_index import post_text
from models import AIlog
from schemas import JobPublic
from services.ai import apps
from services.ai.events import Publisher, publish_jobs, publish_public
from services.ai.job_view import job_public
from services.ai.leases import Leases
from services.ai.registry import Registry

log = logging.getLogger(__name__)

ERROR_MAX_CHARS = 2000


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:ERROR_MAX_CHARS]


def run_jobs(
    model_name: str,
    job_ids: Sequence[int],
    *,
    models: Registry,
    events: Publisher,
    redelivered: bool = False,
    interrupts: tuple[type[BaseException], ...] = (),
    computed: Callable[[], None] = lambda: None,
    leases: Leases | None = None,
) -> None:
    """Runs these jobs of one model (looked up in `models`) as one batch, telling `events` how
    they go.

    redelivered: the Celery path, where a message comes back when its worker died; a job that
    worker left `running` is taken again, unless it has used its AI_MAX_ATTEMPTS, and is then
    failed, so a job that kills its worker cannot loop forever.
    computed: called once the model is done with the batch (the embedded runner then lets the
    next batch compute while this one stores its results).
    leases: the embedded runner's (services/ai/leases.py): it takes only jobs no other process
    holds, they carry its lease while they run, and an ending stores only while they do.
    """
    now = utcnow()
    lease = (leases.owner, leases.until(now)) if leases is not None else None
    with session_scope() as session:
        with write_turns.turn():  # SQLite: writers queue here, not in its sleeping busy handler
            taken = ai_crud.claim_with_owners(
                session,
                job_ids,
                now=now,
                also_running=redelivered,
                max_attempts=settings.AI_MAX_ATTEMPTS,
                lease=lease,
            )
            claimed = [job.id for job, _ in taken]
            gave_up: list[int] = []
            if redelivered:
                exhausted = [job_id for job_id in job_ids if job_id not in claimed]
                gave_up = _fail(
                    session, exhausted, error=attempts_exhausted(), from_statuses=ai_crud.IN_FLIGHT
                )
            session.commit()
        running = [job for job, _ in taken]
        owners = {job.user_id: owner for job, owner in taken}  # loaded: they outlive the session
        publish_jobs(events, running + ai_crud.jobs(session, gave_up))
    if not running:
        return
    model = models.get(model_name)
    if model is None:
        fail_jobs(claimed, error=f"model {model_name} is not available on this worker", events=events)
        return
    try:
        outputs = model.run_batch([job.content for job in running])
    except interrupts:
        raise
    except Exception as exc:
        computed()
        log.warning("%s failed a batch of %d", model_name, len(running), exc_info=True)
        fail_jobs(claimed, error=describe_error(exc), events=events)
        return
    computed()
    with session_scope() as session:
        jobs = [
            (owners[job.user_id], job.content, output) for job, output in zip(running, outputs, strict=True)
        ]
        try:
            results = apps.results(model, session, jobs=jobs)
        except Exception as exc:  # what the jobs share could not be read: each fails with it
            log.warning("%s failed the results of a batch of %d", model_name, len(running), exc_info=True)
            results = [exc] * len(running)
        session.rollback()  # end the reads before writing
        endings = [_ending(model_name, job, result) for job, result in zip(running, results, strict=True)]
        done = utcnow()
        with write_turns.turn():
            changed = ai_crud.finish_running(
                session, endings, now=done, lease_owner=lease[0] if lease is not None else None
            )
            session.commit()
        if changed == len(endings):
            publish_public(
                events, [_ended(job, ending, done) for job, ending in zip(running, endings, strict=True)]
            )
        else:  # some ended otherwise meanwhile (timed out, canceled): tell what is stored
            publish_jobs(events, ai_crud.jobs(session, claimed))


def _ending(model_name: str, job: AIlog, result: Any) -> tuple[int, str, str | None, str | None]:
    """(id, status, result as JSON, error) for finish_running; an exception fails the job."""
    if not isinstance(result, Exception):
        try:
            return job.id, ai_crud.SUCCEEDED, json.dumps(result, ensure_ascii=False), None
        except (TypeError, ValueError) as exc:
            result = exc
    log.warning("%s failed job %d", model_name, job.id, exc_info=result)
    return job.id, ai_crud.FAILED, None, describe_error(result)


def _ended(
    job: AIlog, ending: tuple[int, str, str | None, str | None], done: datetime
) -> tuple[int, JobPublic]:
    _, status, result, error = ending
    public = job_public(job).model_copy(
        update={
            "status": status,
            "result": json.loads(result) if result is not None else None,
            "error": error,
            "finish_date": done,
            "is_finished": True,
        }
    )
    return job.user_id, public


def fail_jobs(job_ids: Sequence[int], *, error: str, events: Publisher) -> None:
    """Fails those of these jobs that are still running (e.g. past their time limit)."""
    with session_scope() as session:
        failed = _fail(session, job_ids, error=error, from_statuses=(ai_crud.RUNNING,))
        session.commit()
        publish_jobs(events, ai_crud.jobs(session, failed))


def give_back(job_ids: Sequence[int]) -> None:
    """Jobs whose batch was cut short by the process stopping go back to the queue, the attempt
    not counted (the job did nothing wrong), their lease given back, for the next start's
    recovery or another live process's."""
    with session_scope() as session:
        returned = ai_crud.unclaim(session, job_ids)
        session.commit()
    if returned:
        log.warning("%d AI job(s) cut short by the shutdown are queued again", returned)


def _fail(session: Session, job_ids: Sequence[int], *, error: str, from_statuses: Sequence[str]) -> list[int]:
    now = utcnow()
    return [
        job_id
        for job_id in job_ids
        if ai_crud.finish(
            session,
            job_id,
            status=ai_crud.FAILED,
            now=now,
            error=error,
            from_statuses=from_statuses,
        )
    ]


def timed_out_error(seconds: float) -> str:
    return f"timed out after {seconds:g} s"


def attempts_exhausted() -> str:
    return (
        f"gave up after {settings.AI_MAX_ATTEMPTS} attempts: "
        "the process running it stopped each time before the job ended"
    )


def index_posts(
    post_ids: Sequence[int], *, models: Registry, computed: Callable[[], None] = lambda: None
) -> int:
    """Embeds these posts (title and content) with the registry's post index and stores the
    vectors; posts deleted meanwhile are skipped. Returns how many were stored. computed: as for
    run_jobs."""
    with session_scope() as session:
        rows = embeddings_crud.texts(session, post_ids)
    if not rows:
        return 0
    model = models.post_index()
    model_name = models.vector_model  # what made the vectors, stored with them
    try:
        vectors = model.run_batch([post_text(row.name, row.content) for row in rows])
    finally:
        computed()
    encoded = {row.id: to_bytes(vector) for row, vector in zip(rows, vectors, strict=True)}
    with session_scope() as session:
        try:
            embeddings_crud.upsert(session, model_name=model_name, vectors=encoded, now=utcnow())
            session.commit()
        except IntegrityError:
            # A post was deleted between reading and writing: store the others.
            session.rollback()
            still_there = {row.id for row in embeddings_crud.texts(session, list(encoded))}
            encoded = {post_id: v for post_id, v in encoded.items() if post_id in still_there}
            embeddings_crud.upsert(session, model_name=model_name, vectors=encoded, now=utcnow())
            session.commit()
    return len(encoded)
