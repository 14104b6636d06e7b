"""Queries over the AI models table and the AI job log (AIlog). No commits.

A job's status moves only by conditional UPDATEs (`... WHERE status = 'queued'`), so a cancel,
a worker and the recovery at startup can race over one row and exactly one of them wins. So do
the embedded runner's leases (lease_owner, lease_until: services/ai/leases.py): a lease is taken
only where it is free (`... AND (lease_owner IS NULL OR lease_until < now)`), and an ending
clears it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import make_dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, Select, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from crud import changed_rows, inserted_id, table_of
from models import AI, AIlog, User

QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
IN_FLIGHT = (QUEUED, RUNNING)

# An embedded runner's lease on a job: its owner id and when the lease runs out unless renewed.
Lease = tuple[str, datetime]


def _jobs() -> Select[AIlog]:
    """Jobs with their model loaded (one join), always re-read from the database: status
    moves by UPDATE statements, so objects already in the session may be stale."""
    return select(AIlog).options(joinedload(AIlog.ai)).execution_options(populate_existing=True)


# The statements every job request sends, built once with bind parameters: SQLAlchemy then
# neither builds them nor computes their cache key per request (a third of their cost).
_MODEL_BY_NAME = select(AI).where(AI.name == bindparam("name"))
_JOB = _jobs().where(AIlog.id == bindparam("job_id"))

# A request about one job, or a submission, needs its user too: one statement loads both (a
# statement less than authenticating first). These run on every job request, so they are Core
# statements over the tables: the ORM's loading of entities costs more than the query itself
# (3x on SQLite). The user (and the model) come back as plain dataclasses of the row's columns
# (UserColumns, ModelColumns below): for reading (vetting, access, the job's view), never for
# writing.
# The user is the statement's first table, so a missing job or model still brings the user back.
_USERS, _AI_LOG, _MODELS = table_of(User), table_of(AIlog), table_of(AI)
_READER_COLUMNS = [column.label(f"reader_{column.key}") for column in _USERS.c]
_MODEL_COLUMNS = [column.label(f"model_{column.key}") for column in _MODELS.c]
_JOB_MODEL_COLUMNS = [_MODELS.c.name.label("model_name"), _MODELS.c.kind.label("model_kind")]
_READER_AND_JOB = (
    select(*_READER_COLUMNS, *_AI_LOG.c, *_JOB_MODEL_COLUMNS)
    .select_from(_USERS)
    .outerjoin(_AI_LOG, _AI_LOG.c.id == bindparam("job_id"))
    .outerjoin(_MODELS, _MODELS.c.id == _AI_LOG.c.ai_id)
    .where(_USERS.c.id == bindparam("reader_id"))
)
_SUBMITTER = (
    select(*_READER_COLUMNS, *_MODEL_COLUMNS)
    .select_from(_USERS)
    .outerjoin(_MODELS, _MODELS.c.name == bindparam("name"))
    .where(_USERS.c.id == bindparam("reader_id"))
)
_SUBMITTER_COUNTING = _SUBMITTER.add_columns(
    select(func.count())
    .select_from(_AI_LOG)
    # OR, not IN: an IN list is bound anew on each execution (an "expanding" parameter).
    .where(_AI_LOG.c.user_id == _USERS.c.id, or_(*(_AI_LOG.c.status == status for status in IN_FLIGHT)))
    .correlate(_USERS)
    .scalar_subquery()
    .label("in_flight")
)
_INSERT_JOB = insert(_AI_LOG).values(
    user_id=bindparam("user_id"),
    ai_id=bindparam("ai_id"),
    content=bindparam("content"),
    idempotency_key=bindparam("idempotency_key"),
    create_date=bindparam("create_date"),
    lease_owner=bindparam("lease_owner"),
    lease_until=bindparam("lease_until"),
    status=QUEUED,
    attempts=0,
    is_finished=False,
    is_visible=True,
)


def _columns_of(name: str, table: Table) -> type:
    """A frozen dataclass with one field per column of `table`: what a statement over the tables
    gives back of a user or a model, for reading (vetting, the access rule, a job's view), never
    for writing. Cheaper to make than an ORM instance (its constructor fires an event and the
    mapped validators per attribute), and plainly not one: nothing can add it to a session."""
    return make_dataclass(name, [column.key for column in table.c], frozen=True, slots=True)


# UserColumns has User's column attributes (id, is_superuser, token_version ...), ModelColumns
# AI's (id, name, kind, is_visible ...): the services read them as they read a User or an AI.
UserColumns = _columns_of("UserColumns", _USERS)
ModelColumns = _columns_of("ModelColumns", _MODELS)


def _columns(view: type, table: Table, row: Row[*tuple[Any, ...]], prefix: str) -> Any:
    """A `view` of the row's columns named `prefix` + the table's columns' names."""
    fields = row._mapping
    return view(**{column.key: fields[prefix + column.key] for column in table.c})


def model_by_name(session: Session, name: str) -> AI | None:
    return session.scalar(_MODEL_BY_NAME, {"name": name})


def model_by_id(session: Session, model_id: int) -> AI | None:
    return session.get(AI, model_id)


def model_list(session: Session, *, names: Iterable[str], include_hidden: bool) -> list[AI]:
    query = select(AI).where(AI.name.in_(list(names))).order_by(AI.id)
    if not include_hidden:
        query = query.where(AI.is_visible.is_(True))
    return list(session.scalars(query))


def insert_missing_models(session: Session, entries: Sequence[tuple[str, str]]) -> int:
    """Adds a row for each (name, information) that has none; existing rows keep what an
    administrator set."""
    present = set(session.scalars(select(AI.name).where(AI.name.in_([name for name, _ in entries]))))
    missing = [{"name": name, "information": info[:256]} for name, info in entries if name not in present]
    if missing:
        session.execute(insert(AI), missing)
    return len(missing)


def job(session: Session, job_id: int) -> AIlog | None:
    return session.scalar(_JOB, {"job_id": job_id})


def reader_and_job(
    session: Session, *, reader_id: int, job_id: int
) -> tuple[User, Row[*tuple[Any, ...]] | None] | None:
    """The user (a UserColumns, read as a User) and the job: a row of AIlog's columns with its
    model's name and kind (model_name, model_kind), None when there is no such job; None when
    there is no user."""
    row = session.execute(_READER_AND_JOB, {"reader_id": reader_id, "job_id": job_id}).first()
    if row is None:
        return None
    return _columns(UserColumns, _USERS, row, "reader_"), (row if row.id is not None else None)


def submitter(
    session: Session, *, reader_id: int, model_name: str, count_in_flight: bool
) -> tuple[User, AI | None, int | None] | None:
    """The user, the model of that name (or None) and, with count_in_flight, how many jobs the
    user has queued or running (else None); None when there is no user."""
    statement = _SUBMITTER_COUNTING if count_in_flight else _SUBMITTER
    row = session.execute(statement, {"reader_id": reader_id, "name": model_name}).first()
    if row is None:
        return None
    model = _columns(ModelColumns, _MODELS, row, "model_") if row.model_id is not None else None
    return _columns(UserColumns, _USERS, row, "reader_"), model, row.in_flight if count_in_flight else None


def add_job(
    session: Session,
    *,
    user_id: int,
    ai_id: int,
    content: str,
    idempotency_key: str | None,
    now: datetime,
    lease: Lease | None = None,
) -> int:
    """Stores a queued job (one INSERT, no ORM unit of work), leased to the embedded runner
    that will queue it (None: to nobody); returns its id."""
    lease_owner, lease_until = lease if lease is not None else (None, None)
    values = {
        "user_id": user_id,
        "ai_id": ai_id,
        "content": content,
        "idempotency_key": idempotency_key,
        "create_date": now,
        "lease_owner": lease_owner,
        "lease_until": lease_until,
    }
    return inserted_id(session, _INSERT_JOB, values)


def jobs(session: Session, job_ids: Sequence[int]) -> list[AIlog]:
    if not job_ids:
        return []
    return list(session.scalars(_jobs().where(AIlog.id.in_(job_ids)).order_by(AIlog.id)))


def job_by_key(session: Session, *, user_id: int, key: str) -> AIlog | None:
    return session.scalar(_jobs().where(AIlog.user_id == user_id, AIlog.idempotency_key == key))


def _listing_filters(*, user_id: int | None, status: str | None, include_hidden: bool) -> list[Any]:
    filters: list[Any] = []
    if user_id is not None:
        filters.append(AIlog.user_id == user_id)
    if status is not None:
        filters.append(AIlog.status == status)
    if not include_hidden:
        filters.append(AIlog.is_visible.is_(True))
    return filters


def job_listing(*, user_id: int | None, status: str | None, include_hidden: bool) -> Select[AIlog]:
    """Newest first; user_id None means everyone's jobs."""
    filters = _listing_filters(user_id=user_id, status=status, include_hidden=include_hidden)
    return _jobs().where(*filters).order_by(AIlog.id.desc())


def job_listing_count(
    *, user_id: int | None, status: str | None, include_hidden: bool
) -> Select[*tuple[Any, ...]]:
    filters = _listing_filters(user_id=user_id, status=status, include_hidden=include_hidden)
    return select(func.count()).select_from(AIlog).where(*filters)


def count_queued(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AIlog).where(AIlog.status == QUEUED)) or 0


