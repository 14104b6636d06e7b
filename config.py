"""Every knob of the server, read once from the environment or `.env`.

With no settings at all the server runs on embedded defaults (SQLite file, in-memory rate
limits, mail written to the log), so a newcomer needs no other service to try it.
"""

import secrets
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    ENV: Literal["development", "production"] = "development"
    PROJECT_NAME: str = "Madang"
    API_PREFIX: str = "/api/v1"

    DATABASE_URL: str = f"sqlite:///{BASE_DIR / 'madang.sqlite3'}"
    DATABASE_POOL_SIZE: int = 10
    SQLITE_BUSY_TIMEOUT_MS: int = 5000

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
    RATE_LIMIT_WINDOW_SECONDS: int = 60

    MAX_JSON_BODY_KB: int = 256
    UPLOAD_DIR: Path = BASE_DIR / "uploads"
    MAX_UPLOAD_MB: int = 10
    POST_CONTENT_MAX_CHARS: int = 10_000
    VIEW_DEDUPE_MINUTES: int = 480

    AI_BACKEND: Literal["thread", "celery"] = "thread"
    AI_QUEUE_MAX: int = 1000
    AI_MAX_BATCH: int = 32
    MODEL_DIR: Path = BASE_DIR / "model_store"

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> "Settings":
        if self.ENV == "production" and len(self.SECRET_KEY) < 32:
            raise ValueError("SECRET_KEY must be set (32+ characters) when ENV=production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @cached_property
    def signing_key(self) -> str:
        """The JWT key: SECRET_KEY, or in development a random key kept in a git-ignored file
        so tokens survive restarts."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        path = self.SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()


settings = get_settings()
