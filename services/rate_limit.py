"""Fixed-window counters for abuse limits: in memory on one process, Redis when REDIS_URL is
set so every API process shares the same counts."""

import logging
import math
import threading
import time
from functools import lru_cache
from typing import Protocol

import redis

from config import settings
from errors import TooManyRequests
from services import redis_client

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int, *, cost: int = 1) -> int | None:
        """Counts one attempt, weighing `cost` (an upload counts its files); returns the seconds
        to wait when the window's total is over the limit, else None."""

    def reset(self) -> None: ...


class MemoryRateLimiter:
    """Fixed windows in a dict, each key's (end, count). Past SWEEP_AFTER windows the expired
    ones are dropped, so memory follows the windows still open; the next sweep waits until the
    dict has doubled, since a sweep walks every window and a flood of distinct keys (an address
    range) keeps them open: one on every hit cost ~15 ms at 100,000, under the lock every login
    takes."""

    SWEEP_AFTER = 100_000

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._sweep_after = self.SWEEP_AFTER

    def hit(self, key: str, limit: int, window_seconds: int, *, cost: int = 1) -> int | None:
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > self._sweep_after:
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
                self._sweep_after = max(self.SWEEP_AFTER, 2 * len(self._windows))
            ends, count = self._windows.get(key, (0.0, 0))
            if ends <= now:
                ends, count = now + window_seconds, 0
            count += cost
            self._windows[key] = (ends, count)
        return math.ceil(ends - now) if count > limit else None

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._sweep_after = self.SWEEP_AFTER


class RedisRateLimiter:
    """The same fixed windows in Redis, so every API process counts against one total."""

    def __init__(self, client: redis.Redis, *, prefix: str | None = None) -> None:
        self._redis = client
        self.prefix = settings.RATE_LIMIT_KEY_PREFIX if prefix is None else prefix

    def hit(self, key: str, limit: int, window_seconds: int, *, cost: int = 1) -> int | None:
        name = self.prefix + key
        # SET NX EX opens a window with its expiry in one step (EXPIRE ... NX would need Redis 7);
        # MULTI/EXEC keeps the three commands together.
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(name, 0, ex=window_seconds, nx=True)
        pipe.incrby(name, cost)
        pipe.ttl(name)
        try:
            _, count, ttl = pipe.execute()
            if ttl < 0:  # a counter left without expiry (by older code) would lock out forever
                self._redis.expire(name, window_seconds)
                ttl = window_seconds
        except redis.RedisError:
            # An outage of the limiter must not lock every user out of logging in.
            log.warning("rate limiter unavailable; allowing %s", key, exc_info=True)
            return None
        return max(int(ttl), 1) if count > limit else None

    def reset(self) -> None:
        for name in self._redis.scan_iter(self.prefix + "*"):
            self._redis.delete(name)


@lru_cache
def get_rate_limiter() -> RateLimiter:
    if settings.REDIS_URL:
        # A client that gives up fast: when Redis is slow or down a login waits at most about a
        # second, then goes on without the limit.
        return RedisRateLimiter(redis_client.connect(settings.REDIS_URL))
    return MemoryRateLimiter()


def enforce(scope: str, *, client_ip: str, account: str, per_ip: int, per_account: int) -> None:
    """Raises 429 when this client IP or this account has made too many attempts at `scope`."""
    _enforce(
        scope,
        (f"{scope}:ip:{client_ip}", per_ip),
        (f"{scope}:account:{account.strip().lower()}", per_account),
    )


def enforce_per_ip(scope: str, *, client_ip: str, limit: int) -> None:
    """Raises 429 when this client IP has made too many attempts at `scope` (for attempts that
    name no existing account, such as sign-ups)."""
    _enforce(scope, (f"{scope}:ip:{client_ip}", limit))


def enforce_per_user(
    scope: str, *, user_id: int, limit: int, window_seconds: int, cost: int = 1, detail: str
) -> None:
    """Raises 429 when this user's attempts at `scope` in the window, each weighing `cost`, pass
    `limit`. A refused attempt counts too, as a failed login does, so Retry-After is when the
    window ends and everything is allowed again."""
    _enforce(
        scope, (f"{scope}:user:{user_id}", limit), window_seconds=window_seconds, cost=cost, detail=detail
    )


def _enforce(
    scope: str,
    *counters: tuple[str, int],
    window_seconds: int | None = None,
    cost: int = 1,
    detail: str | None = None,
) -> None:
    """Counts the attempt on every (key, limit) counter; 429 with the longest wait if any is over."""
    if not settings.RATE_LIMIT_ENABLED:
        return
    limiter = get_rate_limiter()
    window = window_seconds or settings.RATE_LIMIT_WINDOW_SECONDS
    waits = [limiter.hit(key, limit, window, cost=cost) for key, limit in counters]
    retry_after = max((w for w in waits if w is not None), default=None)
    if retry_after is not None:
        raise TooManyRequests(
            f"{detail or f'too many {scope} attempts'}; try again in {retry_after} s", retry_after=retry_after
        )
