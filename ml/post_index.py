"""Post embeddings for similar-posts: an internal model (no AI row, no jobs) that the runner
batches like any other when posts are written or reindexed."""

from ml.embedding import EmbeddingModel
from ml.encoder import PASSAGE


class PostIndex(EmbeddingModel):
    name = "post-index"
    information = "Embeds posts (title and content) so similar-posts can find them."
    listed = False
    text_kind = PASSAGE  # what questions are searched against


def post_text(title: str, content: str) -> str:
    """What a post is embedded as: the title first (both encoders read its first 256 tokens)."""
    return f"{title}\n{content}"
