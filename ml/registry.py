"""The named models of this process. The AI table gets a row for each listed model at
startup; a job names its model by that name."""

import importlib
import logging
import threading

from config import settings
from ml.base import AIModel

log = logging.getLogger(__name__)

_models: dict[str, AIModel] = {}
_loaded_plugins = False
_loading = threading.RLock()  # a plugin module may register (and look up) models while loading


def register(model: AIModel) -> AIModel:
    """Adds a model (replacing one of the same name)."""
    _models[model.name] = model
    return model


def unregister(name: str) -> None:
    _models.pop(name, None)


def get(name: str) -> AIModel | None:
    """A model of the code by its name, else a model an administrator trained (its current
    version, ml/trained.py), else None."""
    model = builtin(name)
    if model is None:
        from ml import trained

        model = trained.find(name)
    return model


def builtin(name: str) -> AIModel | None:
    """A model of the code (shipped or registered), never a trained one."""
    _ensure_models()
    return _models.get(name)


def listed() -> list[AIModel]:
    """The models that take jobs (and have a row in the AI table)."""
    _ensure_models()
    return [model for model in _models.values() if model.listed]


def check_loadable() -> None:
    """Notes on each listed model what would stop it from loading (ml.base.AIModel.load_error),
    without loading it: what this process learns when it starts running models."""
    for model in listed():
        model.load_error = model.missing()
        if model.load_error:
            log.error("model %s cannot load: %s", model.name, model.load_error)


def _ensure_models() -> None:
    """The shipped models, and those of AI_MODEL_MODULES (imported once; each registers its
    models when imported, e.g. the test suite's failing and slow models in a Celery worker)."""
    global _loaded_plugins  # noqa: PLW0603 - one registry per process
    if _loaded_plugins:
        return
    with _loading:
        if _loaded_plugins:
            return
        from ml import board_suggest, post_index, similar_posts

        for model in (similar_posts.SimilarPosts(), board_suggest.BoardSuggest(), post_index.PostIndex()):
            _models.setdefault(model.name, model)
        for module in filter(None, (name.strip() for name in settings.AI_MODEL_MODULES.split(","))):
            importlib.import_module(module)
            log.info("models registered by %s", module)
        _loaded_plugins = True
