"""Abuse limits on login, password checks, password reset and sign-up: per client IP and per
account, in memory or Redis."""

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from httpx2 import Response

from config import settings
from main import app
from services import rate_limit, security
from services.rate_limit import MemoryRateLimiter, RedisRateLimiter
from services.redis_client import connect as connect_to_redis
from tests.conftest import PASSWORD, TEST_REDIS_URL, MakeUser, Person, redis_or_skip

API = settings.API_PREFIX
REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "LOGIN_LIMIT_PER_ACCOUNT": 3,
        "LOGIN_LIMIT_PER_IP": 5,
        "PASSWORD_RESET_LIMIT_PER_ACCOUNT": 2,
        "PASSWORD_RESET_LIMIT_PER_IP": 4,
        "SIGNUP_LIMIT_PER_IP": 3,
    }.items():
        monkeypatch.setattr(settings, name, value)


def client_from(ip: str) -> TestClient:
    return TestClient(app, client=(ip, 50000))


def try_login(client: TestClient, username: str, password: str = "wrong-password") -> int:
    return client.post(f"{API}/auth/login", data={"username": username, "password": password}).status_code


def ask_reset(client: TestClient, email: str) -> int:
    return client.post(f"{API}/auth/password-reset", json={"email": email}).status_code


def sign_up(client: TestClient, name: str) -> Response:
    body = {"name": name, "email": f"{name}@example.com", "password": "a long secret"}
    return client.post(f"{API}/auth/signup", json=body)


# --- through the API (in-memory limiter, the embedded default) -------------------------------


@pytest.mark.usefixtures("small_limits")
def test_login_over_the_per_account_limit_is_429_with_retry_after(client: TestClient, user: Person) -> None:
    assert [try_login(client, user.name) for _ in range(3)] == [401, 401, 401]
    response = client.post(f"{API}/auth/login", data={"username": user.name, "password": "wrong-password"})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= settings.RATE_LIMIT_WINDOW_SECONDS
    assert response.json()["detail"]
    assert response.json()["code"] == "rate_limited"


@pytest.mark.usefixtures("small_limits")
def test_the_per_account_limit_holds_even_with_the_right_password(client: TestClient, user: Person) -> None:
    for _ in range(3):
        try_login(client, user.name)
    assert try_login(client, user.name, PASSWORD) == 429


@pytest.mark.usefixtures("small_limits")
def test_the_per_account_limit_holds_across_client_ips(user: Person) -> None:
    statuses = [try_login(client_from(f"10.0.0.{n}"), user.name) for n in range(1, 5)]
    assert statuses == [401, 401, 401, 429]


@pytest.mark.usefixtures("small_limits")
def test_logins_by_name_and_by_email_count_against_one_account(client: TestClient, user: Person) -> None:
    statuses = [try_login(client, login) for login in (user.name, user.email, user.name.upper(), user.email)]
    assert statuses == [401, 401, 401, 429]


@pytest.mark.usefixtures("small_limits")
def test_other_accounts_are_not_limited_by_one_accounts_failures(
    make_user: MakeUser,
) -> None:
    target, bystander = make_user("target"), make_user("bystander")
    for n in range(4):
        try_login(client_from(f"10.0.1.{n}"), target.name)
    assert try_login(client_from("10.0.2.1"), bystander.name, PASSWORD) == 200


@pytest.mark.usefixtures("small_limits")
def test_login_over_the_per_ip_limit_across_accounts_is_429(client: TestClient, make_user: MakeUser) -> None:
    people = [make_user(f"person{n}") for n in range(6)]
    statuses = [try_login(client, person.name) for person in people]
    assert statuses == [401] * 5 + [429]
    assert try_login(client_from("10.9.9.9"), people[-1].name, PASSWORD) == 200


@pytest.mark.usefixtures("small_limits")
def test_guessing_unknown_names_counts_against_the_ip(client: TestClient) -> None:
    statuses = [try_login(client, f"ghost{n}") for n in range(6)]
    assert statuses == [401] * 5 + [429]


@pytest.mark.usefixtures("small_limits")
def test_password_reset_over_the_per_account_limit_is_429(user: Person) -> None:
    statuses = [ask_reset(client_from(f"10.0.3.{n}"), user.email) for n in range(3)]
    assert statuses == [202, 202, 429]


@pytest.mark.usefixtures("small_limits")
def test_password_reset_over_the_per_ip_limit_is_429(client: TestClient) -> None:
    responses = [
        client.post(f"{API}/auth/password-reset", json={"email": f"p{n}@example.com"}) for n in range(5)
    ]
    assert [r.status_code for r in responses] == [202] * 4 + [429]
    assert int(responses[-1].headers["Retry-After"]) >= 1
    assert responses[-1].json()["detail"]


