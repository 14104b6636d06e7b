"""What every model offers the runner: a name, a description and `predict_batch`."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from models import User


class AIModel(ABC):
    """A named model. `predict_batch` is the model itself (one call for a whole batch, no
    database); `result_for` turns one output into the stored result for the job's owner, with
    the database at hand (e.g. to keep only what the owner may read)."""

    name: ClassVar[str]
    information: ClassVar[str]
    # Listed models have a row in the AI table and take jobs; internal ones (post indexing)
    # run only on the server's own behalf.
    listed: ClassVar[bool] = True

    def load(self) -> None:
        """Loads the weights; called once per process before the first batch (and by workers
        at start). Must be idempotent and thread-safe. Models without weights do nothing."""
        return

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

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        """The job's result (JSON-serializable) from the model's output for it. `memo` lives for
        one batch: jobs of one owner can share what they read (e.g. the posts they may see)."""
        return output

    def run_batch(self, inputs: list[str]) -> list[Any]:
        self.load()
        with self.inference():
            outputs = self.predict_batch(inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(f"{self.name} gave {len(outputs)} outputs for {len(inputs)} inputs")
        return outputs
