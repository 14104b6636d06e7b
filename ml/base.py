"""What every model offers the runner: a name, a description and `predict_batch`."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
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

    def result_for(
        self, session: Session, *, user: User, text: str, output: Any, memo: dict[Any, Any]
    ) -> Any:
        """The job's result (JSON-serializable) from the model's output for it. `memo` lives for
        one batch: jobs of one owner can share what they read (e.g. the posts they may see)."""
        return output

    def batch_memo(self, session: Session, *, owners: Sequence[User]) -> dict[Any, Any]:
        """The memo of a batch's result_for calls, with what may be read for all its jobs' owners
        at once (one query rather than one per job); empty by default."""
        return {}

    def results_for(self, session: Session, *, jobs: Sequence[tuple[User, str, Any]]) -> list[Any]:
        """The results of a batch's jobs, in order, each from (owner, input, output): result_for
        for each, sharing batch_memo. An exception in a job's place fails that job alone. A
        model may override it to do at once what the jobs share (e.g. one matrix product)."""
        memo = self.batch_memo(session, owners=list({user.id: user for user, _, _ in jobs}.values()))
        results: list[Any] = []
        for user, text, output in jobs:
            try:
                results.append(self.result_for(session, user=user, text=text, output=output, memo=memo))
            except Exception as exc:
                results.append(exc)
        return results

    def run_batch(self, inputs: list[str]) -> list[Any]:
        try:
            self.load()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            raise
        self.load_error = None
        with self.inference():
            outputs = self.predict_batch(inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(f"{self.name} gave {len(outputs)} outputs for {len(inputs)} inputs")
        return outputs
