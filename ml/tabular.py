"""tabular-regression: numeric columns in, one number out. A small PyTorch network (one linear
layer, or one hidden ReLU layer of `hidden_size`) trained on standardized features and target.

Files, all named by a random key (never by anything a user sent), and none ever unpickled:
- `<MODEL_DIR>/datasets/<key>.safetensors`: a validated upload waiting for its training run
  (float64 matrix, column names in the header's metadata); deleted when the run ends.
- `<MODEL_DIR>/tabular/<key>.safetensors`: the network's weights and the scaler (float32).
- `<MODEL_DIR>/tabular/<key>.json`: metadata for people and for loading: feature names, target,
  architecture, scaler, version, metrics.

Loading reads the JSON with `json` and the tensors with `safetensors.torch.load_file`, builds the
network the metadata describes and loads the tensors into it strictly (shapes must match).
This module knows nothing of the database; ml/train_process.py runs `train` in a process of its
own and services/ai/trained.py serves the result.
"""

import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy

KIND = "tabular-regression"
FORMAT = "madang-tabular-regression/1"
TRAIN_FRACTION = 0.7  # the original's 70/30 split
SPLIT_SEED = 20261126  # the same rows land in the test part on every run of the same file
BATCH_SIZE = 64
MOMENTUM = 0.9
MIN_ROWS = 10  # enough for both parts of the split to have rows

_KEY = re.compile(r"^[0-9a-f]{32}$")


class TrainingDiverged(Exception):
    """The loss stopped being a finite number."""


@dataclass(frozen=True)
class TrainingSpec:
    features: list[str]
    target: str
    epochs: int
    learning_rate: float
    hidden_size: int | None


@dataclass(frozen=True)
class Scaler:
    """Standardization learned on the training part: (x - mean) / std, for features and target."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> "Scaler":
        x_std = x.std(axis=0)
        y_std = float(y.std())
        # A constant column carries nothing; dividing by 1 keeps it at zero instead of NaN.
        return cls(
            x_mean=x.mean(axis=0),
            x_std=np.where(x_std > 0, x_std, 1.0),
            y_mean=float(y.mean()),
            y_std=y_std if y_std > 0 else 1.0,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }


# --- keys and paths -------------------------------------------------------------------------


def new_key() -> str:
    return secrets.token_hex(16)


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("not a model file key")
    return key


def dataset_path(model_dir: Path, key: str) -> Path:
    return Path(model_dir) / "datasets" / f"{_checked(key)}.safetensors"


def weights_path(model_dir: Path, key: str) -> Path:
    return Path(model_dir) / "tabular" / f"{_checked(key)}.safetensors"


def metadata_path(model_dir: Path, key: str) -> Path:
    return Path(model_dir) / "tabular" / f"{_checked(key)}.json"


def _replace_into(path: Path, write: Callable[[Path], object]) -> None:
    """Writes through a temporary name and renames, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# --- datasets -------------------------------------------------------------------------------


def save_dataset(path: Path, columns: Sequence[str], values: np.ndarray) -> None:
    matrix = np.ascontiguousarray(values, dtype=np.float64)
    _replace_into(
        path,
        lambda partial: save_numpy({"values": matrix}, partial, metadata={"columns": json.dumps(columns)}),
    )


def load_dataset(path: Path) -> tuple[list[str], np.ndarray]:
    with safe_open(str(path), framework="numpy") as file:
        columns = json.loads((file.metadata() or {})["columns"])
        values = file.get_tensor("values")
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError("the stored data set does not match its columns")
    return list(columns), values


# --- the network ----------------------------------------------------------------------------


def build_network(features: int, hidden_size: int | None) -> Any:
    import torch  # noqa: PLC0415 - torch loads only where a network trains or predicts

    if hidden_size:
        return torch.nn.Sequential(
            torch.nn.Linear(features, hidden_size), torch.nn.ReLU(), torch.nn.Linear(hidden_size, 1)
        )
    return torch.nn.Sequential(torch.nn.Linear(features, 1))


@dataclass
class Trained:
    network: Any
    scaler: Scaler
    metrics: dict[str, Any]


