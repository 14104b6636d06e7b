"""Moving attachment objects between storage backends, and sweeping objects no row names: the
rules behind `python cli.py storage migrate` and `python cli.py storage sweep`.

Both run while the API serves. A row names its object by (storage_backend, storage_key), and a
download reads whichever backend the row names, so:

- migrate copies a row's object to a fresh key on the target, hashes the copy read back from
  the target against the row's `sha256`, and only then points the row at the copy, in a
  transaction of its own that changes the row only if it still names the source (a row deleted
  or moved meanwhile keeps its state, and the copy is removed). A row's source object is deleted
  SOURCE_GRACE_SECONDS after its switch is committed, so a download that read the row just
  before the switch still finds the object it names. An interrupted run leaves every row on
  one backend or the other, each naming an object that exists; running it again continues with
  the rows not yet on the target. What an interruption can leave behind is an unnamed copy (or
  a source not yet deleted): the sweep removes it.
- sweep removes the objects that no row names and that are older than a threshold: an upload
  writes its object before its row is committed, so an object younger than any upload takes
  (an hour by default) may be one in flight, and a crash between the two leaves an object no
  row will ever name. It also reports the rows whose object is missing.
"""

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from botocore.exceptions import ClientError
from sqlalchemy.orm import Session

from crud import attachments as attachments_crud
from services.storage import LocalStorage, ObjectMissing, S3Storage, Storage, get_storage

log = logging.getLogger(__name__)

BATCH = 100  # rows read, or listed keys looked up, per query
# How long a migrated row's source object outlives the row's switch: a download that read the
# row just before the switch opens the object a moment later, and must still find it.
SOURCE_GRACE_SECONDS = 2.0

StorageFor = Callable[[str], Storage]  # a backend's name ("local", "s3") -> that backend


@dataclass
class Stored:
    """What a row says about its object."""

    attachment_id: int
    backend: str
    key: str
    size: int
    sha256: str


# --- migrate ----------------------------------------------------------------------------------


@dataclass
class MigrateReport:
    copied: int = 0
    skipped: int = 0  # already on the target, or deleted or moved by someone else meanwhile
    missing: list[int] = field(default_factory=list)  # attachment ids whose source object is gone
    mismatched: list[int] = field(default_factory=list)  # ids whose bytes differ from their sha256

    @property
    def complete(self) -> bool:
        """Every row is now on the target."""
        return not self.missing and not self.mismatched


def to_migrate(session: Session, target: str) -> int:
    """How many rows name a backend other than `target` (a progress bar's length)."""
    counts = attachments_crud.count_by_backend(session)
    session.rollback()  # end the read: the copies that follow take a while
    return sum(count for backend, count in counts.items() if backend != target)


def migrate(
    session: Session,
    *,
    target: str,
    storage_for: StorageFor = get_storage,
    delete_source: bool = True,
    source_grace: float = SOURCE_GRACE_SECONDS,
    progress: Callable[[int], None] = lambda done: None,
) -> MigrateReport:
    """Moves every row's object to the `target` backend, a row at a time (see the module's
    docstring); `progress` hears of each row dealt with. Each source object is deleted
    `source_grace` seconds after its row's switch was committed (the run waits for the last)."""
    storage_for = cache(storage_for)  # one client per backend for the run
    report = MigrateReport(skipped=attachments_crud.count_by_backend(session).get(target, 0))
    session.rollback()
    switched: deque[tuple[float, Stored]] = deque()  # (when its source may go, the row as it was)
    try:
        last_id = 0
        while rows := attachments_crud.stored_not_on(session, target, after_id=last_id, limit=BATCH):
            session.rollback()  # no snapshot held open while objects are copied
            for row in rows:
                stored = Stored(*row)
                if _move(session, stored, target, storage_for, report) and delete_source:
                    switched.append((time.monotonic() + source_grace, stored))
                _delete_sources(switched, storage_for, wait=False)
                progress(1)
            last_id = rows[-1][0]
    finally:
        # Also when interrupted: these rows' switches are committed, their sources named by nothing.
        _delete_sources(switched, storage_for, wait=True)
    return report


def _delete_sources(switched: deque[tuple[float, Stored]], storage_for: StorageFor, *, wait: bool) -> None:
    """Deletes the sources whose grace has passed (all of them, after waiting, when `wait`)."""
    while switched and (wait or switched[0][0] <= time.monotonic()):
        due, stored = switched.popleft()
        time.sleep(max(0.0, due - time.monotonic()))
        storage_for(stored.backend).delete(stored.key)


def _move(
    session: Session, stored: Stored, target: str, storage_for: StorageFor, report: MigrateReport
) -> bool:
    """Copies, verifies and switches one row; True once the switch is committed."""
    try:
        new_key = _verified_copy(stored, storage_for(stored.backend), storage_for(target))
    except ObjectMissing:
        log.error(
            "attachment %s: object %s is missing from %s", stored.attachment_id, stored.key, stored.backend
        )
        report.missing.append(stored.attachment_id)
        return False
    if new_key is None:
        log.error("attachment %s: its bytes do not match its sha256, not moved", stored.attachment_id)
        report.mismatched.append(stored.attachment_id)
        return False
    switched = attachments_crud.move_object(
        session, stored.attachment_id, old=(stored.backend, stored.key), new=(target, new_key)
    )
    if not switched:  # deleted or moved meanwhile: the copy names nothing
        session.rollback()
        storage_for(target).delete(new_key)
        report.skipped += 1
        return False
    session.commit()
    report.copied += 1
    return True


