"""The model process itself (ml/model_process.py starts it): `python -m ml.model_child`.

It loads the sentence encoder in-process, with the settings its parent put in its environment,
then answers each batch of texts (a frame on stdin: the kind, query or passage, and the texts)
with their vectors (a frame on stdout).
"""

import os
import sys
from typing import BinaryIO

from ml.encoder import DEFAULT_MODEL, SentenceEncoder
from ml.model_process import (
    MODEL_PATH_VARIABLE,
    MODEL_VARIABLE,
    TORCH_THREADS_VARIABLE,
    read_frame,
    write_frame,
)


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    try:
        encoder = SentenceEncoder(
            model=os.environ.get(MODEL_VARIABLE) or DEFAULT_MODEL,
            model_path=os.environ.get(MODEL_PATH_VARIABLE, ""),
            torch_threads=int(os.environ.get(TORCH_THREADS_VARIABLE) or 0),
        )
        encoder.load()
    except Exception as exc:
        write_frame(answers, RuntimeError(f"loading the model failed: {exc}"))
        return
    write_frame(answers, "ready")
    while True:
        try:
            kind, texts = read_frame(requests)
        except EOFError:
            return
        try:
            write_frame(answers, encoder.encode(texts, kind=kind))
        except Exception as exc:
            write_frame(answers, RuntimeError(f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    # stdout carries the frames: anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