class MomentumSGD:
    """torch.optim.SGD(lr, momentum) as this network uses it (no weight decay, dampening or
    Nesterov): the same tensor operations in the same order, so the same weights. Written out
    because torch's optimizers import torch._dynamo on their first step, about a second of every
    training run (tests/test_tabular_optimizer.py holds both)."""

    def __init__(self, parameters: Any, *, lr: float, momentum: float) -> None:
        self.parameters = list(parameters)
        self.lr = lr
        self.momentum = momentum
        self.buffers: list[Any] = [None] * len(self.parameters)

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    def step(self) -> None:
        import torch  # noqa: PLC0415 - torch loads only where a network trains or predicts

        with torch.no_grad():
            for index, parameter in enumerate(self.parameters):
                if parameter.grad is None:
                    continue
                buffer = self.buffers[index]
                if buffer is None:
                    buffer = self.buffers[index] = torch.clone(parameter.grad).detach()
                else:
                    buffer.mul_(self.momentum).add_(parameter.grad)
                parameter.add_(buffer, alpha=-self.lr)


def split(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and test parts (70/30, the same for the same row count)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(rows)
    cut = min(rows - 1, max(1, round(rows * TRAIN_FRACTION)))
    return order[:cut], order[cut:]


def train(
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainingSpec,
    *,
    progress: Callable[[int, float], None] = lambda epoch, loss: None,
) -> Trained:
    """Mini-batch SGD with momentum on the mean squared error of standardized data, for
    spec.epochs passes over the training part; then the metrics on the test part. Raises
    TrainingDiverged as soon as an epoch's loss is not a finite number."""
    import torch  # noqa: PLC0415 - torch loads only where a network trains or predicts

    started = time.perf_counter()
    torch.manual_seed(SPLIT_SEED)
    train_rows, test_rows = split(len(y))
    scaler = Scaler.fit(x[train_rows], y[train_rows])
    inputs = torch.from_numpy(((x[train_rows] - scaler.x_mean) / scaler.x_std).astype(np.float32))
    targets = torch.from_numpy(((y[train_rows] - scaler.y_mean) / scaler.y_std).astype(np.float32))[:, None]
    network = build_network(x.shape[1], spec.hidden_size)
    optimizer = MomentumSGD(network.parameters(), lr=spec.learning_rate, momentum=MOMENTUM)
    shuffle = torch.Generator().manual_seed(SPLIT_SEED)
    loss_value = math.nan
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(len(train_rows), generator=shuffle)
        total = 0.0
        for start in range(0, len(train_rows), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(network(inputs[batch]), targets[batch])
            torch.autograd.backward(loss)  # loss.backward(), the typed spelling
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        loss_value = total / len(train_rows)
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"the loss became {loss_value} at epoch {epoch}; try a smaller learning_rate"
            )
        progress(epoch, loss_value)
    network.eval()
    predictor = Predictor(spec.features, network, scaler)
    train_rmse = _rmse(predictor.predict(x[train_rows]), y[train_rows])
    test_predictions = predictor.predict(x[test_rows])
    test_rmse = _rmse(test_predictions, y[test_rows])
    test_y = y[test_rows]
    total_sum = float(((test_y - test_y.mean()) ** 2).sum())
    residual_sum = float(((test_predictions - test_y) ** 2).sum())
    metrics = {
        "rows": len(y),
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "epochs": spec.epochs,
        "final_loss": loss_value,
        "train_rmse": train_rmse,
        "test_rmse": test_rmse,
        "test_r2": 1.0 - residual_sum / total_sum if total_sum > 0 else None,
        "target_std": float(y.std()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if not all(math.isfinite(value) for value in (train_rmse, test_rmse)):
        raise TrainingDiverged("the trained network predicts values that are not finite numbers")
    return Trained(network, scaler, metrics)


def _rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions - truth) ** 2)))


# --- files ----------------------------------------------------------------------------------


