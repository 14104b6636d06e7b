"""Where attachment bytes live, behind a small interface.

`Storage` is what the attachment service needs: write a new object under a fresh random key
(invisible until committed, discarded on abort), read it back in chunks (a byte range of it for
a Range request), delete it, and list every committed object (`iter_objects`, for the
maintenance commands). Two backends:

- `LocalStorage` keeps objects under UPLOAD_DIR (`<root>/<2 hex>/<key>`, written under
  `.partial/` first and moved into place on commit).
- `S3Storage` keeps them in a bucket of any service that speaks the plain S3 API (AWS S3,
  MinIO, Ceph RGW, Cloudflare R2), as `<S3_PREFIX><key>`, written with a multipart upload:
  parts of PART_BYTES are sent as the bytes stream in, complete_multipart_upload makes the
  object visible, abort_multipart_upload forgets it.

Every attachment row names the backend that holds its object (`Attachment.storage_backend`);
`get_storage(name)` opens that one, so rows of both kinds are served while objects move.

A bucket that fails (unreachable, timing out, answering 5xx, refusing our credentials, gone)
surfaces as one exception, `StorageUnavailable`, from every S3 operation; a missing object stays
`ObjectMissing` and a range outside it `RangeNotSatisfiable`.
"""

import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from config import Settings, settings

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import CompletedPartTypeDef

BackendName = Literal["local", "s3"]
BACKENDS: tuple[BackendName, ...] = ("local", "s3")

READ_CHUNK_BYTES = 64 * 1024
# Keys are ours (random hex), never a user's words; anything else is refused before it
# reaches a path.
_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class ObjectMissing(Exception):
    """The storage holds no object under this key."""


class StorageUnavailable(Exception):
    """The storage cannot do what was asked now: the bucket is unreachable, timed out, answered
    an error of its own (5xx, access denied, no such bucket), or these settings do not reach the
    backend a row names. The boto error, if any, is the cause."""


class RangeNotSatisfiable(Exception):
    """The byte range asked for lies outside the object (RFC 9110's 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range outside an object of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One range of a Range header, as sent: `first-last`, `first-` (last None) or the suffix
    `-length` (first None, last = length). Resolved against the object's size by the storage."""

    first: int | None
    last: int | None

    def resolve(self, size: int) -> tuple[int, int]:
        """(start, end), both inclusive, within an object of `size` bytes."""
        if self.first is None:
            length = self.last or 0
            if length == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return max(size - length, 0), size - 1
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last

    def header(self) -> str:
        first = "" if self.first is None else str(self.first)
        last = "" if self.last is None else str(self.last)
        return f"bytes={first}-{last}"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A committed object, as `Storage.iter_objects` lists it."""

    key: str
    size: int
    last_modified: datetime  # aware, UTC


class ObjectWriter(Protocol):
    key: str

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Make the object readable under `key`."""

    def abort(self) -> None:
        """Forget everything written; safe to call more than once and after commit is refused."""


