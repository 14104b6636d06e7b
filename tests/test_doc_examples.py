"""The README's and docs/api.md's shell examples work as written. Their ```bash blocks are this
test's input, read from the documents themselves, in order (the README's first five minutes, then
docs/api.md, which continues with the README's variables), and run as one `bash -e` script against
a live server on a fresh SQLite database, started the way `make run` starts it, with the models
loaded (as a reader would have waited for). The commands are run as written; only the README's
`API=http://127.0.0.1:8000/api/v1` gets the test server's port. They run in a scratch folder whose
`.venv` and `cli.py` are the checkout's (a reader runs them in the checkout).

Each block must run (bash -e stops at the first failing command) and print what its document
shows after it: where the document shows JSON, a line that parses, with the same keys, list
lengths and kinds of values (ids, dates and scores differ from run to run); other lines as shown.
A block that cannot run in a test (`make run` itself, a MariaDB setup) is fenced ```console in
the document, which says so; any other shell fence fails the convention test below."""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from config import BASE_DIR
from tests.chat_support import ApiProcess, running_api

DOCUMENTS = ("README.md", "docs/api.md")
RUN = "bash"  # fences the test runs
NOT_RUN = "console"  # fences a reader runs, the test cannot (they start servers or need MariaDB)
SHELL_FENCES = {"sh", "shell", "zsh", "bash", "console", "shell-session"}
# The only change made to the commands: the README's base URL gets the test server's port.
DOCUMENTED_API = "API=http://127.0.0.1:8000/api/v1"
MODELS_LOADED_SECONDS = 180  # a fresh process loads its models in the background (AI_LOAD_AT_START)
SCRIPT_SECONDS = 600


@dataclass(frozen=True)
class Fence:
    document: str
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


@dataclass(frozen=True)
class Example:
    block: Fence
    shown: Fence | None  # the output the document shows for it: the untyped block after it


def fences(document: str) -> list[Fence]:
    found: list[Fence] = []
    lines = (BASE_DIR / document).read_text(encoding="utf-8").splitlines()
    opening: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("```"):
            if opening is not None:
                body.append(line)
            continue
        if opening is None:
            opening = (number, line[3:].strip().split(" ")[0])
            body = []
        else:
            found.append(Fence(document, opening[0], opening[1], "\n".join(body) + "\n"))
            opening = None
    assert opening is None, f"{document}: the fence of line {opening[0]} is never closed"
    return found


def examples() -> list[Example]:
    """Every ```bash block of the documents in order, each with the output shown after it (the
    next untyped block, if it comes before the next example)."""
    found: list[Example] = []
    for document in DOCUMENTS:
        blocks = fences(document)
        for index, fence in enumerate(blocks):
            if fence.language != RUN:
                continue
            following = next((later for later in blocks[index + 1 :] if later.language in ("", RUN)), None)
            shown = following if following is not None and following.language == "" else None
            found.append(Example(fence, shown))
    return found


EXAMPLES = examples()


def test_every_shell_block_is_run_or_says_it_is_not() -> None:
    """A shell block is either run here (```bash) or marked as not (```console): none is left out
    silently. Says how many of each there are."""
    kinds: dict[str, list[str]] = {}
    for document in DOCUMENTS:
        for fence in fences(document):
            if fence.language in SHELL_FENCES:
                kinds.setdefault(fence.language, []).append(fence.where)
    run, not_run = kinds.pop(RUN, []), kinds.pop(NOT_RUN, [])
    print(f"shell blocks: {len(run)} run, {len(not_run)} not run ({', '.join(not_run)})")
    assert kinds == {}, "fence these ```bash (run) or ```console (not run)"
    assert len(run) == len(EXAMPLES) > 0


# --- running them ------------------------------------------------------------------------------


@dataclass
class Ran:
    stdout: str
    stderr: str


@dataclass
class Run:
    """What each example printed, and which example stopped the script (None: none did)."""

    outputs: dict[int, Ran]
    failed_at: int | None
    returncode: int

    def __repr__(self) -> str:  # what a failure's traceback shows of the fixture
        return f"Run(failed_at={self.failed_at}, returncode={self.returncode})"


MARKER = "@@ madang doc example {} @@"
MARKER_LINE = re.compile(r"^@@ madang doc example (\d+) @@$", re.MULTILINE)


def script(port: int) -> str:
    """The examples as one script, each announced on stdout and stderr (to split their output)."""
    parts = []
    substituted = 0
    for index, example in enumerate(EXAMPLES):
        code, count = re.subn(
            rf"^{re.escape(DOCUMENTED_API)}$",
            f"API=http://127.0.0.1:{port}/api/v1",
            example.block.text,
            flags=re.MULTILINE,
        )
        substituted += count
        marker = MARKER.format(index)
        parts.append(f"printf '\\n{marker}\\n'; printf '\\n{marker}\\n' >&2\n{code}")
    assert substituted == 1, f"the examples must set {DOCUMENTED_API} once (found {substituted})"
    return "\n".join(parts)


