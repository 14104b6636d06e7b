"""What every model offers the runner: a name, a description and `predict_batch`. A model knows
nothing of the database: what a job's result keeps of its output (e.g. only the posts its owner
may read) is the business of the app built on it (services/ai/apps.py)."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar


class AIModel(ABC):
    """A named model. `predict_batch` is the model itself: one call for a whole batch, no
    database. An output that is an exception fails its job alone."""

    # Set on the class by the models of the code, per instance by trained ones (one per version).
    name: str
    information: str
    # Listed models have a row in the AI table and take jobs; internal ones (post indexing)
    # run only on the server's own behalf.
    listed: ClassVar[bool] = True
    # Why the model cannot load, as this process last learned it (at start, missing(); then the
    # outcome of each batch's load): what /ready reports, so it never loads a model itself.
    load_error: str | None = None

    def load(self) -> None:
        """Loads the weights; called once per process before the first batch (and by workers
        at start). Must be idempotent and thread-safe. Models without weights do nothing."""
        return

    def missing(self) -> str | None:
        """What would stop load() (a package or the weights absent), found without loading
        anything; None when nothing is seen to."""
        return None

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """The context a batch runs in (torch models: `torch.inference_mode()`)."""
        yield

    def job_input(self, value: Any) -> str:
        """What a job stores as its input (AIlog.content), from the request's `input`; raises
        ValueError saying what does not fit. These models read text."""
        if not isinstance(value, str):
            raise ValueError(f"{self.name} reads text: give `input` as a string")
        return value

    @abstractmethod
    def predict_batch(self, inputs: list[str]) -> list[Any]:
        """One output per input, in order. Raising fails every job of the batch."""

    def load_noting_outcome(self) -> None:
        """load(), with its outcome noted in load_error (what /ready reports); raises what
        load raises."""
        try:
            self.load()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            raise
        self.load_error = None

    def run_batch(self, inputs: list[str]) -> list[Any]:
        self.load_noting_outcome()
        with self.inference():
            outputs = self.predict_batch(inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(f"{self.name} gave {len(outputs)} outputs for {len(inputs)} inputs")
        return outputs
