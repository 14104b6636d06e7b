"""The bilingual evaluation set (bench/ai_eval_set.json, `make eval-ai`) holds the AI issue's
targets: both real encoders run on the whole set, in this process (a few seconds)."""

from collections import Counter

import pytest

from bench.eval_ai import Scores, all_minilm_l6_v2, evaluate, load_set, multilingual_e5_small
from ml.language import ENGLISH, KOREAN, language_of

# Database-independent (the models over a fixed set) and slow: `make test` runs it in its MariaDB
# pass, the shorter one (the Makefile's `test`); `make test-sqlite` alone runs it too.
pytestmark = pytest.mark.either_pass


@pytest.fixture(scope="module")
def eval_set() -> dict:
    return load_set()


@pytest.fixture(scope="module")
def multilingual(eval_set: dict) -> Scores:
    return evaluate(multilingual_e5_small(), eval_set)


@pytest.fixture(scope="module")
def english_only(eval_set: dict) -> Scores:
    return evaluate(all_minilm_l6_v2(), eval_set)


def test_the_set_is_big_enough_and_bilingual(eval_set):
    posts, questions = eval_set["posts"], eval_set["questions"]
    assert len(posts) >= 60 and len(questions) >= 40 and len(eval_set["topics"]) >= 8
    assert len(eval_set["drafts"]) >= 2 * len(eval_set["boards"])
    per_topic = Counter((post["topic"], post["lang"]) for post in posts)
    for topic in eval_set["topics"]:
        assert per_topic[topic["key"], "ko"] >= 1 and per_topic[topic["key"], "en"] >= 1, topic["key"]
    assert Counter(question["lang"] for question in questions).keys() == {"ko", "en"}


def test_korean_questions_find_posts_of_their_topic(multilingual):
    assert multilingual.korean_top1 >= 0.8
    assert multilingual.korean_hit3 >= 0.95


def test_english_questions_do_no_worse_than_with_the_english_model(multilingual, english_only):
    assert multilingual.english_top1 >= 0.8
    assert multilingual.english_top1 >= english_only.english_top1


def test_questions_find_posts_of_their_topic_in_the_other_language(multilingual):
    """e5's raw vectors scored 0.20 here (a Korean question ranked every Korean post above the
    English one of its own subject); its vectors without their language means, 0.88."""
    assert multilingual.cross_language_hit5 >= 0.6


def test_board_suggest_ranks_the_drafts_board_first(multilingual):
    assert multilingual.board_top1 >= 0.75


def test_the_english_model_misses_korean_questions(english_only):
    """Why the default changes: all-MiniLM-L6-v2 reads Korean as noise (0.25 top-1 on the issue's
    set); the evaluation must show it, or it measures nothing."""
    assert english_only.korean_top1 < 0.5


def test_a_texts_language_is_korean_when_hangul_carries_it(eval_set):
    """Korean with English words in it (the set's "mixed" posts) counts as Korean."""
    expected = {"ko": KOREAN, "mixed": KOREAN, "en": ENGLISH}
    for post in eval_set["posts"]:
        assert language_of(post["title"] + " " + post["content"]) == expected[post["lang"]], post["id"]
