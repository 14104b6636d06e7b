"""Imported by a test's Celery worker (AI_MODEL_MODULES=tests.ai_worker_models): the test-only
models of tests/ai_models.py, registered in the worker's registry."""

from ml import registry
from tests.ai_models import CrashModel, EchoModel, FailingModel, SleepOnceModel

for model in (EchoModel(), FailingModel(), SleepOnceModel(), CrashModel()):
    registry.register(model)