def _verified_copy(stored: Stored, source: Storage, target: Storage) -> str | None:
    """The key of a copy on `target` whose bytes, read back, match the row's size and sha256;
    None (and no copy left) when the source or the copy does not match."""
    writer = target.create()
    digest = hashlib.sha256()
    try:
        for chunk in source.open(stored.key).chunks:
            digest.update(chunk)
            writer.write(chunk)
        if digest.hexdigest() != stored.sha256:
            writer.abort()
            return None
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    try:
        copy = target.open(writer.key)
        size, sha256 = _measure(copy.chunks)
    except ObjectMissing:
        size, sha256 = -1, ""
    if (size, sha256) != (stored.size, stored.sha256):
        target.delete(writer.key)
        return None
    return writer.key


def _measure(chunks: Iterable[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


# --- sweep ----------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    backend: str
    objects: int = 0  # listed
    removed: int = 0  # unnamed and older than the threshold (or would be, on a dry run)
    young: int = 0  # unnamed but younger than the threshold: perhaps an upload in flight
    unfinished: int = 0  # uploads begun before the threshold and never finished, removed
    missing: list[int] = field(default_factory=list)  # attachment ids whose object is not there


def backends_to_sweep(session: Session, configured: str) -> list[str]:
    """The configured backend, and every other one that rows still name."""
    named = set(attachments_crud.count_by_backend(session))
    session.rollback()
    return sorted(named | {configured})


def sweep(
    session: Session,
    *,
    backend: str,
    older_than: timedelta,
    dry_run: bool = False,
    storage_for: StorageFor = get_storage,
    now: datetime | None = None,
) -> SweepReport:
    """Removes `backend`'s objects that no row names and that were last written before
    `older_than` ago, and lists the rows naming `backend` whose object is not there."""
    storage = storage_for(backend)
    cutoff = (now or datetime.now(UTC)) - older_than
    report = SweepReport(backend)
    listed: set[str] = set()
    old: list[str] = []
    young: list[str] = []
    # Only keys of the shape the storage makes are listed: anything else under the bucket's
    # prefix is someone else's, and never swept.
    for info in storage.iter_objects():
        listed.add(info.key)
        (old if info.last_modified < cutoff else young).append(info.key)
    report.objects = len(listed)
    for keys in _batches(old):
        for key in _unnamed(session, keys):
            if not dry_run:
                storage.delete(key)
            report.removed += 1
    report.young = sum(len(_unnamed(session, keys)) for keys in _batches(young))
    report.unfinished = _sweep_unfinished(storage, cutoff, dry_run=dry_run)
    report.missing = _missing(session, backend, storage, listed)
    return report


def _sweep_unfinished(storage: Storage, cutoff: datetime, *, dry_run: bool) -> int:
    """Removes the uploads begun before `cutoff` and never committed nor aborted (a process
    killed mid-upload): files under UPLOAD_DIR/.partial, multipart uploads of the bucket. How many."""
    if isinstance(storage, LocalStorage):
        stale = []
        for path in storage.partial_dir.glob("*"):
            try:
                if datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff:
                    stale.append(path)
            except FileNotFoundError:  # committed or aborted while we looked
                continue
        for path in [] if dry_run else stale:
            path.unlink(missing_ok=True)
        return len(stale)
    if isinstance(storage, S3Storage):
        pages = storage.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=storage.bucket, Prefix=storage.prefix
        )
        uploads = [
            upload for page in pages for upload in page.get("Uploads", []) if upload["Initiated"] < cutoff
        ]
        for upload in [] if dry_run else uploads:
            try:
                storage.client.abort_multipart_upload(
                    Bucket=storage.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            except ClientError:  # completed or aborted meanwhile
                log.warning("could not abort the multipart upload of %s", upload["Key"], exc_info=True)
        return len(uploads)
    return 0


def _unnamed(session: Session, keys: list[str]) -> list[str]:
    named = attachments_crud.named_keys(session, keys)
    session.rollback()  # the next look sees rows committed since
    return [key for key in keys if key not in named]


def _batches(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), BATCH):
        yield keys[start : start + BATCH]


def _missing(session: Session, backend: str, storage: Storage, listed: set[str]) -> list[int]:
    """Rows naming `backend` whose key was not listed and is not there on a second look (an
    upload committed after the listing went by is)."""
    missing: list[int] = []
    last_id = 0
    while rows := attachments_crud.stored_on(session, backend, after_id=last_id, limit=BATCH):
        session.rollback()
        for attachment_id, _, key, _, _ in rows:
            if key not in listed and not storage.exists(key):
                log.error("attachment %s: object %s is missing from %s", attachment_id, key, backend)
                missing.append(attachment_id)
        last_id = rows[-1][0]
    return missing
