"""Engine, sessions and the column types every backend agrees on.

Two ways to a session, and only these two:
- a request's: `RequestSlots.session()` (deps.SessionDep), admitted by a pool slot; its statements
  run through `on_database`, which alone decides between the event loop (SQLite) and a worker
  thread (a database server);
- everything else (the AI worker, training runs, recovery, chat sockets, the CLI, scripts):
  `session_scope()`.
"""

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from sqlalchemy import DateTime, Dialect, create_engine, event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from config import settings

T = TypeVar("T")
W = TypeVar("W")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite and MySQL keep no zone, so values are stored as naive UTC and handed back aware;
    MySQL gets microsecond precision so ordering by time is as fine as on SQLite.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return make_server_engine(url)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pool_options())

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside a writer; busy_timeout makes writers queue, not fail.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.SQLITE_BUSY_TIMEOUT_MS)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Searches read the same index pages from many connections: mapped, not copied into each.
        cursor.execute(f"PRAGMA mmap_size={int(settings.SQLITE_MMAP_MIB) * 1024 * 1024}")
        cursor.close()

    return engine


# A pooled connection idle longer than this is pinged before use (see make_server_engine).
PING_AFTER_IDLE_SECONDS = 10.0
_RETURNED_AT = "returned_at"  # keys in a pooled connection's info dict
_TRANSACTION_ENDED = "transaction_ended"


def make_server_engine(url: str) -> Engine:
    """An engine for a database server (MariaDB/MySQL), which a request waits on for each round
    trip: none is spent on bookkeeping the pool can do without.

    - READ COMMITTED, set once per connection when it is made: each statement reads the latest
      commit, and InnoDB takes no gap locks for searches. Under REPEATABLE READ an UPDATE that
      finds no row locks the gap where the row would be, and two such transactions inserting
      into that gap deadlock.
    - No ping on every checkout (pool_pre_ping): only a connection idle for more than
      PING_AFTER_IDLE_SECONDS is pinged, since one in steady use was just seen working; a dead
      one is replaced before the request gets it. pool_recycle keeps connections younger than
      the server's wait_timeout (8 h by default). The trade: a server restart under load fails
      the statement that finds its connection gone, and the pool then replaces them all.
    - One ROLLBACK per transaction, not two: a Session ends its transaction (commit or
      rollback) and then returns the connection, and the pool's rollback-on-return would send
      a second ROLLBACK for nothing. It is sent only when something may have run since the
      connection's last COMMIT or ROLLBACK (a raw DB-API user, an error on the way).
    """
    engine = create_engine(
        url, pool_recycle=3600, pool_reset_on_return=None, isolation_level="READ COMMITTED", **pool_options()
    )

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.info[_TRANSACTION_ENDED] = False
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is not None and time.monotonic() - returned_at > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError("a pooled connection went away while idle") from exc

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _transaction_end(connection: Any) -> None:
        if not connection.invalidated:  # a connection lost on the way has nothing to reset
            connection.info[_TRANSACTION_ENDED] = True

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(connection: Any, *_: Any) -> None:
        connection.info[_TRANSACTION_ENDED] = False

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if not (state.transaction_was_reset or record.info.get(_TRANSACTION_ENDED)):
            dbapi_connection.rollback()

    return engine


def pool_options() -> dict[str, int]:
    # Requests hold at most DATABASE_POOL_SIZE sessions at once (RequestSlots); the overflow
    # is headroom for background work (AI runner, chat sockets), which opens its own sessions.
    return {"pool_size": settings.DATABASE_POOL_SIZE, "max_overflow": settings.DATABASE_POOL_SIZE}


