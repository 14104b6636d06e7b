"""Every knob of the server, read once from the environment or `.env`.

With no settings at all the server runs on embedded defaults (SQLite file, in-memory rate
limits, mail written to the log), so a newcomer needs no other service to try it.
"""

import contextlib
import os
import re
import secrets
from functools import cached_property, lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent

IPNetwork = IPv4Network | IPv6Network
# A web origin: scheme, host and an optional port, nothing after (CORS_ORIGINS).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    ENV: Literal["development", "production"] = "development"
    PROJECT_NAME: str = "Madang"
    API_PREFIX: str = "/api/v1"

    # Logs (logs.py): "json" writes one JSON object a line, "text" readable lines; empty: json
    # when ENV=production, text in development.
    LOG_FORMAT: Literal["json", "text", ""] = ""
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    DATABASE_URL: str = f"sqlite:///{BASE_DIR / 'madang.sqlite3'}"
    DATABASE_POOL_SIZE: int = 10
    # Threads that run sync endpoints and dependencies (anyio's default is 40); at most
    # DATABASE_POOL_SIZE, since each works for a request holding a connection.
    WORKER_THREADS: int = 8
    SQLITE_BUSY_TIMEOUT_MS: int = 5000
    # SQLite reads the database file through a memory map of this many MiB (0: through reads into
    # each connection's own page cache). Address space, not memory: the pages are the OS's file
    # cache, shared by every connection, where read() copied them into each connection's cache.
    SQLITE_MMAP_MIB: int = Field(default=1024, ge=0)

    # Empty means: development keeps a random key in SECRET_KEY_FILE; production refuses to start.
    SECRET_KEY: str = ""
    SECRET_KEY_FILE: Path = BASE_DIR / ".secret_key"
    ACCESS_TOKEN_MINUTES: int = 15
    REFRESH_TOKEN_DAYS: int = 14
    PASSWORD_RESET_MINUTES: int = 30
    PASSWORD_RESET_URL: str = ""  # e.g. https://example.com/reset?token= ; the token is appended

    # Argon2id cost (pwdlib defaults); tests lower them so a hash takes a millisecond.
    PASSWORD_HASH_TIME_COST: int = 3
    PASSWORD_HASH_MEMORY_KIB: int = 65536
    PASSWORD_HASH_PARALLELISM: int = 4

    REDIS_URL: str = ""
    # The Redis pub/sub channel every API process shares for live events (chat, bans).
    BROKER_CHANNEL: str = "madang:live"

    # Live chat over WebSocket.
    CHAT_PING_SECONDS: float = 20.0  # a socket silent for two intervals is closed as dead
    CHAT_MESSAGES_PER_SECOND: int = 20  # per socket; more gets `rate_limited` errors
    CHAT_SEND_QUEUE: int = 1000  # events waiting for a slow socket before it is dropped

    SMTP_HOST: str = ""
    SMTP_PORT: int = 25
    SMTP_USER: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = 10.0
    MAIL_FROM: str = "Madang <no-reply@madang.local>"

    RATE_LIMIT_ENABLED: bool = True
    LOGIN_LIMIT_PER_IP: int = 30  # attempts per window
    LOGIN_LIMIT_PER_ACCOUNT: int = 10
    PASSWORD_RESET_LIMIT_PER_IP: int = 10
    PASSWORD_RESET_LIMIT_PER_ACCOUNT: int = 3
    SIGNUP_LIMIT_PER_IP: int = 10  # sign-ups per window from one client IP (each costs a hash)
    RATE_LIMIT_WINDOW_SECONDS: int = 60
    # Prefixes every rate-limit counter in Redis: counters are keyed by user id, so two
    # deployments (or test runs) sharing one Redis need prefixes of their own.
    RATE_LIMIT_KEY_PREFIX: str = "madang:rl:"

    # Addresses or CIDRs (comma-separated) of reverse proxies whose X-Forwarded-For is believed.
    # Empty: the client IP is always the socket's peer address.
    TRUSTED_PROXIES: str = ""
    # Strict-Transport-Security max-age sent on every answer; 0 sends none (plain-HTTP development).
    HSTS_SECONDS: int = 0
    # Origins (comma-separated, e.g. https://app.example.com,http://localhost:5173) whose pages may
    # call the API from a browser (CORS); empty: no CORS headers at all. "*": any origin, refused
    # when ENV=production.
    CORS_ORIGINS: str = ""

    # GET /metrics in Prometheus's text format (services/metrics.py), to the clients METRICS_ALLOW
    # names (addresses or networks, comma-separated; judged on the address TRUSTED_PROXIES
    # resolve); off: 404. Several processes on one machine share PROMETHEUS_MULTIPROC_DIR, an
    # environment variable of prometheus-client's own (docs/operations.md#metrics).
    METRICS_ENABLED: bool = False
    METRICS_ALLOW: str = "127.0.0.0/8, ::1"

    MAX_JSON_BODY_KB: int = 256
    UPLOAD_DIR: Path = BASE_DIR / "uploads"
    MAX_UPLOAD_MB: int = 10
    UPLOAD_QUOTA_MB: int = 1024  # stored attachment bytes per user; deleting one frees its bytes
    UPLOAD_LIMIT_PER_HOUR: int = 200  # files one user may upload an hour
    # Where new attachments are stored (services/storage.py): "local" under UPLOAD_DIR, "s3" in
    # a bucket of any S3-compatible service (AWS S3, MinIO, Ceph RGW, Cloudflare R2). Each row
    # names its own backend, so rows stored before a switch are still served from theirs.
    STORAGE_BACKEND: Literal["local", "s3"] = "local"
    S3_ENDPOINT_URL: str = ""  # empty: AWS S3 of S3_REGION; else e.g. http://127.0.0.1:9000 (MinIO)
    S3_BUCKET: str = ""
    S3_REGION: str = "us-east-1"  # R2: "auto"
    # Empty: boto3's own lookup (AWS_* environment variables, ~/.aws, an instance role).
    S3_ACCESS_KEY_ID: str = ""
    S3_SECRET_ACCESS_KEY: str = ""
    S3_PREFIX: str = ""  # keys go under it ("madang/"), so one bucket may serve several things
    # Path-style URLs (endpoint/bucket/key): what MinIO and Ceph RGW answer without wildcard DNS.
    S3_FORCE_PATH_STYLE: bool = False
    # Downloads answer 302 to a presigned GET URL (valid 60 s) once the reader's access is checked,
    # so the bytes go from the bucket to the browser instead of through the API process.
    S3_PRESIGNED_DOWNLOADS: bool = False
    POST_CONTENT_MAX_CHARS: int = 10_000
    VIEW_DEDUPE_MINUTES: int = 480

    AI_BACKEND: Literal["thread", "celery"] = "thread"
    AI_QUEUE_MAX: int = 1000  # jobs waiting to run, all models together; more answers 429
    AI_MAX_BATCH: int = 32
    # How long the oldest queued job may wait for companions; 0 runs whatever is queued as soon
    # as a worker is free, so a lone request is never delayed (batches still form under load).
    AI_MAX_WAIT_MS: int = 0
    # While a batch computes, how long a smaller one may wait for companions before a free
    # worker starts it (ml/runner.py: under load, batches of a handful cost the model more). It
    # never waits past the end of the batch computing, so a job waits at most one batch longer.
    AI_FILL_WAIT_MS: int = 100
    # Batches computing at once in the embedded runner, each in a model process of its own; 0:
    # one per core. One single-threaded process per core outruns one process using every core
    # (2 cores: 646 against 430 sentences/s at batch 32); each process holds ~0.6 GiB.
    AI_WORKERS: int = 0
    # 0: in the model processes, the cores shared among them and the API process (at least
    # one); in-process, torch's default (one per core)
    AI_TORCH_THREADS: int = 0
    # The API process runs the forward passes in a child process (python -m ml.model_child):
    # PyTorch's Python-level work would otherwise share the GIL with request handling.
    AI_MODEL_PROCESS: bool = True
    AI_JOB_TIMEOUT_SECONDS: float = 60.0  # from the start of a job; then it is failed
    # When the API process stops, how long the embedded runner lets running batches end; jobs
    # still queued, or running past it, go back to the queue for the next start.
    AI_SHUTDOWN_GRACE_SECONDS: float = 10.0
    AI_MAX_JOBS_PER_USER: int = 16  # queued or running at once; RATE_LIMIT_ENABLED=false lifts it
    AI_MAX_ATTEMPTS: int = 3  # runs of one job (crash recovery, lost workers) before it is failed
    # The embedded runner's hold on the jobs it queued or runs, renewed every third of it: another
    # API process takes them over (recovery) only once it has run out.
    AI_LEASE_SECONDS: float = 30.0
    AI_INDEX_POSTS: bool = True  # embed posts for similar-posts when they are written
    # similar-posts' and board-suggest's sentence encoder (ml/encoder.py): the multilingual
    # default reads Korean and English into one space; all-minilm-l6-v2 is the smaller English
    # one. Changing it re-embeds every post in the background (services/ai/reembed.py).
    EMBEDDING_MODEL: Literal["multilingual-e5-small", "all-minilm-l6-v2"] = "multilingual-e5-small"
    # The model's files instead of its package's: e5-small-q4.bin for multilingual-e5-small, a
    # sentence-transformers folder for all-minilm-l6-v2.
    AI_EMBEDDING_MODEL_PATH: str = ""
    AI_MODEL_MODULES: str = ""  # extra modules (comma-separated), each with register_models(models)
    AI_WORKER_PRELOAD: bool = True  # a Celery worker process loads every model when it starts
    AI_LOAD_AT_START: bool = True  # the embedded runner loads its models in the background at start
    AI_EVENTS_CHANNEL: str = "madang:ai:jobs"  # Redis channel: Celery workers -> API processes
    CELERY_BROKER_URL: str = "redis://127.0.0.1:6379/0"
    CELERY_QUEUE: str = "madang-ai"
    CELERY_KEY_PREFIX: str = ""  # prefixes every broker key (several deployments on one Redis)
    # A message a worker took and never acknowledged (the worker died) is delivered again after
    # this long; job time limits stay below it so a slow job is never delivered twice.
    CELERY_VISIBILITY_TIMEOUT_SECONDS: int = 3600
    CELERY_RESTORE_INTERVAL_SECONDS: int = 10  # how often a worker looks for such messages
    MODEL_DIR: Path = BASE_DIR / "model_store"
    # Models administrators train from a CSV (tabular-regression). Training never shares the
    # inference queue or its threads: AI_TRAIN_WORKERS runs at a time, each in a child process
    # of its own with AI_TRAIN_TORCH_THREADS torch threads (niced), and on CELERY_TRAIN_QUEUE
    # when AI_BACKEND=celery.
    AI_TRAIN_MAX_ROWS: int = 100_000  # data rows of an uploaded CSV; more answers 422
    AI_TRAIN_MAX_FEATURES: int = 256
    AI_TRAIN_MAX_EPOCHS: int = 1000
    AI_TRAIN_QUEUE_MAX: int = 8  # training jobs queued or running, all models; more answers 429
    AI_TRAIN_WORKERS: int = 1  # training runs at once in one API process (embedded backend)
    AI_TRAIN_TORCH_THREADS: int = 1
    AI_TRAIN_NICE: int = 10  # the training process yields the CPU to inference and requests
    # A run longer than this is stopped and failed. 0: 80% of CELERY_VISIBILITY_TIMEOUT_SECONDS, at
    # most 30 minutes (with Celery, a run past the visibility timeout would be delivered twice).
    AI_TRAIN_TIMEOUT_SECONDS: float = 0
    AI_TRAIN_PROGRESS_SECONDS: float = 0.5  # how often a run's progress is stored and pushed
    AI_PREDICT_MAX_ROWS: int = 1000  # rows in one job's input for a trained model
    CELERY_TRAIN_QUEUE: str = "madang-train"

    @field_validator("EMBEDDING_MODEL", mode="before")
    @classmethod
    def _model_names_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> "Settings":
        if self.ENV == "production" and len(self.SECRET_KEY) < 32:
            raise ValueError("SECRET_KEY must be set (32+ characters) when ENV=production")
        return self

    @model_validator(mode="after")
    def _require_smtp_in_production(self) -> "Settings":
        # Without SMTP, mail (reset codes included) is written to the log: fine on a laptop,
        # a leak in production.
        if self.ENV == "production" and not self.SMTP_HOST:
            raise ValueError("SMTP_HOST must be set when ENV=production (else reset codes reach the log)")
        return self

    @model_validator(mode="after")
    def _cors_origins_are_origins(self) -> "Settings":
        for origin in self.cors_origins:
            if origin == "*":
                if self.ENV == "production":
                    raise ValueError(
                        "CORS_ORIGINS must name the frontends' origins when ENV=production, not *"
                    )
            elif not _ORIGIN.fullmatch(origin):
                raise ValueError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com")
        return self

    @model_validator(mode="after")
    def _trusted_proxies_are_addresses(self) -> "Settings":
        self.trusted_proxy_networks  # noqa: B018 - parsed once, here, so a typo stops the start
        return self

    @model_validator(mode="after")
    def _metrics_allow_is_addresses(self) -> "Settings":
        parse_networks(self.METRICS_ALLOW, "METRICS_ALLOW")  # a typo stops the start
        return self

    @model_validator(mode="after")
    def _leases_outlive_their_heartbeat(self) -> "Settings":
        # Renewed every third of it: a shorter lease runs out between beats of a busy process.
        if self.AI_LEASE_SECONDS < 1:
            raise ValueError("AI_LEASE_SECONDS must be at least 1 second")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> "Settings":
        if self.STORAGE_BACKEND == "s3" and not self.S3_BUCKET.strip():
            raise ValueError("S3_BUCKET must name the bucket when STORAGE_BACKEND=s3")
        if bool(self.S3_ACCESS_KEY_ID) != bool(self.S3_SECRET_ACCESS_KEY):
            raise ValueError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together, or neither")
        return self

    @model_validator(mode="after")
    def _job_time_limit_below_visibility_timeout(self) -> "Settings":
        if self.celery_hard_time_limit >= self.CELERY_VISIBILITY_TIMEOUT_SECONDS:
            raise ValueError(
                "AI_JOB_TIMEOUT_SECONDS (plus a grace period) must stay below "
                "CELERY_VISIBILITY_TIMEOUT_SECONDS, or a slow job would be delivered twice"
            )
        return self

    @model_validator(mode="after")
    def _training_time_limit_below_visibility_timeout(self) -> "Settings":
        if self.celery_train_hard_time_limit >= self.CELERY_VISIBILITY_TIMEOUT_SECONDS:
            raise ValueError(
                "AI_TRAIN_TIMEOUT_SECONDS (plus a grace period) must stay below "
                "CELERY_VISIBILITY_TIMEOUT_SECONDS, or a training run would be delivered twice"
            )
        return self

    @property
    def cors_origins(self) -> list[str]:
        """CORS_ORIGINS as a list, without a trailing slash (a browser's Origin never has one)."""
        return [origin.strip().rstrip("/") for origin in self.CORS_ORIGINS.split(",") if origin.strip()]

    @property
    def log_format(self) -> Literal["json", "text"]:
        if self.LOG_FORMAT:
            return self.LOG_FORMAT
        return "json" if self.ENV == "production" else "text"

    @property
    def train_timeout_seconds(self) -> float:
        if self.AI_TRAIN_TIMEOUT_SECONDS > 0:
            return self.AI_TRAIN_TIMEOUT_SECONDS
        return min(1800.0, 0.8 * self.CELERY_VISIBILITY_TIMEOUT_SECONDS)

    @property
    def celery_train_hard_time_limit(self) -> float:
        """When a Celery worker kills a training task (the run itself stops at train_timeout_seconds)."""
        return self.train_timeout_seconds + max(1.0, self.train_timeout_seconds / 10)

    @property
    def ai_workers(self) -> int:
        """AI_WORKERS, 0 being one per core this process may use."""
        return self.AI_WORKERS if self.AI_WORKERS > 0 else usable_cores()

    @property
    def celery_hard_time_limit(self) -> float:
        """When a Celery worker kills a job that ignored its soft limit."""
        return self.AI_JOB_TIMEOUT_SECONDS + max(1.0, self.AI_JOB_TIMEOUT_SECONDS / 10)

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """TRUSTED_PROXIES parsed (edge.client_ip); a bare address is a network of one."""
        return parse_networks(self.TRUSTED_PROXIES, "TRUSTED_PROXIES")

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @cached_property
    def signing_key(self) -> str:
        """The JWT key: SECRET_KEY, or in development a random key kept in a git-ignored file
        so tokens survive restarts."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        return read_or_create_key_file(self.SECRET_KEY_FILE)


def parse_networks(text: str, setting: str) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry))
        except ValueError as exc:
            raise ValueError(f"{setting}: {entry!r} is not an IP address or network ({exc})") from None
    return tuple(networks)


def read_or_create_key_file(path: Path) -> str:
    """The key kept in `path`, made on first use. The new key is written to a private (0600)
    temporary file and hard-linked into place, so the key file is never readable by others,
    never seen half-written, and of two processes starting at once both end up with one key."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(temporary, path)
        finally:
            temporary.unlink()
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to have a new key made, or set SECRET_KEY")
    return key


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache
def get_settings() -> Settings:
    return Settings()


def load_settings() -> Settings:
    """The settings, or the process stops with one line saying what is wrong: pydantic's error
    would print a traceback and echo the values (the SECRET_KEY among them)."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise SystemExit(f"madang: refusing to start: {settings_problems(exc)}") from None


def settings_problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


settings = load_settings()
