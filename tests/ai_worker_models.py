"""Named in AI_MODEL_MODULES (=tests.ai_worker_models) by a test's Celery worker or API process:
the test-only models of tests/ai_models.py, added to that process's registry as it is built."""

from services.ai.registry import Registry
from tests.ai_models import CountRunsModel, CrashModel, EchoModel, FailingModel, SleepOnceModel, SlowModel


def register_models(models: Registry) -> None:
    for model in (EchoModel(), FailingModel(), SleepOnceModel(), CrashModel(), SlowModel(), CountRunsModel()):
        models.register(model)
