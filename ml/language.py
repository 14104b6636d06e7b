"""Taking the language out of multilingual sentence vectors.

A multilingual encoder puts a text's language into its vector as well as its meaning: with
multilingual-e5-small every Korean text is nearer every other Korean text than an English text
on the same subject, so a Korean question ranks other subjects' Korean posts above the English
post it asks about. Most of that is one direction per language, each language's mean vector:
taking a text's language mean out of its vector (and normalizing again) leaves mostly meaning.

The means come from everyday texts in each language on subjects of their own
(ml/data/language_calibration.json, written for the project, outside the evaluation set's
topics), encoded as the texts they correct are encoded (a query's prefix moves the mean too).
"""

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

CALIBRATION_FILE = Path(__file__).with_name("data") / "language_calibration.json"
# The means measured on the calibration texts, kept per model file (by its SHA-256): measuring
# them at every load took 480 forward passes (~3 s on two idle cores, 30 s on busy ones).
MEANS_FILE = Path(__file__).with_name("data") / "language_means.json"
KOREAN, ENGLISH = "ko", "en"
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")

Vectors = npt.NDArray[np.float32]


def language_of(text: str) -> str:
    """KOREAN when Hangul makes up a third or more of the letters (Korean written with English
    words in it is Korean), else ENGLISH, which stands for every other language here."""
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    return KOREAN if hangul and 2 * hangul >= latin else ENGLISH


def calibration_texts(path: Path = CALIBRATION_FILE) -> dict[str, list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {KOREAN: list(data[KOREAN]), ENGLISH: list(data[ENGLISH])}


@dataclass(frozen=True)
class LanguageMeans:
    """Each language's mean vector, for one model and one way of encoding (query or passage)."""

    means: dict[str, Vectors]

    @classmethod
    def measure(
        cls, encode: Callable[[Sequence[str]], Vectors], texts: dict[str, list[str]]
    ) -> "LanguageMeans":
        return cls({language: encode(samples).mean(axis=0) for language, samples in texts.items()})

    def to_json(self) -> dict[str, list[float]]:
        return {language: [float(x) for x in mean] for language, mean in self.means.items()}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> "LanguageMeans":
        return cls({language: np.asarray(mean, dtype=np.float32) for language, mean in data.items()})

    def remove(self, texts: Sequence[str], vectors: Vectors) -> Vectors:
        """The vectors with their texts' language means taken out, rows of unit length again."""
        if not len(texts):
            return vectors
        centered = vectors - np.stack([self.means[language_of(text)] for text in texts])
        norms = np.linalg.norm(centered, axis=1, keepdims=True)
        result: Vectors = (centered / np.maximum(norms, 1e-12)).astype(np.float32)
        return result


def stored_means(model_sha256: str, path: Path = MEANS_FILE) -> dict[str, LanguageMeans] | None:
    """The means measured for the model file of this digest, by way of encoding ("query",
    "passage"), or None when they were measured for no such file."""
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8")).get(model_sha256)
    if stored is None:
        return None
    return {kind: LanguageMeans.from_json(means) for kind, means in stored.items()}