def save_model(model_dir: Path, key: str, trained: Trained, *, spec: TrainingSpec, version: int) -> None:
    """The weights (safetensors) and then the metadata (JSON); loading needs both, and the JSON is
    written last, so a model whose JSON exists is whole."""
    import torch  # noqa: PLC0415 - torch loads only where a network trains or predicts
    from safetensors.torch import save_file  # noqa: PLC0415 - imports torch

    scaler = trained.scaler
    tensors = {
        f"network.{name}": value.detach().contiguous() for name, value in trained.network.state_dict().items()
    }
    tensors |= {
        "scaler.x_mean": torch.tensor(scaler.x_mean, dtype=torch.float64),
        "scaler.x_std": torch.tensor(scaler.x_std, dtype=torch.float64),
        "scaler.y": torch.tensor([scaler.y_mean, scaler.y_std], dtype=torch.float64),
    }
    metadata = {
        "format": FORMAT,
        "kind": KIND,
        "version": version,
        "features": spec.features,
        "target": spec.target,
        "hidden_size": spec.hidden_size,
        "scaler": scaler.as_json(),
        "training": {"epochs": spec.epochs, "learning_rate": spec.learning_rate, "batch_size": BATCH_SIZE},
        "metrics": trained.metrics,
    }
    _replace_into(weights_path(model_dir, key), lambda partial: save_file(tensors, partial))
    _replace_into(
        metadata_path(model_dir, key),
        lambda partial: partial.write_text(json.dumps(metadata, ensure_ascii=False, indent=2)),
    )


def delete_model(model_dir: Path, key: str) -> None:
    metadata_path(model_dir, key).unlink(missing_ok=True)
    weights_path(model_dir, key).unlink(missing_ok=True)


class Predictor:
    """A trained network with its scaler: rows of features (in `features` order) to predictions."""

    def __init__(self, features: Sequence[str], network: Any, scaler: Scaler, *, target: str = "") -> None:
        self.features = list(features)
        self.target = target
        self.network = network
        self.scaler = scaler

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch  # noqa: PLC0415 - torch loads only where a network trains or predicts

        scaled = (np.asarray(x, dtype=np.float64) - self.scaler.x_mean) / self.scaler.x_std
        with torch.inference_mode():
            out: np.ndarray = self.network(torch.from_numpy(scaled.astype(np.float32)))[:, 0].numpy()
        return out.astype(np.float64) * self.scaler.y_std + self.scaler.y_mean


def load_model(model_dir: Path, key: str) -> tuple[Predictor, dict[str, Any]]:
    """The predictor and its metadata. Never unpickles: JSON, and safetensors' tensors."""
    from safetensors.torch import load_file  # noqa: PLC0415 - imports torch

    metadata = json.loads(metadata_path(model_dir, key).read_text())
    if metadata.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} model file")
    tensors = load_file(weights_path(model_dir, key))
    features = [str(name) for name in metadata["features"]]
    network = build_network(len(features), metadata.get("hidden_size"))
    prefix = "network."
    network.load_state_dict(
        {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True
    )
    network.eval()
    x_mean, x_std = tensors["scaler.x_mean"].numpy(), tensors["scaler.x_std"].numpy()
    y_mean, y_std = (float(value) for value in tensors["scaler.y"].numpy())
    if x_mean.shape != (len(features),) or x_std.shape != (len(features),):
        raise ValueError("the scaler does not match the features")
    scaler = Scaler(x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std)
    return Predictor(features, network, scaler, target=str(metadata.get("target", ""))), metadata


# --- the sample data set ----------------------------------------------------------------------

# The original project's AI_test.csv: y = 4x0 + 5x1 + 2x2 + 7x3 + 0.1x4 + 15x5 + 0.05x6 + x7.
SAMPLE_COEFFICIENTS = (4.0, 5.0, 2.0, 7.0, 0.1, 15.0, 0.05, 1.0)
SAMPLE_ROWS = 10_000


def sample_dataset(rows: int = SAMPLE_ROWS, seed: int = SPLIT_SEED) -> tuple[list[str], np.ndarray]:
    """Columns x0..x7 (uniform in [0, 10), four decimals) and y, exact; the same for the same seed."""
    features = np.round(
        np.random.default_rng(seed).uniform(0.0, 10.0, size=(rows, len(SAMPLE_COEFFICIENTS))), 4
    )
    target = np.round(features @ np.asarray(SAMPLE_COEFFICIENTS), 6)
    columns = [f"x{i}" for i in range(len(SAMPLE_COEFFICIENTS))] + ["y"]
    return columns, np.column_stack([features, target])


def write_csv(stream: Any, columns: Sequence[str], values: np.ndarray) -> None:
    stream.write(",".join(columns) + "\n")
    for row in values:
        stream.write(",".join(format(float(value), ".10g") for value in row) + "\n")
