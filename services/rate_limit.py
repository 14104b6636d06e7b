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

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """Counts one attempt; returns the seconds to wait when over the limit, else None."""

    def reset(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 100_000:  # drop expired windows so memory stays bounded
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            ends, count = self._windows.get(key, (0.0, 0))
            if ends <= now:
                ends, count = now + window_seconds, 0
            count += 1
            self._windows[key] = (ends, count)
        return math.ceil(ends - now) if count > limit else None

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


class RedisRateLimiter:
    PREFIX = "madang:rl:"

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        name = self.PREFIX + key
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds, nx=True)
        pipe.ttl(name)
        try:
            count, _, ttl = pipe.execute()
        except redis.RedisError:
            # An outage of the limiter must not lock every user out of logging in.
            log.warning("rate limiter unavailable; allowing %s", key, exc_info=True)
            return None
        return max(int(ttl), 1) if count > limit else None

    def reset(self) -> None:
        for name in self._redis.scan_iter(self.PREFIX + "*"):
            self._redis.delete(name)


@lru_cache
def get_rate_limiter() -> RateLimiter:
    if settings.REDIS_URL:
        return RedisRateLimiter(redis.Redis.from_url(settings.REDIS_URL))
    return MemoryRateLimiter()


def enforce(scope: str, *, client_ip: str, account: str, per_ip: int, per_account: int) -> None:
    """Raises 429 when this client IP or this account has made too many attempts at `scope`."""
    if not settings.RATE_LIMIT_ENABLED:
        return
    limiter = get_rate_limiter()
    window = settings.RATE_LIMIT_WINDOW_SECONDS
    waits = [
        limiter.hit(f"{scope}:ip:{client_ip}", per_ip, window),
        limiter.hit(f"{scope}:account:{account.strip().lower()}", per_account, window),
    ]
    retry_after = max((w for w in waits if w is not None), default=None)
    if retry_after is not None:
        raise TooManyRequests(
            f"too many {scope} attempts; try again in {retry_after} s", retry_after=retry_after
        )
