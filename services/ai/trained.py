"""Models administrators trained (tabular-regression), served through the same job API as the
registry's: `services.ai.registry.Registry.get(name)` falls back to `find(name)`, which answers
with the model's highest succeeded version. Each version loads once per process (weights read
with safetensors, metadata with json) and is kept while it is among the last few used.

A job's input is one row `{"column": number, ...}` or a list of rows; stored as canonical JSON.
Its result: `{"version", "target", "prediction"}` (one row) or `{..., "predictions": [...]}`.
"""

import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from config import settings
from crud import ai_training as training_crud
from database import session_scope
from ml import tabular
from ml.base import AIModel

CACHED_VERSIONS = 16
# AIlog.content is a TEXT column: 65,535 bytes on MariaDB.
MAX_INPUT_BYTES = 60_000


class TrainedModel(AIModel):
    """One version of a trained model."""

    def __init__(self, name: str, information: str, *, version: int, file_key: str) -> None:
        self.name = name  # per row of the AI table here; a class attribute on the models of the code
        self.information = information
        self.version = version
        self.file_key = file_key
        self._predictor: tabular.Predictor | None = None
        self._metadata: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = json.loads(tabular.metadata_path(settings.MODEL_DIR, self.file_key).read_text())
        return self._metadata

    @property
    def features(self) -> list[str]:
        return [str(name) for name in self.metadata["features"]]

    def load(self) -> None:
        if self._predictor is not None:
            return
        with self._lock:
            if self._predictor is None:
                self._predictor, self._metadata = tabular.load_model(settings.MODEL_DIR, self.file_key)

    def job_input(self, value: Any) -> str:
        rows = [value] if isinstance(value, dict) else value
        if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
            raise ValueError(
                f'{self.name} reads numbers: `input` is {{"column": number, ...}} or a list of such rows'
            )
        if len(rows) > settings.AI_PREDICT_MAX_ROWS:
            raise ValueError(f"at most {settings.AI_PREDICT_MAX_ROWS} rows in one job")
        for number, row in enumerate(rows, start=1):
            problem = self._mismatch(row)
            if problem:
                raise ValueError(problem if len(rows) == 1 else f"row {number}: {problem}")
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > MAX_INPUT_BYTES:
            raise ValueError(f"the input is over {MAX_INPUT_BYTES} bytes as JSON; send fewer rows per job")
        return text

    def _mismatch(self, row: dict[str, Any]) -> str | None:
        """What is wrong with a row's columns, naming them; None if they are the features."""
        features = self.features
        missing = [name for name in features if name not in row]
        extra = sorted(name for name in row if name not in set(features))
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            problems.append(f"unknown column(s): {', '.join(extra)}")
        if problems:
            return "; ".join(problems) + f" (version {self.version} reads {', '.join(features)})"
        return None

    def predict_batch(self, inputs: list[str]) -> list[Any]:
        """One forward for every row of every job; a job whose rows no longer fit this version
        (a new version with other features came in between) gets its error as its output."""
        assert self._predictor is not None
        outputs: list[Any] = []
        matrix: list[list[float]] = []
        spans: list[tuple[int, int, bool] | None] = []
        for text in inputs:
            value = json.loads(text)
            rows = [value] if isinstance(value, dict) else value
            problems = [problem for row in rows if (problem := self._mismatch(row))]
            if problems:
                spans.append(None)
                outputs.append(ValueError(problems[0]))
                continue
            spans.append((len(matrix), len(rows), isinstance(value, dict)))
            matrix += [[float(row[name]) for name in self.features] for row in rows]
            outputs.append(None)
        predictions = self._predictor.predict(np.asarray(matrix, dtype=np.float64)) if matrix else np.zeros(0)
        for index, span in enumerate(spans):
            if span is None:
                continue
            start, count, single = span
            values = [float(value) for value in predictions[start : start + count]]
            answer: dict[str, Any] = {"version": self.version, "target": self._predictor.target}
            if single:
                answer["prediction"] = values[0]
            else:
                answer["predictions"] = values
            outputs[index] = answer
        return outputs


_cache: OrderedDict[str, TrainedModel] = OrderedDict()
_cache_lock = threading.Lock()


def find(name: str) -> TrainedModel | None:
    """The trained model of this name at its highest succeeded version; None if there is no such
    model or none of its versions has succeeded yet."""
    with session_scope() as session:
        found = training_crud.current_version(session, name=name, kind=tabular.KIND)
    if found is None:
        return None
    row, version = found
    with _cache_lock:
        model = _cache.get(version.file_key)
        if model is None:
            model = TrainedModel(
                row.name, row.information, version=version.version, file_key=version.file_key
            )
            _cache[version.file_key] = model
        _cache.move_to_end(version.file_key)
        while len(_cache) > CACHED_VERSIONS:
            _cache.popitem(last=False)
        return model