def claim(
    session: Session, job_ids: Sequence[int], *, now: datetime, also_running: bool, max_attempts: int
) -> list[int]:
    """Marks the jobs running and counts the attempt, in one UPDATE; returns those it took (not
    canceled or taken meanwhile: each claim stamps its own started_date). also_running: a job
    left running by a lost worker may be taken again (Celery redelivers the message of a dead
    worker), within the attempt limit."""
    if not job_ids:
        return []
    _mark_running(session, job_ids, now=now, also_running=also_running, max_attempts=max_attempts)
    return list(session.scalars(select(AIlog.id).where(_taken(job_ids, now=now))))


def claim_with_owners(
    session: Session,
    job_ids: Sequence[int],
    *,
    now: datetime,
    also_running: bool,
    max_attempts: int,
    lease: Lease | None = None,
) -> list[tuple[AIlog, User]]:
    """As claim, but returns the jobs it took (their model loaded) with their owners, by id: an
    UPDATE and one SELECT for what a batch needs. With a lease (the embedded runner), only jobs
    whose lease is free or already this owner's are taken, and they carry the lease on."""
    if not job_ids:
        return []
    _mark_running(
        session, job_ids, now=now, also_running=also_running, max_attempts=max_attempts, lease=lease
    )
    taken = (
        _jobs()
        .add_columns(User)
        .join(User, User.id == AIlog.user_id)
        .where(_taken(job_ids, now=now))
        .order_by(AIlog.id)
    )
    return [(job, owner) for job, owner in session.execute(taken)]


