"""Imported by a test's Celery worker or API process (AI_MODEL_MODULES=tests.ai_worker_models):
the test-only models of tests/ai_models.py, registered in that process's registry."""

from services.ai import registry
from tests.ai_models import CrashModel, EchoModel, FailingModel, SleepOnceModel, SlowModel

for model in (EchoModel(), FailingModel(), SleepOnceModel(), CrashModel(), SlowModel()):
    registry.register(model)
