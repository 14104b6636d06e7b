"""The sentence encoder in a child process of its own, for the API process.

Why: a sentence encoder on short texts is bound by PyTorch's Python-level work, which holds the
GIL; in the API process that work and request handling take turns on one GIL, so together they
use about one core of two. In a child process the forward passes run beside the requests. The
parent sends a batch of texts (and whether they are queries or passages) and receives the
vectors: a few kilobytes each way, through a pipe, one batch at a time.

    python -m ml.model_child        # what the parent starts (stdin/stdout carry the frames)
"""

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np

HEADER = struct.Struct("!Q")
# How the parent tells the child its settings (ml/model_child.py reads them).
TORCH_THREADS_VARIABLE = "MADANG_MODEL_TORCH_THREADS"
MODEL_VARIABLE = "MADANG_EMBEDDING_MODEL"
MODEL_PATH_VARIABLE = "MADANG_MODEL_PATH"
REPO = Path(__file__).resolve().parent.parent


def write_frame(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("the model process closed its pipe")
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the model process closed its pipe")
    return pickle.loads(data)  # frames come only from our own child process


class ModelProcess:
    """The parent's handle: starts the child on first use, again if it died."""

    def __init__(self, torch_threads: int = 0, *, model: str, model_path: str = "") -> None:
        self.torch_threads = torch_threads  # 0: torch's default
        self.model = model  # EMBEDDING_MODEL's value
        self.model_path = model_path  # empty: the files of the model's package
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        """The vectors of these texts (kind: ml.encoder.QUERY or PASSAGE). A child that died
        (killed, out of memory) is started again and the batch sent once more; if it dies again,
        the batch fails."""
        with self._lock:
            try:
                answer = self._ask(kind, texts)
            except (OSError, EOFError):
                self._stop_locked()
                try:
                    answer = self._ask(kind, texts)
                except (OSError, EOFError) as exc:
                    self._stop_locked()
                    raise RuntimeError(f"the model process stopped: {exc}") from exc
        if isinstance(answer, BaseException):
            raise answer
        return np.asarray(answer, dtype=np.float32)

    def _ask(self, kind: str, texts: list[str]) -> Any:
        process = self._running()
        assert process.stdin is not None and process.stdout is not None
        write_frame(process.stdin, (kind, texts))
        return read_frame(process.stdout)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def load(self) -> None:
        """Starts the child and waits until its model is loaded. A running child returns at
        once: its lock is held for a whole batch, and each batch asks for load first."""
        if self.pid is not None:
            return
        with self._lock:
            self._running()

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        env[TORCH_THREADS_VARIABLE] = str(self.torch_threads)
        env[MODEL_VARIABLE] = self.model
        env[MODEL_PATH_VARIABLE] = self.model_path
        if self.torch_threads == 1:
            # One process per core: the tokenizer's own thread pool would take the next core,
            # another model process's (measured: 3.5-3.6 ms of CPU per job against 3.7-3.9).
            env["TOKENIZERS_PARALLELISM"] = "false"
        process = subprocess.Popen(
            [sys.executable, "-m", "ml.model_child"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            ready = read_frame(process.stdout)
        except EOFError as exc:
            process.wait()
            raise RuntimeError("the model process could not load the model") from exc
        if isinstance(ready, BaseException):
            process.wait()
            raise ready
        self._process = process
        return process

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ModelProcessPool:
    """Several model processes, one batch each at a time: with AI_WORKERS batches in flight, each
    has a process of its own. Their torch threads (AI_TORCH_THREADS, or the cores shared out
    among the processes and the API process itself, at least one: services/ai/registry.py
    decides) leave the requests a core: a forward's thread waiting for a core that a request (or
    another batch) holds stalls the forward's other threads at every operation (measured on 2
    cores under load: 2 threads took 20-28 ms of CPU per job against 4.5 ms with 1, and a lone
    job 470 ms against 43 ms)."""

    def __init__(self, size: int, *, torch_threads: int, model: str, model_path: str = "") -> None:
        size = max(1, size)
        self.torch_threads = torch_threads
        self.processes = [
            ModelProcess(torch_threads, model=model, model_path=model_path) for _ in range(size)
        ]
        self._idle: queue.SimpleQueue[ModelProcess] = queue.SimpleQueue()
        for process in self.processes:
            self._idle.put(process)

    @property
    def pids(self) -> list[int]:
        return [pid for pid in (process.pid for process in self.processes) if pid is not None]

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        process = self._idle.get()
        try:
            return process.encode(texts, kind=kind)
        finally:
            self._idle.put(process)

    def load(self) -> None:
        """Loads every process's model side by side (each takes a core for a few seconds)."""
        with ThreadPoolExecutor(len(self.processes)) as loaders:
            for loaded in [loaders.submit(process.load) for process in self.processes]:
                loaded.result()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