def change_my_password(client: TestClient, person: Person, current: str) -> int:
    body = {"current_password": current, "new_password": "a new password, 2026"}
    return client.put(f"{API}/users/me/password", json=body, headers=person.headers).status_code


@pytest.mark.usefixtures("small_limits")
def test_guessing_my_password_with_a_token_is_limited_like_logins(client: TestClient, user: Person) -> None:
    assert [change_my_password(client, user, "wrong-password") for _ in range(3)] == [400, 400, 400]
    # Over the limit even the right password waits: a guesser learns nothing more in the window.
    response = client.put(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a new password, 2026"},
        headers=user.headers,
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == "rate_limited"
    assert try_login(client, user.name, PASSWORD) == 200  # logins keep their own count


@pytest.mark.usefixtures("small_limits")
def test_account_deletion_counts_against_the_same_password_checks(client: TestClient, user: Person) -> None:
    assert [change_my_password(client, user, "wrong-password") for _ in range(3)] == [400, 400, 400]
    response = client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=user.headers)
    assert response.status_code == 429
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200  # still there


@pytest.mark.usefixtures("small_limits")
def test_guessing_my_password_through_an_email_change_counts_against_the_same_password_checks(
    client: TestClient, user: Person
) -> None:
    def change_my_email(password: str) -> Response:
        body = {"email": "thief@example.net", "password": password}
        return client.patch(f"{API}/users/me", json=body, headers=user.headers)

    assert [change_my_email("wrong-password").status_code for _ in range(2)] == [400, 400]
    assert change_my_password(client, user, "wrong-password") == 400
    response = change_my_email(PASSWORD)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get(f"{API}/users/me", headers=user.headers).json()["email"] == user.email


@pytest.mark.usefixtures("small_limits")
def test_signups_over_the_per_ip_limit_are_429_with_retry_after(client: TestClient) -> None:
    assert [sign_up(client, f"newcomer{n}").status_code for n in range(3)] == [201] * 3
    response = sign_up(client, "newcomer3")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= settings.RATE_LIMIT_WINDOW_SECONDS
    assert response.json()["code"] == "rate_limited"
    assert sign_up(client_from("10.0.5.1"), "newcomer3").status_code == 201  # another client IP


@pytest.mark.usefixtures("small_limits")
def test_refused_signups_count_against_the_ip_too(client: TestClient, user: Person) -> None:
    """Probing which addresses have accounts (409 email_taken) is a sign-up attempt as well."""
    taken = {"name": "someone", "email": user.email, "password": "a long secret"}
    answers = [client.post(f"{API}/auth/signup", json=taken).status_code for _ in range(3)]
    assert answers == [409] * 3
    assert client.post(f"{API}/auth/signup", json=taken).status_code == 429
    assert sign_up(client, "newcomer").status_code == 429


