"""The named models of this process. The AI table gets a row for each listed model at
startup; a job names its model by that name. Here too the shared sentence encoder gets this
deployment's settings (ml/ reads none): before any model of the registry loads it."""

import importlib
import logging
import threading

from config import settings, usable_cores
from ml.base import AIModel
from ml.encoder import SentenceEncoder, get_encoder
from ml.post_index import PostIndex
from services.ai import trained
from services.ai.board_suggest import BoardSuggest
from services.ai.similar_posts import SimilarPosts

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
    version, services/ai/trained.py), else None."""
    model = builtin(name)
    if model is None:
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
    encoder()  # with the settings as they are now
    for model in listed():
        model.load_error = model.missing()
        if model.load_error:
            log.error("model %s cannot load: %s", model.name, model.load_error)


def encoder() -> SentenceEncoder:
    """The process's sentence encoder, set up with AI_EMBEDDING_MODEL_PATH and AI_TORCH_THREADS
    as they are now (a loaded model keeps what it was loaded with)."""
    shared = get_encoder()
    shared.configure(model_path=settings.AI_EMBEDDING_MODEL_PATH, torch_threads=settings.AI_TORCH_THREADS)
    return shared


def start_model_processes() -> None:
    """The encoder's forward passes in AI_WORKERS child processes (AI_MODEL_PROCESS; each starts
    on first use). Their torch threads: AI_TORCH_THREADS, or the cores shared out among them and
    this process, at least one."""
    processes = max(1, settings.ai_workers)
    threads = settings.AI_TORCH_THREADS or max(1, usable_cores() // (processes + 1))
    encoder().run_in_child_process(settings.AI_MODEL_PROCESS, processes=processes, torch_threads=threads)


def _ensure_models() -> None:
    """The shipped models, and those of AI_MODEL_MODULES (imported once; each registers its
    models when imported, e.g. the test suite's failing and slow models in a Celery worker)."""
    global _loaded_plugins  # noqa: PLW0603 - one registry per process
    if _loaded_plugins:
        return
    with _loading:
        if _loaded_plugins:
            return
        encoder()
        for model in (SimilarPosts(), BoardSuggest(), PostIndex()):
            _models.setdefault(model.name, model)
        for module in filter(None, (name.strip() for name in settings.AI_MODEL_MODULES.split(","))):
            importlib.import_module(module)
            log.info("models registered by %s", module)
        _loaded_plugins = True
