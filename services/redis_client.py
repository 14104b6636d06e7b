"""The one place Redis clients are made, with the one reconnect policy.

A thread's command that fails on a broken connection is tried once more on a fresh one after a
short pause (redis-py's `Retry` with `RECONNECT`'s exponential backoff). The event loop's client
retries nothing by itself: the broker's subscription (services/broker.py) must see a lost
connection, to tell its sockets to resync, and its loop waits by the same backoff before
subscribing again (a publish that fails is dropped, as every live event may be). Clients give
up fast: when Redis is slow or down, a login waits at most about a second and then goes on
without the rate limit, /ready answers within its probe's time, and a worker's job update is
dropped rather than holding the job (clients catch up from the database).

- `connect(url)`: a client for threads (rate limits, /ready, a Celery worker's job updates),
  one per URL and process, so its connections are reused.
- `connect_async(url, client_name=...)`: for the event loop (the broker's publishing and its
  subscription); the caller closes it.
"""

from functools import lru_cache

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

TIMEOUT_SECONDS = 0.5  # a command of a thread's client
CONNECT_TIMEOUT_SECONDS = 2.0  # the event loop's client: its commands wait as long as they must
COMMAND_RETRIES = 1
# 0.05 s after the first failure, doubling up to 2 s.
RECONNECT = ExponentialBackoff(cap=2.0, base=0.05)


def reconnect_delay(failures: int) -> float:
    """How long to wait before trying again after `failures` failures in a row (0: the first)."""
    return RECONNECT.compute(failures)


@lru_cache(maxsize=8)
def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=TIMEOUT_SECONDS,
        socket_timeout=TIMEOUT_SECONDS,
        retry=Retry(RECONNECT, retries=COMMAND_RETRIES),
    )


def connect_async(url: str, *, client_name: str | None = None) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        client_name=client_name,
        retry=AsyncRetry(RECONNECT, retries=0),
    )
