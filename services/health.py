"""What /ready checks (docs/operations.md, "Logs and probes"): the database answers, the models
this process runs can load, and Redis answers where the settings name it. Cheap enough for a
probe every few seconds: one SELECT 1, one PING per Redis, and what the process already learned
about its models (it never loads one here)."""

import logging

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config import settings
from schemas import Readiness, ReembeddingProgress
from services import redis_client
from services.ai.runtime import AIRuntime

log = logging.getLogger(__name__)


def readiness(session: Session, ai: AIRuntime) -> Readiness:
    """/ready's answer: the problems (none: ready) and the re-embedding's progress, if any."""
    problems = readiness_problems(session, ai)
    progress = ai.reembedding.running if ai.reembedding is not None else None
    return Readiness(
        status="fail" if problems else "ok",
        problems=problems,
        reembedding=ReembeddingProgress(model=progress.model, done=progress.done, total=progress.total)
        if progress is not None
        else None,
    )


def readiness_problems(session: Session, ai: AIRuntime) -> list[str]:
    """What keeps this process from serving, one line each; empty when it is ready."""
    problems = []
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("database not reachable")
        problems.append("database unreachable")
    return problems + model_problems(ai) + redis_problems()


def model_problems(ai: AIRuntime) -> list[str]:
    """The models of the embedded runner (the app's registry) that cannot load, as start-up and
    the last batches found (ml.base.AIModel.load_error), and "models loading" while they load
    after the start (AI_LOAD_AT_START). With Celery the workers run the models, not this process."""
    if ai.config.AI_BACKEND != "thread":
        return []
    problems = [
        f"model {model.name} cannot load: {model.load_error}"
        for model in ai.models.listed()
        if model.load_error
    ]
    if ai.backend is not None and ai.backend.models_loading():
        problems.append("models loading")
    return problems


def redis_problems() -> list[str]:
    """REDIS_URL (live events, rate limits) and a Redis Celery broker, when configured, must answer
    a PING. Problems name the role, never the URL: it may hold a password."""
    urls = {"redis": settings.REDIS_URL}
    if settings.AI_BACKEND == "celery" and settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        urls["celery broker"] = settings.CELERY_BROKER_URL
    problems = []
    for role, url in urls.items():
        if not url:
            continue
        try:
            redis_client.connect(url).ping()  # one client per URL: a probe reuses its connection
        except redis.RedisError as exc:
            log.warning("%s not reachable: %s", role, exc)
            problems.append(f"{role} unreachable")
    return problems
