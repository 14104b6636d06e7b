"""Engine, sessions and the column types every backend agrees on."""

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
        return create_engine(url, pool_pre_ping=True, pool_recycle=3600, **pool_options())
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