def split(output: str) -> dict[int, str]:
    pieces = MARKER_LINE.split(output)  # [before, index, text, index, text, ...]
    return {int(index): text for index, text in zip(pieces[1::2], pieces[2::2], strict=True)}


def wait_for_models(api: ApiProcess) -> None:
    deadline = time.monotonic() + MODELS_LOADED_SECONDS
    while httpx2.get(f"{api.http}/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"the models did not load:\n{api.log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("doc-examples")
    folder = root / "checkout"  # where a reader runs the commands: .venv and cli.py are there
    folder.mkdir()
    (folder / ".venv").symlink_to(Path(sys.prefix))  # the virtual environment running the tests
    (folder / "cli.py").symlink_to(BASE_DIR / "cli.py")
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{root / 'madang.sqlite3'}",
        "UPLOAD_DIR": str(root / "uploads"),
        "MODEL_DIR": str(root / "models"),
        "REDIS_URL": "",
        # What `make run` runs with (the suite's conftest turns both off for its own apps).
        "AI_INDEX_POSTS": "true",
        "AI_LOAD_AT_START": "true",
        "AI_WORKERS": "1",  # one model process is enough for a few jobs (each holds ~0.6 GiB)
    }
    migrated = subprocess.run(  # `make migrate`
        [str(folder / ".venv" / "bin" / "alembic"), "upgrade", "head"],
        check=False,
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert migrated.returncode == 0, migrated.stderr
    with running_api(environment, root / "api.log") as api:
        wait_for_models(api)
        (root / "examples.sh").write_text(script(api.port), encoding="utf-8")
        done = subprocess.run(  # not check=True: which example failed is the tests' to say
            ["bash", "-e", str(root / "examples.sh")],
            check=False,
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SCRIPT_SECONDS,
        )
    (root / "examples.out").write_text(done.stdout, encoding="utf-8")  # kept for a failure's reader
    (root / "examples.err").write_text(done.stderr, encoding="utf-8")
    stdout, stderr = split(done.stdout), split(done.stderr)
    outputs = {index: Ran(stdout.get(index, ""), stderr.get(index, "")) for index in range(len(EXAMPLES))}
    reached = [index for index in outputs if index in stdout]
    failed_at = None if done.returncode == 0 else max(reached, default=0)
    print(f"ran {len(reached)} of {len(EXAMPLES)} shell examples from {', '.join(DOCUMENTS)}")
    yield Run(outputs, failed_at, done.returncode)


# --- what each printed ----------------------------------------------------------------------


def parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def kind(value: Any) -> str:
    """A JSON value's kind: null, bool, number, str, list or dict."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def differences(shown: Any, printed: Any, where: str = "") -> list[str]:
    """Where `printed` has another shape than `shown`: keys, list lengths, kinds of values."""
    if kind(shown) != kind(printed):
        return [f"{where or 'the answer'}: shown {kind(shown)}, printed {json.dumps(printed)[:200]}"]
    if isinstance(shown, dict):
        if set(shown) != set(printed):
            return [f"{where or 'the answer'}: shown keys {sorted(shown)}, printed {sorted(printed)}"]
        return [
            problem for key in shown for problem in differences(shown[key], printed[key], f"{where}.{key}")
        ]
    if isinstance(shown, list):
        if len(shown) != len(printed):
            return [f"{where or 'the answer'}: shown {len(shown)} items, printed {len(printed)}"]
        return [
            problem
            for position, (one, other) in enumerate(zip(shown, printed, strict=True))
            for problem in differences(one, other, f"{where}[{position}]")
        ]
    return []


def lines_of(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[example.block.where for example in EXAMPLES])
def test_the_example_runs_and_prints_what_the_document_shows(doc_run: Run, index: int) -> None:
    example = EXAMPLES[index]
    ran = doc_run.outputs[index]
    if doc_run.failed_at == index:
        pytest.fail(
            f"{example.block.where} stopped the examples (exit {doc_run.returncode}):\n"
            f"--- stdout\n{ran.stdout.strip()}\n--- stderr\n{ran.stderr.strip()}"
        )
    if doc_run.failed_at is not None and doc_run.failed_at < index:
        pytest.fail(f"not reached: {EXAMPLES[doc_run.failed_at].block.where} failed before it")
    if example.shown is None:
        return
    shown, printed = lines_of(example.shown.text), lines_of(ran.stdout)
    assert len(printed) == len(shown), (
        f"{example.block.where} printed {len(printed)} lines, {example.shown.where} shows {len(shown)}:\n"
        + "\n".join(printed)
    )
    for shown_line, printed_line in zip(shown, printed, strict=True):
        shown_json = parsed(shown_line)
        if shown_json is None:
            assert printed_line == shown_line
        else:
            printed_json = parsed(printed_line)
            assert printed_json is not None, f"not JSON: {printed_line}"
            assert differences(shown_json, printed_json) == [], printed_line