def _mark_running(
    session: Session,
    job_ids: Sequence[int],
    *,
    now: datetime,
    also_running: bool,
    max_attempts: int,
    lease: Lease | None = None,
) -> None:
    statuses = IN_FLIGHT if also_running else (QUEUED,)
    statement = (
        update(AIlog)
        .where(AIlog.id.in_(job_ids), AIlog.status.in_(statuses), AIlog.attempts < max_attempts)
        .values(status=RUNNING, started_date=now, attempts=AIlog.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if lease is not None:
        owner, until = lease
        statement = statement.where(_lease_free(now, owner=owner)).values(
            lease_owner=owner, lease_until=until
        )
    session.execute(statement)


def _taken(job_ids: Sequence[int], *, now: datetime) -> ColumnElement[bool]:
    """The jobs of job_ids this claim took: each claim stamps its own started_date."""
    return and_(AIlog.id.in_(job_ids), AIlog.status == RUNNING, AIlog.started_date == now)


def finish(
    session: Session,
    job_id: int,
    *,
    status: str,
    now: datetime,
    result: str | None = None,
    error: str | None = None,
    from_statuses: Sequence[str] = (RUNNING,),
) -> bool:
    """Ends the job if it is still in one of from_statuses (a job failed by its timeout keeps
    that ending even if the model answers later)."""
    return (
        changed_rows(
            session,
            update(AIlog)
            .where(AIlog.id == job_id, AIlog.status.in_(list(from_statuses)))
            .values(status=status, result=result, error=error, finish_date=now, is_finished=True, **_NO_LEASE)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def finish_running(
    session: Session,
    endings: Sequence[tuple[int, str, str | None, str | None]],
    *,
    now: datetime,
    lease_owner: str | None = None,
) -> int:
    """Ends many running jobs at once, each (id, status, result, error): one executemany.
    Returns how many rows changed (fewer when some were canceled or timed out meanwhile, or,
    with a lease_owner, taken over by another process once that lease had run out)."""
    table = _AI_LOG
    statement = (
        update(table)
        .where(table.c.id == bindparam("job_id"), table.c.status == RUNNING)
        .values(
            status=bindparam("new_status"),
            result=bindparam("new_result"),
            error=bindparam("new_error"),
            finish_date=now,
            is_finished=True,
            **_NO_LEASE,
        )
    )
    if lease_owner is not None:
        statement = statement.where(table.c.lease_owner == lease_owner)
    rows = [
        {"job_id": job_id, "new_status": status, "new_result": result, "new_error": error}
        for job_id, status, result, error in endings
    ]
    return session.connection().execute(statement, rows).rowcount


def requeue(session: Session, job_id: int) -> bool:
    """A job left running by a crash goes back to the queue (its attempt stays counted)."""
    return (
        changed_rows(
            session,
            update(AIlog)
            .where(AIlog.id == job_id, AIlog.status == RUNNING)
            .values(status=QUEUED, started_date=None)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def unclaim(session: Session, job_ids: Sequence[int]) -> int:
    """Running jobs back to the queue as if never started, the attempt not counted (a process
    stopping gives back what it could not finish), their lease given back. Returns how many."""
    if not job_ids:
        return 0
    return changed_rows(
        session,
        update(AIlog)
        .where(AIlog.id.in_(job_ids), AIlog.status == RUNNING)
        .values(status=QUEUED, started_date=None, attempts=AIlog.attempts - 1, **_NO_LEASE)
        .execution_options(synchronize_session=False),
    )


def hide_if_finished(session: Session, job_id: int) -> bool:
    return (
        changed_rows(
            session,
            update(AIlog)
            .where(AIlog.id == job_id, AIlog.is_finished.is_(True))
            .values(is_visible=False)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def left_behind(
    session: Session, *, started_before: datetime | None, lost_to: Lease | None = None
) -> list[AIlog]:
    """Jobs queued or running; with started_before, only those queued or started before then
    (older than any live worker could still be working on); with lost_to (an owner, now), only
    those no process holds for itself: no lease, or another owner's that ran out before now."""
    query = _jobs().where(AIlog.status.in_(IN_FLIGHT)).order_by(AIlog.id)
    if started_before is not None:
        query = query.where(func.coalesce(AIlog.started_date, AIlog.create_date) < started_before)
    if lost_to is not None:
        owner, now = lost_to
        query = query.where(_lease_lost(now, owner=owner))
    return list(session.scalars(query))


# --- the embedded runner's leases (services/ai/leases.py) -------------------------------------

_NO_LEASE: Final = {"lease_owner": None, "lease_until": None}


def _lease_free(now: datetime, *, owner: str) -> ColumnElement[bool]:
    """Nobody else holds the job: no lease, this owner's, or one that ran out."""
    return or_(AIlog.lease_owner.is_(None), AIlog.lease_owner == owner, AIlog.lease_until < now)


def _lease_lost(now: datetime, *, owner: str) -> ColumnElement[bool]:
    """The job is nobody's to run: no lease, or another owner's that ran out (an owner's own
    jobs are in its memory however late its heartbeat)."""
    return or_(AIlog.lease_owner.is_(None), and_(AIlog.lease_owner != owner, AIlog.lease_until < now))


def take_leases(
    session: Session,
    job_ids: Sequence[int],
    *,
    owner: str,
    until: datetime,
    now: datetime,
    lost_only: bool = False,
) -> list[int]:
    """Leases these jobs in flight to owner where no one else holds them (lost_only: where
    nobody holds them, as recovery takes them, not those already owner's); returns those taken.
    On MariaDB the UPDATE locks the rows it changes, so of two processes taking one job at once,
    the second finds it held when the first commits."""
    if not job_ids:
        return []
    free = _lease_lost(now, owner=owner) if lost_only else _lease_free(now, owner=owner)
    session.execute(
        update(AIlog)
        .where(AIlog.id.in_(job_ids), AIlog.status.in_(IN_FLIGHT), free)
        .values(lease_owner=owner, lease_until=until)
        .execution_options(synchronize_session=False)
    )
    held = select(AIlog.id).where(AIlog.id.in_(job_ids), AIlog.lease_owner == owner).order_by(AIlog.id)
    return list(session.scalars(held))


def renew_leases(session: Session, *, owner: str, until: datetime) -> int:
    """The heartbeat: the owner's leases on jobs in flight now run until `until`."""
    return changed_rows(
        session,
        update(AIlog)
        .where(AIlog.lease_owner == owner, AIlog.status.in_(IN_FLIGHT))
        .values(lease_until=until)
        .execution_options(synchronize_session=False),
    )


def release_leases(session: Session, *, owner: str) -> int:
    """The owner stops: its jobs in flight are nobody's (recovery may take them at once)."""
    return changed_rows(
        session,
        update(AIlog)
        .where(AIlog.lease_owner == owner, AIlog.status.in_(IN_FLIGHT))
        .values(**_NO_LEASE)
        .execution_options(synchronize_session=False),
    )


def count_in_flight(session: Session) -> list[tuple[str, str, int]]:
    """(model name, status, jobs) for the jobs queued or running, by the status index
    (GET /metrics, services/metrics.py)."""
    query = (
        select(AI.name, AIlog.status, func.count())
        .join(AI, AI.id == AIlog.ai_id)
        .where(AIlog.status.in_(IN_FLIGHT))
        .group_by(AI.name, AIlog.status)
    )
    return [(name, status, count) for name, status, count in session.execute(query)]
