"""Engine, sessions and the column types every backend agrees on."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import DateTime, Dialect, create_engine, event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from config import settings


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
        # READ COMMITTED: each statement reads the latest commit, and InnoDB takes no gap locks
        # for searches. Under REPEATABLE READ an UPDATE that finds no row locks the gap where
        # the row would be, and two such transactions inserting into that gap deadlock.
        return create_engine(
            url, pool_pre_ping=True, pool_recycle=3600, isolation_level="READ COMMITTED", **pool_options()
        )
    engine = create_engine(url, connect_args={"check_same_thread": False}, **pool_options())

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside a writer; busy_timeout makes writers queue, not fail.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.SQLITE_BUSY_TIMEOUT_MS)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def pool_options() -> dict[str, int]:
    # Requests hold at most DATABASE_POOL_SIZE sessions at once (RequestSlots); the overflow
    # is headroom for background work (AI runner, chat sockets), which opens its own sessions.
    return {"pool_size": settings.DATABASE_POOL_SIZE, "max_overflow": settings.DATABASE_POOL_SIZE}


class RequestSlots:
    """Admits at most DATABASE_POOL_SIZE request sessions at once, waiting on the event loop.

    A request keeps its connection between the thread-pool hops of its dependencies and its
    endpoint. Were more requests admitted than the pool holds, every worker thread could end up
    blocked on the pool while the requests holding connections wait for a thread: a deadlock
    that lasts until the pool times out. Waiting here, before any thread is taken, cannot.
    """

    SESSION_KEY = "request_slot"

    def __init__(self, size: int) -> None:
        self._semaphore = anyio.Semaphore(size)

    async def open_session(self) -> Session:
        await self._semaphore.acquire()
        session = SessionLocal()
        session.info[self.SESSION_KEY] = self._semaphore
        return session

    @classmethod
    def release(cls, session: Session) -> None:
        """Gives the session's slot back (on the event loop) once it holds no connection;
        idempotent, and a no-op for sessions not opened here."""
        semaphore = session.info.pop(cls.SESSION_KEY, None)
        if semaphore is not None:
            semaphore.release()


engine = make_engine(settings.DATABASE_URL)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
# SQLite runs inside this process: a short query is CPU work, cheaper on the event loop than a
# trip to a worker thread. A database server makes the caller wait for each round trip, which
# on the event loop would stall every other request meanwhile; such waits belong in threads.
IN_PROCESS_DATABASE = engine.dialect.name == "sqlite"


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
