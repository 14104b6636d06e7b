"""`make eval-ai`: how well each sentence encoder serves a bilingual community, on the project's own
evaluation set (bench/ai_eval_set.json: 10 topics, 70 posts in Korean, English and both mixed, 50
questions that paraphrase rather than repeat the posts' words, 40 board drafts).

For each model it prints:
- similar-posts, Korean questions: top-1 (the best post is of the question's topic) and hit@3;
- similar-posts, English questions: top-1;
- cross-language hit@5: a post of the question's topic in the other language (an English post for a
  Korean question, a Korean one for an English question; mixed-script posts count as neither) among
  the five best, once the topic's posts in the question's own language and the mixed ones are set
  aside (each topic has five of those; the issue's set, with one post a language, left four places);
- board-suggest: the draft's board ranked first, with the app's board profiles (its description and
  the centroid of its posts' vectors, weighted as services/ai/board_suggest.py weighs them).

The models are run in this process as the model processes run them (ml/), with the texts the app
embeds (ml/post_index.post_text for posts, services/ai/board_suggest.board_text's form for boards);
e5 models get their "query: " and "passage: " prefixes. `--model NAME` runs one; `--json FILE` writes
the figures.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.post_index import post_text
from services.ai.board_suggest import DESCRIPTION_WEIGHT  # a board's profile: its description's share

SET_PATH = Path(__file__).with_name("ai_eval_set.json")

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Encoder:
    """A model as the evaluation uses it: what it embeds questions and drafts with (queries), and
    what it embeds posts and board descriptions with (passages)."""

    name: str
    queries: Encode
    passages: Encode


@dataclass(frozen=True)
class Scores:
    model: str
    korean_top1: float
    korean_hit3: float
    english_top1: float
    cross_language_hit5: float
    board_top1: float
    seconds: float  # encoding the whole set

    def lines(self) -> list[str]:
        return [
            f"{self.model}",
            f"  similar-posts, Korean questions   top-1 {self.korean_top1:.2f}"
            f"   hit@3 {self.korean_hit3:.2f}",
            f"  similar-posts, English questions  top-1 {self.english_top1:.2f}",
            f"  cross-language                    hit@5 {self.cross_language_hit5:.2f}",
            f"  board-suggest, drafts             top-1 {self.board_top1:.2f}",
            f"  (the whole set encoded in {self.seconds:.1f} s)",
        ]


def load_set(path: Path = SET_PATH) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def evaluate(encoder: Encoder, data: dict[str, Any]) -> Scores:
    posts, questions, drafts, boards = data["posts"], data["questions"], data["drafts"], data["boards"]
    started = time.perf_counter()
    post_vectors = encoder.passages([post_text(post["title"], post["content"]) for post in posts])
    question_vectors = encoder.queries([question["text"] for question in questions])
    draft_vectors = encoder.queries([post_text(draft["title"], draft["content"]) for draft in drafts])
    description_vectors = encoder.passages([f"{board['name']}: {board['information']}" for board in boards])
    seconds = time.perf_counter() - started

    korean_top1, korean_hit3, english_top1, cross_hit5 = [], [], [], []
    for question, vector in zip(questions, question_vectors, strict=True):
        ranked = [posts[i] for i in np.argsort(-(post_vectors @ vector), kind="stable")]
        on_topic = [post["topic"] == question["topic"] for post in ranked]
        # Cross-language: the posts of the question's topic that are not in the other language are
        # set aside (the set has five such posts a topic, which would fill the five places by
        # themselves); then a post of its topic in the other language must be among the five best,
        # ahead of the other topics' posts in the question's own language.
        other_language = "en" if question["lang"] == "ko" else "ko"
        rest = [
            post for post in ranked if post["topic"] != question["topic"] or post["lang"] == other_language
        ]
        cross_hit5.append(any(post["topic"] == question["topic"] for post in rest[:5]))
        if question["lang"] == "ko":
            korean_top1.append(on_topic[0])
            korean_hit3.append(any(on_topic[:3]))
        else:
            english_top1.append(on_topic[0])

    profiles = []
    for board, description in zip(boards, description_vectors, strict=True):
        own = post_vectors[[i for i, post in enumerate(posts) if post["board"] == board["key"]]]
        profile = description
        if len(own):
            centroid = _unit(own.mean(axis=0))
            profile = DESCRIPTION_WEIGHT * description + (1 - DESCRIPTION_WEIGHT) * centroid
        profiles.append(_unit(profile))
    board_scores = np.stack(profiles) @ draft_vectors.T  # (boards, drafts)
    board_top1 = [
        boards[int(np.argmax(board_scores[:, column]))]["key"] == draft["board"]
        for column, draft in enumerate(drafts)
    ]
    return Scores(
        model=encoder.name,
        korean_top1=_mean(korean_top1),
        korean_hit3=_mean(korean_hit3),
        english_top1=_mean(english_top1),
        cross_language_hit5=_mean(cross_hit5),
        board_top1=_mean(board_top1),
        seconds=seconds,
    )


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def app_encoder(setting: str) -> Encoder:
    """The model of this EMBEDDING_MODEL value, as the app runs it (ml/encoder.SentenceEncoder,
    in this process): questions and drafts read as queries, posts and descriptions as passages."""
    from ml.encoder import PASSAGE, QUERY, SentenceEncoder  # torch loads with the model

    model = SentenceEncoder(model=setting)
    return Encoder(
        setting,
        lambda texts: model.encode(list(texts), kind=QUERY),
        lambda texts: model.encode(list(texts), kind=PASSAGE),
    )


def multilingual_e5_small() -> Encoder:
    return app_encoder("multilingual-e5-small")


def all_minilm_l6_v2() -> Encoder:
    return app_encoder("all-minilm-l6-v2")


MODELS: dict[str, Callable[[], Encoder]] = {
    "multilingual-e5-small": multilingual_e5_small,
    "all-minilm-l6-v2": all_minilm_l6_v2,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", choices=sorted(MODELS), action="append", help="default: every model")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = load_set()
    print(
        f"set: {len(data['posts'])} posts, {len(data['questions'])} questions, {len(data['drafts'])} drafts,"
        f" {len(data['boards'])} boards over {len(data['topics'])} topics ({SET_PATH.name})"
    )
    results = []
    for name in args.model or list(MODELS):
        scores = evaluate(MODELS[name](), data)
        results.append(scores)
        print("\n".join(scores.lines()))
    if args.json:
        args.json.write_text(json.dumps([asdict(scores) for scores in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