@pytest.mark.usefixtures("small_limits")
def test_a_signup_over_the_limit_costs_no_password_hash(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        sign_up(client, f"newcomer{n}")
    hashed: list[str] = []

    def counting_hash(password: str) -> str:
        hashed.append(password)
        return "never stored"

    monkeypatch.setattr(security, "hash_password", counting_hash)
    assert sign_up(client, "newcomer3").status_code == 429
    assert hashed == []


@pytest.mark.usefixtures("small_limits")
def test_rate_limit_enabled_false_turns_every_limit_off(
    client: TestClient, user: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    assert {try_login(client, user.name) for _ in range(8)} == {401}
    assert {ask_reset(client, user.email) for _ in range(8)} == {202}
    assert {sign_up(client, f"newcomer{n}").status_code for n in range(8)} == {201}


# --- the limiters themselves -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_limiter_counts_up_to_the_limit_then_asks_to_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(rate_limit.time, "monotonic", clock)
    limiter = MemoryRateLimiter()
    assert [limiter.hit("k", 2, 60) for _ in range(2)] == [None, None]
    clock.now += 20
    assert limiter.hit("k", 2, 60) == 40


def test_memory_limiter_starts_a_new_window_when_the_old_one_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(rate_limit.time, "monotonic", clock)
    limiter = MemoryRateLimiter()
    for _ in range(3):
        limiter.hit("k", 2, 60)
    clock.now += 60
    assert limiter.hit("k", 2, 60) is None


def test_memory_limiter_past_its_size_does_not_walk_every_window_on_each_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past 100,000 windows the limiter drops the expired ones. With that many still open (one
    login from each address of a flood), it built its dict anew on every hit (~15 ms, under the
    lock every login takes); a sweep now waits until the windows have doubled since the last."""
    clock = FakeClock()
    monkeypatch.setattr(rate_limit.time, "monotonic", clock)
    limiter = MemoryRateLimiter()
    for i in range(100_001):
        limiter.hit(f"login:ip:{i}", 30, 60)

    rebuilt = 0
    for i in range(1000):
        before = limiter._windows
        limiter.hit(f"login:ip:more-{i}", 30, 60)
        rebuilt += limiter._windows is not before

    assert rebuilt == 1
    assert limiter.hit("login:ip:0", 1, 60) is not None  # the flood's windows are still counted


def test_memory_limiter_past_its_size_drops_the_expired_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(rate_limit.time, "monotonic", clock)
    limiter = MemoryRateLimiter()
    for i in range(100_001):
        limiter.hit(f"login:ip:{i}", 30, 60)
    clock.now += 60

    limiter.hit("login:ip:late", 30, 60)

    assert list(limiter._windows) == ["login:ip:late"]


def test_memory_limiter_keeps_keys_apart() -> None:
    limiter = MemoryRateLimiter()
    limiter.hit("a", 1, 60)
    assert limiter.hit("a", 1, 60) is not None
    assert limiter.hit("b", 1, 60) is None


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    client.close()


RedisLimiterFactory = Callable[[], RedisRateLimiter]


@pytest.fixture
def redis_limiter(redis_client: redis.Redis) -> Iterator[RedisLimiterFactory]:
    """Makes limiters on their own Redis connections that share one key prefix, as separate
    API processes would; the prefix is unique to the test so parallel runs do not collide."""
    prefix = f"madang-test:{uuid.uuid4().hex}:rl:"

    def make() -> RedisRateLimiter:
        return RedisRateLimiter(connect_to_redis(REDIS_URL), prefix=prefix)

    yield make
    RedisRateLimiter(redis_client, prefix=prefix).reset()


def test_redis_limiter_counts_up_to_the_limit_then_asks_to_wait(redis_limiter: RedisLimiterFactory) -> None:
    limiter = redis_limiter()
    assert [limiter.hit("k", 2, 60) for _ in range(2)] == [None, None]
    wait = limiter.hit("k", 2, 60)
    assert wait is not None and 1 <= wait <= 60


def test_redis_limiter_gives_each_window_an_expiry(
    redis_limiter: RedisLimiterFactory, redis_client: redis.Redis
) -> None:
    limiter = redis_limiter()
    limiter.hit("k", 2, 60)
    limiter.hit("k", 2, 60)
    assert 0 < redis_client.ttl(limiter.prefix + "k") <= 60


def test_redis_limiter_starts_a_new_window_when_the_old_one_expires(
    redis_limiter: RedisLimiterFactory, redis_client: redis.Redis
) -> None:
    limiter = redis_limiter()
    for _ in range(3):
        limiter.hit("k", 2, 60)
    redis_client.delete(limiter.prefix + "k")  # what Redis does when the TTL runs out
    assert limiter.hit("k", 2, 60) is None
    assert 0 < redis_client.ttl(limiter.prefix + "k") <= 60


def test_redis_limiter_repairs_a_counter_left_without_expiry(
    redis_limiter: RedisLimiterFactory, redis_client: redis.Redis
) -> None:
    limiter = redis_limiter()
    redis_client.set(limiter.prefix + "k", 50)
    assert limiter.hit("k", 2, 60) is not None
    assert 0 < redis_client.ttl(limiter.prefix + "k") <= 60


def test_two_redis_limiters_share_their_counts(redis_limiter: RedisLimiterFactory) -> None:
    first_process, second_process = redis_limiter(), redis_limiter()
    assert first_process.hit("k", 3, 60) is None
    assert second_process.hit("k", 3, 60) is None
    assert first_process.hit("k", 3, 60) is None
    assert second_process.hit("k", 3, 60) is not None


def test_redis_limiter_lets_requests_through_quickly_when_redis_is_down() -> None:
    unreachable = RedisRateLimiter(connect_to_redis("redis://127.0.0.1:1/0"))
    started = time.monotonic()
    assert unreachable.hit("k", 0, 60) is None
    assert time.monotonic() - started < 2


def test_redis_url_selects_the_redis_limiter(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setattr(settings, "REDIS_URL", REDIS_URL)
    rate_limit.get_rate_limiter.cache_clear()
    try:
        assert isinstance(rate_limit.get_rate_limiter(), RedisRateLimiter)
    finally:
        rate_limit.get_rate_limiter.cache_clear()


@pytest.mark.usefixtures("small_limits")
def test_login_limit_through_the_api_on_redis_is_shared_by_two_processes(
    user: Person, redis_limiter: RedisLimiterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API processes, each with its own limiter on the same Redis, count one total."""
    process_a, process_b = redis_limiter(), redis_limiter()
    limiters = iter([process_a, process_b, process_a, process_b])
    monkeypatch.setattr(rate_limit, "get_rate_limiter", lambda: next(limiters))
    client = client_from("10.0.4.1")
    assert [try_login(client, user.name) for _ in range(4)] == [401, 401, 401, 429]