class RequestSlots:
    """A request's way to the database: sessions admitted by the app's pool slots, at most
    DATABASE_POOL_SIZE at once, waiting on the event loop (None: no limit, e.g. no app running).

    A request keeps its connection between the thread-pool hops of its dependencies and its
    endpoint. Were more requests admitted than the pool holds, every worker thread could end up
    blocked on the pool while the requests holding connections wait for a thread: a deadlock
    that lasts until the pool times out. Waiting here, before any thread is taken, cannot; and
    since a slot is only ever taken together with its session (session(), run()), no caller can
    forget it. deps.SessionDep is a session() for the whole request; a route that must hold no
    session for a while (a long poll) or that saves FastAPI's generator dependency on a hot path
    takes the RequestSlots itself (deps.DatabaseDep) and opens its sessions when it needs them.
    """

    def __init__(self, size: int | None) -> None:
        self._semaphore = anyio.Semaphore(size) if size is not None else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """A request session within a slot. Opening a Session does no I/O and closing one hands
        its connection back to the pool, so neither is worth a trip to the thread pool (each
        trip costs more than the work): the request's last trip ends its transaction (commit or
        rollback) there."""
        semaphore = self._semaphore
        if semaphore is not None:
            await semaphore.acquire()
        try:
            with SessionLocal() as session:
                yield session
        finally:
            if semaphore is not None:
                semaphore.release()

    async def run(self, work: Callable[[Session], T], *, inline: bool = True) -> T:
        """work's answer, from a session of its own that it closes in the same trip (a server's
        ROLLBACK is a round trip, kept off the event loop), within a slot; on_database decides
        where it runs."""
        async with self.session() as session:
            return await on_database(partial(_closing, session, work), inline=inline)


def _closing(session: Session, work: Callable[[Session], T]) -> T:
    with session:
        return work(session)


UNLIMITED = RequestSlots(None)  # scripts and tests without a running app: nothing to wait for


engine = make_engine(settings.DATABASE_URL)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
# SQLite runs inside this process: a short query is CPU work, cheaper on the event loop than a
# trip to a worker thread. A database server makes the caller wait for each round trip, which
# on the event loop would stall every other request meanwhile; such waits belong in threads.
IN_PROCESS_DATABASE = engine.dialect.name == "sqlite"


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for work outside a request (the AI worker, training runs and recovery, chat
    sockets, the CLI), closed on the way out; commits are the caller's. It takes no request slot: background
    work uses the pool's overflow (pool_options)."""
    with SessionLocal() as session:
        yield session


async def on_database(work: Callable[[], T], *, inline: bool = True) -> T:
    """work (a request session's statements) where its database wants it: on the event loop when
    the database is in-process and the work is short (`inline`: a few index reads; SQLite's
    thread hop costs more than they do), else in a worker thread, so that a server's round trips
    never stall the other requests. The one place that makes this choice."""
    if IN_PROCESS_DATABASE and inline:
        return work()
    return await to_thread.run_sync(work)


async def read_then_write(
    session: Session, read: Callable[[], tuple[T, Callable[[], W] | None]]
) -> tuple[T, W | None]:
    """read() gives an answer and maybe a write still to do (a callable, or None); the answer and
    what the write returned. A write may wait (SQLite's write lock, a server's row lock), so it
    always runs in a worker thread; in-process, the read runs on the event loop before it. With a
    server both go in one trip to a thread, and a read without a write ends its transaction there
    (closing the session on the loop would otherwise cost a ROLLBACK round trip)."""
    if IN_PROCESS_DATABASE:
        answer, write = read()
        return answer, None if write is None else await to_thread.run_sync(write)
    return await to_thread.run_sync(_read_then_write, session, read)


def _read_then_write(
    session: Session, read: Callable[[], tuple[T, Callable[[], W] | None]]
) -> tuple[T, W | None]:
    answer, write = read()
    if write is None:
        session.commit()  # ends a transaction that wrote nothing, as a ROLLBACK would
        return answer, None
    return answer, write()


class WriteTurns:
    """One counting transaction at a time per process on SQLite.

    SQLite lets one transaction write at a time; the others wait in its busy handler, which
    sleeps in growing steps (1, 2, 5, 10, ... 100 ms) and so wakes late: a queue of writers
    turns into latency spikes of a hundred milliseconds and more (read-post p99 190 ms against
    97 ms with turns, in-process at 32 connections). Waiting on a lock instead, the next writer
    starts as soon as the last commits. MariaDB locks rows and needs none of this. Used by the
    contended writes (views, likes, comments); a turn not had within the busy timeout is given
    up, and the write then waits in SQLite's handler as before.
    """

    def __init__(self, engine: Engine) -> None:
        self._needed = engine.dialect.name == "sqlite"
        self._lock = threading.Lock()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn for the whole transaction: from before its first write to its commit
        or rollback."""
        if not self._needed:
            yield
            return
        acquired = self._lock.acquire(timeout=settings.SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            yield
        finally:
            if acquired:
                self._lock.release()


write_turns = WriteTurns(engine)