@dataclass
class StoredObject:
    size: int  # the whole object's
    chunks: Iterator[bytes]  # the bytes start..end
    start: int = 0
    end: int = -1  # inclusive; -1: size - 1

    def __post_init__(self) -> None:
        if self.end < 0:
            self.end = self.size - 1

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Storage(Protocol):
    name: BackendName

    def create(self) -> ObjectWriter: ...

    def open(self, key: str, byte_range: ByteRange | None = None) -> StoredObject:
        """The object's bytes (those of `byte_range` when given). Raises ObjectMissing, and
        RangeNotSatisfiable for a range outside the object."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def exists(self, key: str) -> bool: ...

    def iter_objects(self) -> Iterator[ObjectInfo]:
        """Every committed object (in no particular order); uploads in progress are not listed."""


def new_key() -> str:
    return secrets.token_hex(16)


def _checked(key: str) -> str:
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError("not a storage key")
    return key


def is_key(text: str) -> bool:
    return _KEY_PATTERN.fullmatch(text) is not None


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
    name: BackendName = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / ".partial"

    def path(self, key: str) -> Path:
        # Two hex characters of fan-out keep any one directory small.
        key = _checked(key)
        return self.root / key[:2] / key

    def create(self) -> LocalWriter:
        return LocalWriter(self)

    def open(self, key: str, byte_range: ByteRange | None = None) -> StoredObject:
        try:
            file = open(self.path(key), "rb")  # noqa: SIM115 - closed when the chunks run out
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        size = os.fstat(file.fileno()).st_size
        if byte_range is None:
            return StoredObject(size=size, chunks=_read_chunks(file))
        try:
            start, end = byte_range.resolve(size)
        except RangeNotSatisfiable:
            file.close()
            raise
        file.seek(start)
        return StoredObject(size=size, chunks=_read_chunks(file, end - start + 1), start=start, end=end)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def iter_objects(self) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for fan in sorted(self.root.iterdir()):
            # `.partial/` (uploads in progress) and anything else that is not ours is skipped.
            if not (fan.is_dir() and len(fan.name) == 2):
                continue
            for path in sorted(fan.iterdir()):
                if not (is_key(path.name) and path.name.startswith(fan.name)):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted while we listed
                    continue
                yield ObjectInfo(
                    key=path.name, size=stat.st_size, last_modified=datetime.fromtimestamp(stat.st_mtime, UTC)
                )


def _read_chunks(file: BinaryIO, length: int | None = None) -> Iterator[bytes]:
    with file:
        left = length
        while left is None or left > 0:
            chunk = file.read(READ_CHUNK_BYTES if left is None else min(READ_CHUNK_BYTES, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


# --- S3 ------------------------------------------------------------------------------------

MIB = 1024 * 1024
# S3's smallest part but the last (AWS, MinIO, R2 alike). A file is buffered up to this much
# while it streams in; an object smaller than one part goes up with one put_object.
PART_BYTES = 5 * MIB
PRESIGNED_SECONDS = 60


class S3Writer:
    """Streams one object to the bucket: buffered into parts of PART_BYTES, each sent with
    upload_part as soon as it is full; commit sends the last one and completes the upload. Until
    then nothing is visible under the key, and abort leaves no object and no upload behind (when
    the bucket lets it: a failed abort is not tried again, `cli.py storage sweep` finds what it
    leaves). A failing bucket raises StorageUnavailable."""

    def __init__(self, storage: "S3Storage") -> None:
        self.key = new_key()
        self._storage = storage
        self._name = storage.object_name(self.key)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._state: Literal["writing", "committed", "aborted"] = "writing"

    def write(self, chunk: bytes) -> None:
        assert self._state == "writing", "write after commit or abort"
        self._buffer += chunk
        while len(self._buffer) >= PART_BYTES:
            part = bytes(self._buffer[:PART_BYTES])
            del self._buffer[:PART_BYTES]
            self._send_part(part)

    def _send_part(self, data: bytes) -> None:
        client, bucket = self._storage.client, self._storage.bucket
        with _bucket_errors("store a part of an upload"):
            if self._upload_id is None:
                created = client.create_multipart_upload(Bucket=bucket, Key=self._name)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            sent = client.upload_part(
                Bucket=bucket, Key=self._name, UploadId=self._upload_id, PartNumber=number, Body=data
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def commit(self) -> None:
        assert self._state == "writing", "commit after commit or abort"
        client, bucket = self._storage.client, self._storage.bucket
        if self._upload_id is None:
            with _bucket_errors("store an object"):
                client.put_object(Bucket=bucket, Key=self._name, Body=bytes(self._buffer))
        else:
            if self._buffer or not self._parts:
                self._send_part(bytes(self._buffer))
            with _bucket_errors("complete an upload"):
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer = bytearray()
        self._state = "committed"

    def abort(self) -> None:
        client, bucket = self._storage.client, self._storage.bucket
        self._buffer = bytearray()
        # Tried once: with the bucket down, a second try would only wait as long again. (A commit
        # whose answer was lost may have made the object anyway; the sweep removes it too.)
        state, self._state = self._state, "aborted"
        with _bucket_errors("discard an upload"):
            if state == "committed":
                client.delete_object(Bucket=bucket, Key=self._name)
            elif state == "writing" and self._upload_id is not None:
                try:
                    client.abort_multipart_upload(Bucket=bucket, Key=self._name, UploadId=self._upload_id)
                except ClientError as exc:
                    if _error_code(exc) != "NoSuchUpload":  # completed or aborted already
                        raise


class S3Storage:
    """A bucket (under a prefix). Every method raises StorageUnavailable when the bucket fails."""

    name: BackendName = "s3"

    def __init__(self, client: "S3Client", *, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def object_name(self, key: str) -> str:
        return f"{self.prefix}{_checked(key)}"

    def create(self) -> S3Writer:
        return S3Writer(self)

    def open(self, key: str, byte_range: ByteRange | None = None) -> StoredObject:
        name = self.object_name(key)
        with _bucket_errors("read an object"):
            try:
                if byte_range is None:
                    got = self.client.get_object(Bucket=self.bucket, Key=name)
                elif byte_range.first is None and not byte_range.last:
                    # `-0`: nothing to ask the bucket for; only the size is needed for the 416.
                    raise RangeNotSatisfiable(self._size(name))
                else:
                    # The bucket resolves the range against the size it knows: one request.
                    got = self.client.get_object(Bucket=self.bucket, Key=name, Range=byte_range.header())
            except ClientError as exc:
                code = _error_code(exc)
                if code in ("NoSuchKey", "404"):
                    raise ObjectMissing(key) from exc
                if code == "InvalidRange":
                    raise RangeNotSatisfiable(self._size(name)) from exc
                raise
        body = got["Body"]
        length = got["ContentLength"]
        content_range = got.get("ContentRange")
        if not content_range:
            # No range asked for, or the service answered the whole object (200) for it.
            return StoredObject(size=length, chunks=_streamed(body))
        start, end, size = _parse_content_range(content_range)
        return StoredObject(size=size, chunks=_streamed(body), start=start, end=end)

    def _size(self, name: str) -> int:
        with _bucket_errors("read an object's size"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"]
            except ClientError as exc:
                if _error_code(exc) in ("NoSuchKey", "404"):
                    raise ObjectMissing(name) from exc
                raise

    def delete(self, key: str) -> None:
        # Deleting a missing key succeeds in S3 already.
        with _bucket_errors("delete an object"):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    def exists(self, key: str) -> bool:
        try:
            self._size(self.object_name(key))
        except ObjectMissing:
            return False
        return True

    def iter_objects(self) -> Iterator[ObjectInfo]:
        with _bucket_errors("list the bucket"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    if not is_key(key):  # the bucket (or the prefix) may hold other things too
                        continue
                    yield ObjectInfo(
                        key=key, size=item["Size"], last_modified=item["LastModified"].astimezone(UTC)
                    )

    def presigned_url(self, key: str, *, content_type: str, content_disposition: str) -> str:
        """A GET URL valid PRESIGNED_SECONDS, whose answer carries our name and type."""
        with _bucket_errors("sign a download"):  # signed here, no request: only missing credentials fail
            return self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.object_name(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition,
                },
                ExpiresIn=PRESIGNED_SECONDS,
            )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _bucket_errors(action: str) -> Iterator[None]:
    """Any error of the bucket or of the way to it, as StorageUnavailable. Inside, the errors
    that mean something else (a missing key, a range outside the object) are translated first."""
    try:
        yield
    except ClientError as exc:
        raise StorageUnavailable(f"S3 refused to {action}: {_error_code(exc) or exc}") from exc
    except BotoCoreError as exc:  # unreachable, timed out, the connection cut, no credentials
        raise StorageUnavailable(f"S3 could not {action}: {exc}") from exc


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _parse_content_range(text: str) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unexpected Content-Range from the bucket: {text!r}")
    start, end, size = (int(group) for group in match.groups())
    return start, end, size


def _streamed(body: "StreamingBody") -> Iterator[bytes]:
    """An object's bytes, with the connection given back when they run out or the client leaves.
    A failure midway is StorageUnavailable too (though a download's status is sent by then)."""
    try:
        with _bucket_errors("read an object"):
            yield from body.iter_chunks(READ_CHUNK_BYTES)
    finally:
        body.close()


# One client per process and per connection settings: a boto3 client is thread-safe, holds the
# connection pool and costs tens of milliseconds to build (it loads the service's model), so it
# is built once. It lives here, not on the app's runtime (services/runtime.py), because code
# without an app uses it too (the upload parser built by a dependency, `cli.py storage ...`);
# keyed by the settings, a test that points at another endpoint gets a client of its own.
_client_lock = threading.Lock()

# How long a request waits for the bucket. These calls run on a request's path (an upload, a
# download), so a dead or hung bucket must become a 503 in seconds, not hold a worker thread
# for minutes: connecting takes milliseconds when the service is up (5 s: it is not); 30 s
# between two reads of one answer covers a 5 MiB part going up or a large object's first byte
# on a slow link; 3 attempts in all (botocore's "standard" mode retries throttling, 5xx and
# connection errors with a jittered backoff of at most 1 s, then 2 s). So a refused connection
# fails within ~3 s, an endpoint that never answers a connect within ~18 s, and one that accepts
# and then hangs within ~93 s (the worst case). Module constants, read when a client is built,
# so the tests can make them short.
S3_CONNECT_TIMEOUT_SECONDS = 5.0
S3_READ_TIMEOUT_SECONDS = 30.0
S3_MAX_ATTEMPTS = 3


def s3_client(config: Settings) -> "S3Client":
    with _client_lock:  # boto3's session is not thread-safe while a client is built
        return _s3_client(
            config.S3_ENDPOINT_URL or None,
            config.S3_REGION or None,
            config.S3_ACCESS_KEY_ID or None,
            config.S3_SECRET_ACCESS_KEY or None,
            config.S3_FORCE_PATH_STYLE,
            # As many connections as threads may be sending parts or serving downloads at once.
            max(10, config.WORKER_THREADS * 2),
            S3_CONNECT_TIMEOUT_SECONDS,
            S3_READ_TIMEOUT_SECONDS,
            S3_MAX_ATTEMPTS,
        )


@lru_cache(maxsize=8)
def _s3_client(
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    path_style: bool,
    connections: int,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> "S3Client":
    # boto3 takes a fifth of a second to import: only a process that uses S3 pays for it.
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "auto"},
            # total_max_attempts counts the first request (botocore's `max_attempts` would count
            # the retries only: 3 there is 4 requests).
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            max_pool_connections=connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


def get_storage(backend_name: str | None = None) -> Storage:
    """The backend of this name (a row's `storage_backend`), by default the configured one
    (STORAGE_BACKEND). Read at each use so a test may point the settings elsewhere."""
    name = backend_name or settings.STORAGE_BACKEND
    if name == "local":
        return LocalStorage(Path(settings.UPLOAD_DIR))
    if name == "s3":
        if not settings.S3_BUCKET:
            raise StorageUnavailable("an attachment is stored in S3 but S3_BUCKET is not set")
        return S3Storage(s3_client(settings), bucket=settings.S3_BUCKET, prefix=settings.S3_PREFIX)
    raise StorageUnavailable(f"unknown storage backend {name!r}")
