"""The named models of one app (or one Celery worker process): a Registry, built when the app
starts (services/ai/runtime.running, kept in its AIRuntime) or the worker process starts
(services/ai/celery_app.py), and handed to the code that looks models up. The AI table gets a
row for each listed model at startup; a job names its model by that name.

Here too the process's sentence encoder (ml/encoder.get_encoder, one per process: its weights
load once however many apps a test suite starts) gets this deployment's settings, since ml/
reads none: before any model of a registry loads it."""

import importlib
import logging
from collections.abc import Callable, Iterable

from config import Settings, settings, usable_cores
from ml.base import AIModel
from ml.encoder import SentenceEncoder, get_encoder
from ml.post_index import PostIndex
from services.ai import trained
from services.ai.board_suggest import BoardSuggest
from services.ai.similar_posts import SimilarPosts

log = logging.getLogger(__name__)


class Registry:
    """Models of the code by name (the shipped ones, those of AI_MODEL_MODULES, a test's own),
    and behind them the models administrators trained (services/ai/trained.py)."""

    def __init__(self, models: Iterable[AIModel] = ()) -> None:
        self._models: dict[str, AIModel] = {}
        for model in models:
            self.register(model)

    def register(self, model: AIModel) -> AIModel:
        """Adds a model (replacing one of the same name)."""
        self._models[model.name] = model
        return model

    def unregister(self, name: str) -> None:
        self._models.pop(name, None)

    def get(self, name: str) -> AIModel | None:
        """A model of the code by its name, else a model an administrator trained (its current
        version), else None."""
        model = self.builtin(name)
        if model is None:
            model = trained.find(name)
        return model

    def builtin(self, name: str) -> AIModel | None:
        """A model of the code (shipped or registered), never a trained one."""
        return self._models.get(name)

    def listed(self) -> list[AIModel]:
        """The models that take jobs (and have a row in the AI table)."""
        return [model for model in self._models.values() if model.listed]

    def post_index(self) -> AIModel:
        """The model that embeds posts for similar-posts (it ships with every registry)."""
        model = self._models.get(PostIndex.name)
        assert model is not None, "the post-index model ships with the registry"
        return model

    @property
    def vector_model(self) -> str:
        """The model the post vectors of this process's encoder are stored and compared under."""
        return get_encoder().model_name

    def check_loadable(self, config: Settings = settings) -> None:
        """Notes on each listed model what would stop it from loading (ml.base.AIModel.load_error),
        without loading it: what this process learns when it starts running models."""
        encoder(config)
        for model in self.listed():
            model.load_error = model.missing()
            if model.load_error:
                log.error("model %s cannot load: %s", model.name, model.load_error)


def load(extra: Iterable[AIModel] = (), *, config: Settings = settings) -> Registry:
    """A registry of the shipped models, then those of AI_MODEL_MODULES, then `extra` (an app
    a test builds with models of its own); a later model replaces one of the same name."""
    encoder(config)
    models = Registry([SimilarPosts(), BoardSuggest(), PostIndex()])
    for name in filter(None, (name.strip() for name in config.AI_MODEL_MODULES.split(","))):
        # A module of AI_MODEL_MODULES (e.g. the test suite's failing and slow models, in a
        # Celery worker) has `register_models(models: Registry) -> None`.
        register_models: Callable[[Registry], None] = importlib.import_module(name).register_models
        register_models(models)
        log.info("models registered by %s", name)
    for model in extra:
        models.register(model)
    return models


def encoder(config: Settings = settings) -> SentenceEncoder:
    """The process's sentence encoder, set up with EMBEDDING_MODEL, AI_EMBEDDING_MODEL_PATH and
    AI_TORCH_THREADS (another model is loaded afresh on next use)."""
    shared = get_encoder()
    shared.configure(
        model=config.EMBEDDING_MODEL,
        model_path=config.AI_EMBEDDING_MODEL_PATH,
        torch_threads=config.AI_TORCH_THREADS,
    )
    return shared


def start_model_processes(config: Settings = settings) -> None:
    """The encoder's forward passes in AI_WORKERS child processes (AI_MODEL_PROCESS; each starts
    on first use). Their torch threads: AI_TORCH_THREADS, or the cores shared out among them and
    this process, at least one."""
    processes = max(1, config.ai_workers)
    threads = config.AI_TORCH_THREADS or max(1, usable_cores() // (processes + 1))
    encoder(config).run_in_child_process(config.AI_MODEL_PROCESS, processes=processes, torch_threads=threads)
