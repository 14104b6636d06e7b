"""One training run in a process of its own: `python -m ml.train_process`.

Why a process: torch's thread count is a property of the whole process, and a training loop of
small tensors is Python-level work that holds the GIL. In a child process, niced, with torch
threads of its own (AI_TRAIN_TORCH_THREADS), a long run leaves the API process, its requests and
the inference model process alone; and a run can be stopped (timeout, shutdown) by killing it.

Protocol: the parent writes one JSON object (the run) to stdin and closes it; the child answers
on stdout with JSON lines: {"event": "progress", "epoch", "epochs", "loss"} after each epoch,
then {"event": "done", "metrics"} (the weights and metadata are on disk) or
{"event": "error", "error"}. Anything a library prints goes to stderr.
"""

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from ml import tabular


def run(request: dict[str, Any], answers: TextIO) -> int:
    def emit(event: dict[str, Any]) -> None:
        answers.write(json.dumps(event) + "\n")
        answers.flush()

    try:
        if request.get("nice"):
            os.nice(int(request["nice"]))
        import torch  # noqa: PLC0415 - after the nice: its threads start niced

        torch.set_num_threads(max(1, int(request.get("torch_threads", 1))))
        model_dir = Path(request["model_dir"])
        spec = tabular.TrainingSpec(
            features=list(request["features"]),
            target=request["target"],
            epochs=int(request["epochs"]),
            learning_rate=float(request["learning_rate"]),
            hidden_size=request.get("hidden_size"),
        )
        columns, values = tabular.load_dataset(tabular.dataset_path(model_dir, request["key"]))
        x = values[:, [columns.index(name) for name in spec.features]]
        y = values[:, columns.index(spec.target)]

        def progress(epoch: int, loss: float) -> None:
            emit({"event": "progress", "epoch": epoch, "epochs": spec.epochs, "loss": loss})

        trained = tabular.train(x, y, spec, progress=progress)
        tabular.save_model(model_dir, request["key"], trained, spec=spec, version=int(request["version"]))
        emit({"event": "done", "metrics": trained.metrics})
        return 0
    except tabular.TrainingDiverged as exc:
        emit({"event": "error", "error": str(exc)})
        return 1
    except Exception as exc:
        traceback.print_exc()
        emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 1


if __name__ == "__main__":
    # stdout carries the answers: anything else written to it goes to stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.exit(run(json.loads(sys.stdin.read()), channel))
