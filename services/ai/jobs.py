"""AI jobs as the API offers them: models to list, jobs to submit, wait for, list, cancel and
hide, and the hook that keeps post embeddings current.

A job is an AIlog row. Submitting stores it `queued` and hands its id to the backend (the
embedded runner or Celery, services/ai/backends.py); whoever runs it moves it to running and then
to succeeded or failed (services/ai/worker.py). Every change is published to waiting requests
and to the owner's sockets, when there is anyone to hear it (services/ai/events.py).
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import settings
from crud import ai as ai_crud
from crud import ai_training as training_crud
from crud import embeddings as embeddings_crud
from crud import pages
from database import UNLIMITED, RequestSlots, session_scope, utcnow, write_turns
from errors import Conflict, NotFound, TooManyRequests, Unprocessable
from ml import tabular
from ml.runner import QueueFull
from models import AI, AIlog, User
from schemas import AIModelPublic, AIModelUpdate, JobPublic, JobStatus, Page
from services import access
from services.access import VetReader
from services.ai import registry, worker
from services.ai.backends import Backend
from services.ai.board_suggest import BoardSuggest
from services.ai.events import JobEvents, Publisher, publish_jobs, publish_public
from services.ai.job_view import job_public, job_public_of_row, queued_job
from services.ai.registry import Registry
from services.ai.runtime import NO_APP, AIRuntime
from services.ai.similar_posts import SimilarPosts

log = logging.getLogger(__name__)

# A waiting request re-reads its job this often even without a signal (a lost pub/sub message
# must not turn into a 30 s wait).
WAIT_RECHECK_SECONDS = 2.0
REINDEX_BATCH = 64

# --- models ---------------------------------------------------------------------------------


def list_models(
    session: Session, *, user: User, models: Registry, offset: int, limit: int
) -> Page[AIModelPublic]:
    """The models this process runs (its registry's), and the trained ones with a version that
    succeeded; hidden ones (and trained ones without a version yet) only for administrators.
    Two short lists merged by id, so the page is cut here rather than in SQL."""
    names = [model.name for model in models.listed()]
    rows = ai_crud.model_list(session, names=names, include_hidden=user.is_superuser)
    trained = training_crud.trained_models(
        session, kind=tabular.KIND, include_unready=user.is_superuser, include_hidden=user.is_superuser
    )
    listed = sorted([*rows, *trained], key=lambda row: row.id)
    return Page[AIModelPublic](
        items=[AIModelPublic.model_validate(row) for row in listed[offset : offset + limit]],
        total=len(listed),
        offset=offset,
        limit=limit,
    )


def get_model_row(session: Session, model_id: int) -> AI:
    row = ai_crud.model_by_id(session, model_id)
    if row is None:
        raise NotFound("model")
    return row


def update_model(session: Session, *, model: AI, changes: AIModelUpdate) -> AIModelPublic:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(model, field, value)
    session.commit()
    return AIModelPublic.model_validate(model)


# --- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who submits a job, loaded with what the submission needs by one statement (load_submitter):
    the model the request names (None when there is no such row) and, while the per-user limit
    applies, the user's jobs in flight; and the request's way to the database (RequestSlots) to
    store the job through (the session that read all this is closed)."""

    user: User
    model_name: str
    model: AI | None
    in_flight: int | None
    database: RequestSlots = UNLIMITED
    ai: AIRuntime = NO_APP  # the app's (deps.job_submitter)


def load_submitter(session: Session, *, user_id: int, model_name: str, vet_reader: VetReader) -> Submitter:
    """The user `user_id` as vet_reader lets them through, with the model and their jobs in
    flight; the model is judged by submit (after the request's input)."""
    found = ai_crud.submitter(
        session, reader_id=user_id, model_name=model_name, count_in_flight=settings.RATE_LIMIT_ENABLED
    )
    user = vet_reader(None if found is None else found[0])
    assert found is not None, "vet_reader refuses a missing user"
    _, model, in_flight = found
    return Submitter(user, model_name, model, in_flight)


async def submit(
    submitter: Submitter,
    *,
    text: str | dict[str, Any] | list[Any],
    idempotency_key: str | None,
    wait: float = 0,
) -> JobPublic:
    """Stores a queued job and hands it to the backend. With an idempotency key already used
    by this user, the first job comes back instead (409 if it asked for something else). With
    a wait (the client's `Prefer: wait=N`), the answer is the job as soon as it ends, or as it
    is when the wait runs out: as wait_for_job, so one request can carry a short job whole.

    The checks need no database (load_submitter read what they look at); storing the job
    writes, and a write may wait (the database's write lock on SQLite, a round trip to a
    server), so it runs in the thread pool, in a session of its own within a request slot
    (RequestSlots.run): one trip per submission, which also reads the input (a trained model's rows take
    a while)."""
    model = _usable_model(
        submitter.model, user=submitter.user, name=submitter.model_name, models=submitter.ai.models
    )
    store = partial(
        _store,
        user=submitter.user,
        model=model,
        text=text,
        idempotency_key=idempotency_key,
        in_flight=submitter.in_flight,
        ai=submitter.ai,
    )
    job = await submitter.database.run(store, inline=False)
    watch = JobWatch(job, submitter.database, submitter.user, submitter.ai.events)
    return await wait_for_job(watch, wait=wait)


def _usable_model(row: AI | None, *, user: User, name: str, models: Registry) -> AI:
    model = models.get(name)
    if row is None or model is None or not model.listed or (not row.is_visible and not user.is_superuser):
        raise NotFound("model")
    return row


def _store(
    session: Session,
    *,
    user: User,
    model: AI,
    text: str | dict[str, Any] | list[Any],
    idempotency_key: str | None,
    in_flight: int | None,
    ai: AIRuntime,
) -> JobPublic:
    stored = _stored_input(ai.models, model.name, text)
    return _store_in(
        session,
        user,
        model=model,
        text=stored,
        idempotency_key=idempotency_key,
        in_flight=in_flight,
        ai=ai,
    )


def _store_in(
    session: Session,
    user: User,
    *,
    model: AI,
    text: str,
    idempotency_key: str | None,
    in_flight: int | None,
    ai: AIRuntime,
) -> JobPublic:
    if idempotency_key is not None:
        earlier = ai_crud.job_by_key(session, user_id=user.id, key=idempotency_key)
        if earlier is not None:
            return _replayed(earlier, model=model, text=text)
    backend = ai.backend
    _enforce_jobs_per_user(in_flight, ai)
    if backend is not None:
        try:
            backend.reserve(session)
        except QueueFull as exc:
            raise _queue_full(exc.retry_after) from exc
    now = utcnow()
    # The embedded runner's lease, from the first moment: another API process starting now
    # leaves the job to this one's queue.
    leases = backend.leases if backend is not None else None
    try:
        with write_turns.turn():  # SQLite: writers queue here, not in its sleeping busy handler
            job_id = ai_crud.add_job(
                session,
                user_id=user.id,
                ai_id=model.id,
                content=text,
                idempotency_key=idempotency_key,
                now=now,
                lease=(leases.owner, leases.until(now)) if leases is not None else None,
            )
            session.commit()
    except IntegrityError:
        # The same key, submitted twice at once: the other request stored it first.
        session.rollback()
        _release(backend)
        earlier = ai_crud.job_by_key(session, user_id=user.id, key=idempotency_key or "")
        if earlier is None:
            raise
        return _replayed(earlier, model=model, text=text)
    except BaseException:
        _release(backend)
        raise
    # Taken before handing over: the answer shows the job as submitted (queued), however fast
    # a worker then takes it.
    submitted = queued_job(job_id, model=model, content=text, created=now)
    publish_public(ai.publisher, [(user.id, submitted)])
    if _hand_over(session, backend, model_name=model.name, job_id=job_id):
        return submitted
    failed = ai_crud.job(session, job_id)
    assert failed is not None
    publish_jobs(ai.publisher, [failed])
    return job_public(failed)


def _stored_input(models: Registry, model_name: str, value: str | dict[str, Any] | list[Any]) -> str:
    """The input as the job stores it, in the form its model reads (text, or a trained model's
    rows as JSON); 422 naming what does not fit (e.g. a missing column)."""
    model = models.get(model_name)
    if model is None:  # a trained model's only version went away between the two looks
        raise NotFound("model")
    try:
        return model.job_input(value)
    except ValueError as exc:
        raise Unprocessable(f"input: {exc}") from exc


def _hand_over(session: Session, backend: Backend | None, *, model_name: str, job_id: int) -> bool:
    """False when the backend could not take the job (it is then failed with the reason).
    Without a backend (a script, no app running) the job stays queued for the next start."""
    if backend is None:
        return True
    try:
        backend.submit_job(model_name, job_id)
        return True
    except Exception as exc:
        log.exception("could not hand job %d to the %s backend", job_id, settings.AI_BACKEND)
        ai_crud.finish(
            session,
            job_id,
            status=ai_crud.FAILED,
            now=utcnow(),
            error=f"could not reach the job queue: {worker.describe_error(exc)}",
            from_statuses=(ai_crud.QUEUED,),
        )
        session.commit()
        return False


def _release(backend: Backend | None) -> None:
    if backend is not None:
        backend.release()


def _replayed(earlier: AIlog, *, model: AI, text: str) -> JobPublic:
    if earlier.ai_id != model.id or earlier.content != text:
        raise Conflict(
            "this Idempotency-Key was already used for a different request", code="idempotency_key_reused"
        )
    return job_public(earlier)


def _enforce_jobs_per_user(in_flight: int | None, ai: AIRuntime) -> None:
    """in_flight: the user's jobs queued or running (None while RATE_LIMIT_ENABLED is off)."""
    if in_flight is None or not settings.RATE_LIMIT_ENABLED:
        return
    most = ai.config.AI_MAX_JOBS_PER_USER
    if in_flight >= most:
        error = TooManyRequests(
            f"you already have {most} jobs queued or running; wait for one to end",
            retry_after=ai.backend.retry_after() if ai.backend is not None else 1,
        )
        error.code = "too_many_jobs"
        raise error


def _queue_full(retry_after: int) -> TooManyRequests:
    error = TooManyRequests("the AI queue is full; try again later", retry_after=retry_after)
    error.code = "queue_full"
    return error


def readable_job(session: Session, *, user: User, job_id: int) -> JobPublic:
    """The job, for its owner (until they hide it) or an administrator; 404 for anyone else."""
    return _seen_by(session, user, job_public(_readable(ai_crud.job(session, job_id), user=user)))


def reader_and_readable_job(
    session: Session, *, user_id: int, job_id: int, vet_reader: VetReader
) -> tuple[User, JobPublic]:
    """The user `user_id` as vet_reader lets them through, and the job as readable_job gives it
    to that user: one statement for both."""
    found = ai_crud.reader_and_job(session, reader_id=user_id, job_id=job_id)
    user = vet_reader(None if found is None else found[0])
    assert found is not None, "vet_reader refuses a missing user"
    return user, _seen_by(session, user, job_public_of_row(_readable(found[1], user=user)))


JobFound = TypeVar("JobFound", AIlog, Row[Any])


def _readable(job: JobFound | None, *, user: User) -> JobFound:
    if job is None or not (user.is_superuser or (job.user_id == user.id and job.is_visible)):
        raise NotFound("job")
    return job


@dataclass(frozen=True, slots=True)
class JobWatch:
    """A job as its reader may see it, read in a session already closed (a long poll holds no
    connection and no request slot while it waits), the request's way to the database
    (RequestSlots) to read it again through, and that reader (what its result lists is checked
    for them again)."""

    job: JobPublic
    database: RequestSlots
    reader: User
    events: JobEvents | None = None  # the app's, whose waiters hear the job end (None: no app)


async def wait_for_job(watch: JobWatch, *, wait: float) -> JobPublic:
    """The job as it is now, or, with a wait, as soon as it finishes (at most `wait` seconds).
    The wait holds no thread, no database connection and no request slot: it awaits the job's
    event on the loop and answers with the ending the event carries; the database is read
    again only if no event came (the wait ran out, or every WAIT_RECHECK_SECONDS in case a
    message was lost)."""
    public = watch.job
    job_events = watch.events
    if public.is_finished or wait <= 0:
        return public
    deadline = time.monotonic() + wait
    with job_events.watch(public.id) if job_events is not None else contextlib.nullcontext() as finished:
        while True:
            # Looked at after the watch began, so an ending in between is not missed.
            ended = job_events.finished(public.id) if job_events is not None else None
            # An ending the wait hears of was computed under the access rule just now (this job
            # was not finished when the wait began): only a stored result is checked again.
            if ended is not None:
                return JobPublic.model_validate(ended)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await _until(finished, min(remaining, WAIT_RECHECK_SECONDS)):
                current = await _read_again(watch)
                if current is None or current.is_finished or time.monotonic() >= deadline:
                    return current or public


async def _read_again(watch: JobWatch) -> JobPublic | None:
    """The job from the database, within a request slot again (as every request session)."""
    return await watch.database.run(
        partial(_read_job, job_id=watch.job.id, reader=watch.reader), inline=False
    )


async def _until(event: asyncio.Event | None, timeout: float) -> bool:
    """True if the event came within the timeout."""
    if event is None:
        await asyncio.sleep(timeout)
        return False
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    event.clear()
    return True


def _read_job(session: Session, *, job_id: int, reader: User) -> JobPublic | None:
    job = ai_crud.job(session, job_id)
    return _seen_by(session, reader, job_public(job)) if job is not None else None


def list_jobs(
    session: Session, *, user: User, status: JobStatus | None, offset: int, limit: int, everyone: bool = False
) -> Page[JobPublic]:
    """The user's jobs, newest first (everyone's, hidden ones too, for an administrator's view)."""
    user_id = None if everyone else user.id
    rows, total = pages.fetch_page(
        session,
        ai_crud.job_listing(user_id=user_id, status=status, include_hidden=everyone),
        count_query=ai_crud.job_listing_count(user_id=user_id, status=status, include_hidden=everyone),
        offset=offset,
        limit=limit,
    )
    items = _as_seen_by(session, user=user, jobs=[job_public(job) for job in rows])
    return Page[JobPublic](items=items, total=total, offset=offset, limit=limit)


# --- results as their reader may see them ---------------------------------------------------

# The results that list posts or boards (by model, the key of the list): each job's owner got
# what the access rule let them read when it ran. Access may be lost since (an administrator
# edits a user's boards, a board or post is hidden), so a stored result is read through the
# rule again, for whoever reads it.
_LISTS = {SimilarPosts.name: "posts", BoardSuggest.name: "boards"}
_Listed = tuple[str, list[dict[str, Any]]]


def _as_seen_by(session: Session, *, user: User, jobs: list[JobPublic]) -> list[JobPublic]:
    """The jobs with their results cut to the posts and boards the reader may read now: one
    query for all of them (access.still_readable), none when they list nothing."""
    listed = [_listed(job) for job in jobs]
    wanted: dict[str, set[int]] = {"posts": set(), "boards": set()}
    for found in listed:
        if found is not None:
            wanted[found[0]].update(row["id"] for row in found[1])
    posts, boards = access.still_readable(
        session, user=user, post_ids=wanted["posts"], board_ids=wanted["boards"]
    )
    allowed = {"posts": posts, "boards": boards}
    return [
        job if found is None else _cut(job, found, allowed[found[0]])
        for job, found in zip(jobs, listed, strict=True)
    ]


def _seen_by(session: Session, user: User, job: JobPublic) -> JobPublic:
    return _as_seen_by(session, user=user, jobs=[job])[0]


def _listed(job: JobPublic) -> _Listed | None:
    key = _LISTS.get(job.model)
    if key is None or not isinstance(job.result, dict) or not isinstance(job.result.get(key), list):
        return None
    return key, job.result[key]


def _cut(job: JobPublic, found: _Listed, allowed: set[int]) -> JobPublic:
    key, rows = found
    kept = [row for row in rows if row["id"] in allowed]
    if len(kept) == len(rows):
        return job
    return job.model_copy(update={"result": {**job.result, key: kept}})


def cancel(session: Session, *, job: JobPublic, events: Publisher) -> JobPublic:
    """Cancels a job that has not started; 409 once it runs or has finished."""
    if ai_crud.finish(
        session, job.id, status=ai_crud.CANCELED, now=utcnow(), from_statuses=(ai_crud.QUEUED,)
    ):
        session.commit()
        canceled = ai_crud.job(session, job.id)
        assert canceled is not None
        publish_jobs(events, [canceled])
        return job_public(canceled)
    session.rollback()
    current = ai_crud.job(session, job.id)
    if current is not None and current.is_finished:
        raise Conflict(f"the job has already ended ({current.status})", code="job_finished")
    raise Conflict("the job is already running and can no longer be canceled", code="job_running")


def hide(session: Session, *, job: JobPublic) -> None:
    """Removes a finished job from its owner's history (administrators still see it)."""
    if not ai_crud.hide_if_finished(session, job.id):
        session.rollback()
        raise Conflict("a job can be deleted once it has ended; cancel it first", code="job_not_finished")
    session.commit()


# --- post embeddings ------------------------------------------------------------------------


def post_changed(backend: Backend | None, post_id: int) -> None:
    """Called by services/posts after a post's title or content was stored (after commit):
    its embedding is recomputed through the app's AI backend (None: no app, a script), in a
    batch with other work. Best effort; `python cli.py reindex` repairs anything missed."""
    if backend is None or not settings.AI_INDEX_POSTS:
        return
    try:
        backend.submit_index([post_id])
    except Exception:
        log.warning("post %d not queued for embedding", post_id, exc_info=True)


def reindex(*, everything: bool = False) -> int:
    """Embeds, in this process, every post without a current embedding (all posts with
    everything=True), with the models of a registry of its own. Returns how many were stored."""
    models = registry.load()
    model_name = models.vector_model
    stored, after_id = 0, 0
    while True:
        with session_scope() as session:
            post_ids = embeddings_crud.ids_to_index(
                session, model_name=model_name, everything=everything, after_id=after_id, limit=REINDEX_BATCH
            )
        if not post_ids:
            return stored
        stored += worker.index_posts(post_ids, models=models)
        after_id = post_ids[-1]
