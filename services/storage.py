"""Where attachment bytes live, behind a small interface.

`Storage` is what the attachment service needs: write a new object under a fresh random key
(invisible until committed, discarded on abort), read it back in chunks, delete it. The local
backend keeps objects under UPLOAD_DIR; an object-storage backend (S3 multipart upload:
create / upload_part / complete / abort) fits the same shape.
"""

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from config import settings

READ_CHUNK_BYTES = 64 * 1024
# Keys are ours (random hex), never a user's words; anything else is refused before it
# reaches a path.
_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class ObjectMissing(Exception):
    """The storage holds no object under this key."""


class ObjectWriter(Protocol):
    key: str

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Make the object readable under `key`."""

    def abort(self) -> None:
        """Forget everything written; safe to call more than once and after commit is refused."""


@dataclass
class StoredObject:
    size: int
    chunks: Iterator[bytes]


class Storage(Protocol):
    def create(self) -> ObjectWriter: ...

    def open(self, key: str) -> StoredObject: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def exists(self, key: str) -> bool: ...


def new_key() -> str:
    return secrets.token_hex(16)


def _checked(key: str) -> str:
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError("not a storage key")
    return key


class LocalWriter:
    """Writes to `<root>/.partial/<key>`; commit moves the file to its place with one rename,
    so a reader never sees half an object and an aborted one leaves nothing behind."""

    def __init__(self, storage: "LocalStorage") -> None:
        self.key = new_key()
        self._final = storage.path(self.key)
        self._partial = storage.partial_dir / self.key
        storage.partial_dir.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(self._partial, "xb")  # noqa: SIM115 - closed by commit/abort
        self._committed = False

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._file.write(chunk)

    def commit(self) -> None:
        assert self._file is not None, "commit after commit or abort"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._partial, self._final)
        self._committed = True

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._partial.unlink(missing_ok=True)
        if self._committed:
            self._final.unlink(missing_ok=True)
            self._committed = False


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / ".partial"

    def path(self, key: str) -> Path:
        # Two hex characters of fan-out keep any one directory small.
        key = _checked(key)
        return self.root / key[:2] / key

    def create(self) -> LocalWriter:
        return LocalWriter(self)

    def open(self, key: str) -> StoredObject:
        try:
            file = open(self.path(key), "rb")  # noqa: SIM115 - closed when the chunks run out
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        return StoredObject(size=os.fstat(file.fileno()).st_size, chunks=_read_chunks(file))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


def _read_chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(READ_CHUNK_BYTES):
            yield chunk


def get_storage() -> Storage:
    """The configured backend. Read at each use so a test may point UPLOAD_DIR elsewhere."""
    return LocalStorage(Path(settings.UPLOAD_DIR))
