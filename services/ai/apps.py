"""Model apps: a model of ml/ whose job results are made with the database at hand, e.g. to keep
only what the job's owner may read (similar-posts, board-suggest). The model computes without the
database (predict_batch); the app turns each output into its job's result."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ml.base import AIModel
from models import User

# (owner, input, output) of each job of a batch
BatchJobs = Sequence[tuple[User, str, Any]]


class ModelApp(AIModel):
    """A model whose results read the database."""

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

    def results_for(self, session: Session, *, jobs: BatchJobs) -> list[Any]:
        """The results of a batch's jobs, in order: result_for for each, sharing batch_memo. An
        exception in a job's place fails that job alone. An app may override it to do at once
        what the jobs share (e.g. one matrix product)."""
        memo = self.batch_memo(session, owners=list({user.id: user for user, _, _ in jobs}.values()))
        results: list[Any] = []
        for user, text, output in jobs:
            try:
                results.append(self.result_for(session, user=user, text=text, output=output, memo=memo))
            except Exception as exc:
                results.append(exc)
        return results


def results(model: AIModel, session: Session, *, jobs: BatchJobs) -> list[Any]:
    """The results of a batch's jobs: an app's, or a plain model's outputs as they are."""
    if isinstance(model, ModelApp):
        return model.results_for(session, jobs=jobs)
    return [output for _, _, output in jobs]
