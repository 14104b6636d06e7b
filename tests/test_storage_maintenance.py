"""`python cli.py storage migrate` and `storage sweep` (services/storage_maintenance.py): objects
move between the local disk and an S3 bucket (moto's server on loopback) one verified row at a
time, and the sweep removes old objects no row names and reports rows whose object is gone."""

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import models
from cli import app as cli_app
from config import settings
from database import SessionLocal
from services import storage_maintenance as maintenance
from services.storage import PART_BYTES, LocalStorage, ObjectWriter, S3Storage, Storage, get_storage
from tests.conftest import Person
from tests.s3_support import S3Server, in_progress_uploads, use_s3

# A moto server in a process of its own; the migration's switches in transactions of their own.
pytestmark = pytest.mark.db


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Storage:
    """STORAGE_BACKEND=s3 on a fresh bucket (keys under a prefix); UPLOAD_DIR a fresh folder, for
    the rows still on the local disk."""
    monkeypatch.setattr(settings, "UPLOAD_DIR", str(tmp_path / "uploads"))
    return use_s3(monkeypatch, s3_server)


@pytest.fixture
def local(s3: Storage) -> Storage:
    return get_storage("local")


@pytest.fixture
def post(
    make_board: Callable[..., models.Board], make_post: Callable[..., models.Post], user: Person
) -> models.Post:
    return make_post(make_board("files"), user)


Attach = Callable[..., models.Attachment]


@pytest.fixture
def attach(post: models.Post, user: Person) -> Attach:
    """An attachment row of `post` with its object written to `backend`, as an upload leaves it."""

    def make(data: bytes = b"some bytes", *, backend: str = "local") -> models.Attachment:
        writer = get_storage(backend).create()
        writer.write(data)
        writer.commit()
        with SessionLocal() as session:
            row = models.Attachment(
                post_id=post.id,
                uploader_id=user.id,
                original_name="notes.txt",
                storage_key=writer.key,
                content_type="text/plain",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                storage_backend=backend,
            )
            session.add(row)
            session.commit()
            return row

    return make


def reloaded(attachment: models.Attachment) -> models.Attachment:
    with SessionLocal() as session:
        row = session.scalar(select(models.Attachment).where(models.Attachment.id == attachment.id))
        assert row is not None
        return row


def reloaded_id(attachment_id: int) -> models.Attachment:
    with SessionLocal() as session:
        row = session.get(models.Attachment, attachment_id)
        assert row is not None
        return row


def read(storage: Storage, key: str) -> bytes:
    return b"".join(storage.open(key).chunks)


def keys(storage: Storage) -> set[str]:
    return {info.key for info in storage.iter_objects()}


def migrate(target: str, **options: object) -> maintenance.MigrateReport:
    """The migration, without its grace before deleting sources unless the test gives one."""
    options.setdefault("source_grace", 0.0)
    with SessionLocal() as session:
        return maintenance.migrate(session, target=target, **options)  # type: ignore[arg-type]


# --- migrate ----------------------------------------------------------------------------------


def test_migrate_to_s3_moves_every_object_and_switches_its_row(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    files = [attach(f"file {n}".encode()) for n in range(3)]
    already = attach(b"uploaded since the switch", backend="s3")
    report = migrate("s3")
    assert (report.copied, report.skipped, report.missing, report.mismatched) == (3, 1, [], [])
    for attachment, data in zip(files, [b"file 0", b"file 1", b"file 2"], strict=True):
        row = reloaded(attachment)
        assert row.storage_backend == "s3"
        assert read(s3, row.storage_key) == data
    assert keys(s3) == {reloaded(row).storage_key for row in [*files, already]}
    assert keys(local) == set()  # each source deleted once its row was switched


def test_migrate_back_to_local_is_the_same_move(attach: Attach, local: Storage, s3: Storage) -> None:
    attachment = attach(b"round trip")
    migrate("s3")
    report = migrate("local")
    assert (report.copied, report.skipped) == (1, 0)
    row = reloaded(attachment)
    assert row.storage_backend == "local"
    assert read(local, row.storage_key) == b"round trip"
    assert keys(s3) == set()


def test_keep_source_leaves_the_source_object_for_the_sweep(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    attachment = attach(b"kept")
    migrate("s3", delete_source=False)
    assert keys(local) == {attachment.storage_key}
    assert reloaded(attachment).storage_backend == "s3"


def test_an_interrupted_migration_continues_where_it_stopped(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    files = [attach(f"file {n}".encode()) for n in range(5)]
    done = 0

    def interrupt_after_two(count: int) -> None:
        nonlocal done
        done += count
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate("s3", progress=interrupt_after_two)
    backends = [reloaded(row).storage_backend for row in files]
    assert backends == ["s3", "s3", "local", "local", "local"]
    assert keys(local) == {row.storage_key for row in files[2:]}  # switched rows' sources went

    report = migrate("s3")
    assert (report.copied, report.skipped) == (3, 2)
    assert keys(local) == set()
    for n, attachment in enumerate(files):
        assert read(s3, reloaded(attachment).storage_key) == f"file {n}".encode()


class CorruptingStorage:
    """The real target, whose writes flip the first byte: a copy gone wrong on the way."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    def create(self) -> ObjectWriter:
        writer = self._storage.create()
        write = writer.write

        def corrupted(chunk: bytes) -> None:
            write(bytes([chunk[0] ^ 0xFF]) + chunk[1:])

        writer.write = corrupted  # type: ignore[method-assign]
        return writer


def test_a_corrupted_copy_is_not_switched_and_not_kept(attach: Attach, local: Storage, s3: Storage) -> None:
    attachment = attach(b"precious bytes")

    def storage_for(name: str) -> Storage:
        return CorruptingStorage(s3) if name == "s3" else get_storage(name)  # type: ignore[return-value]

    report = migrate("s3", storage_for=storage_for)
    assert (report.copied, report.mismatched) == (0, [attachment.id])
    row = reloaded(attachment)
    assert (row.storage_backend, row.storage_key) == ("local", attachment.storage_key)
    assert read(local, row.storage_key) == b"precious bytes"
    assert keys(s3) == set()


def test_a_source_that_differs_from_its_sha256_is_not_moved(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    attachment = attach(b"original")
    assert isinstance(local, LocalStorage)
    local.path(attachment.storage_key).write_bytes(b"tampered")
    report = migrate("s3")
    assert report.mismatched == [attachment.id]
    assert reloaded(attachment).storage_backend == "local"
    assert keys(s3) == set()


def test_a_row_whose_source_object_is_missing_is_reported_and_the_rest_moved(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    lost, kept = attach(b"lost"), attach(b"kept")
    local.delete(lost.storage_key)
    report = migrate("s3")
    assert (report.copied, report.missing, report.mismatched) == (1, [lost.id], [])
    assert reloaded(lost).storage_backend == "local"
    assert reloaded(kept).storage_backend == "s3"


def test_a_row_deleted_during_its_copy_keeps_no_copy(attach: Attach, local: Storage, s3: Storage) -> None:
    attachment = attach(b"deleted meanwhile")

    class DeletingWhileCopying(CorruptingStorage):
        def create(self) -> ObjectWriter:  # the user deletes the attachment as its copy starts
            with SessionLocal() as session:
                session.delete(session.get(models.Attachment, attachment.id))
                session.commit()
            return self._storage.create()

    def storage_for(name: str) -> Storage:
        return DeletingWhileCopying(s3) if name == "s3" else get_storage(name)  # type: ignore[return-value]

    report = migrate("s3", storage_for=storage_for)
    assert (report.copied, report.skipped) == (0, 1)
    assert keys(s3) == set()


def test_a_download_is_served_from_the_backend_its_row_names(
    client: TestClient, attach: Attach, user: Person, local: Storage, s3: Storage
) -> None:
    moved, stayed = attach(b"moved bytes"), attach(b"stayed bytes")
    local.delete(stayed.storage_key)  # missing: stays on local

    migrate("s3")
    local_again = attach(b"local bytes")  # e.g. uploaded by a process still on STORAGE_BACKEND=local
    for attachment, data in ((moved, b"moved bytes"), (local_again, b"local bytes")):
        response = client.get(f"{settings.API_PREFIX}/attachments/{attachment.id}", headers=user.headers)
        assert response.status_code == 200
        assert response.content == data


def test_a_source_outlives_its_rows_switch_for_a_grace_period(
    attach: Attach, local: Storage, s3: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download that read its row just before the switch opens the object just after: the
    source must still be there, whatever the batch size."""
    monkeypatch.setattr(maintenance, "BATCH", 1)
    first, second = attach(b"first"), attach(b"second")
    found = []

    def after_each_row(count: int) -> None:
        found.append(local.exists(first.storage_key))

    migrate("s3", progress=after_each_row, source_grace=1.0)
    assert found == [True, True]  # after the first row's switch, and after the second's
    assert keys(local) == set()  # gone by the end of the run
    assert reloaded(second).storage_backend == "s3"


def test_downloads_during_a_migration_are_all_served(
    client: TestClient, attach: Attach, user: Person, local: Storage, s3: Storage
) -> None:
    files = {attach(f"file {n}".encode()).id: f"file {n}".encode() for n in range(20)}
    migration = threading.Thread(target=migrate, args=("s3",), kwargs={"source_grace": 0.5})
    migration.start()
    answers: list[tuple[int, bool]] = []
    while migration.is_alive() or not answers:
        for attachment_id, data in files.items():
            response = client.get(f"{settings.API_PREFIX}/attachments/{attachment_id}", headers=user.headers)
            answers.append((response.status_code, response.content == data))
    migration.join()
    assert set(answers) == {(200, True)}
    assert {reloaded_id(attachment_id).storage_backend for attachment_id in files} == {"s3"}
    assert keys(local) == set()


def test_storage_migrate_command_prints_a_summary_and_fails_while_rows_are_left(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    attach(b"one")
    lost = attach(b"two")
    local.delete(lost.storage_key)
    result = CliRunner().invoke(cli_app, ["storage", "migrate", "--to", "s3"])
    assert result.exit_code == 1, result.output
    assert "1 copied, 0 skipped, 1 missing, 0 mismatched" in result.output
    assert f"attachment {lost.id}" in result.output

    local.delete(lost.storage_key)
    with SessionLocal() as session:  # the lost row deleted: nothing left to move
        session.delete(session.get(models.Attachment, lost.id))
        session.commit()
    result = CliRunner().invoke(cli_app, ["storage", "migrate", "--to", "s3"])
    assert result.exit_code == 0, result.output
    assert "0 copied, 1 skipped, 0 missing, 0 mismatched" in result.output


def test_storage_migrate_command_stops_on_a_backend_it_cannot_reach(
    attach: Attach, s3: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    attach(b"in the bucket", backend="s3")
    monkeypatch.setattr(settings, "S3_BUCKET", "")
    result = CliRunner().invoke(cli_app, ["storage", "migrate", "--to", "local"])
    assert result.exit_code == 1
    assert "error: an attachment is stored in S3 but S3_BUCKET is not set" in result.output


# --- sweep ----------------------------------------------------------------------------------------


def orphan(storage: Storage, data: bytes = b"orphan") -> str:
    """An object no row names, as a crash between the object's write and the row's commit leaves."""
    writer = storage.create()
    writer.write(data)
    writer.commit()
    return writer.key


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_sweep_removes_old_orphans_and_keeps_young_ones_and_named_ones(
    backend: str, attach: Attach, s3: Storage
) -> None:
    storage = get_storage(backend)
    named_old = attach(b"named", backend=backend)
    old_orphan = orphan(storage)
    time.sleep(1.05)  # S3 lists times to the second: the young ones are a second younger
    young_orphan = orphan(storage)
    named_young = attach(b"named too", backend=backend)
    written = {info.key: info.last_modified for info in storage.iter_objects()}
    # The threshold between the old objects and the young ones.
    now = written[old_orphan] + timedelta(seconds=0.5) + timedelta(hours=1)

    with SessionLocal() as session:
        report = maintenance.sweep(session, backend=backend, older_than=timedelta(hours=1), now=now)
    assert (report.objects, report.removed, report.young, report.missing) == (4, 1, 1, [])
    assert keys(storage) == {named_old.storage_key, young_orphan, named_young.storage_key}


def test_a_dry_run_sweep_removes_nothing(attach: Attach, s3: Storage) -> None:
    key = orphan(s3)
    with SessionLocal() as session:
        report = maintenance.sweep(session, backend="s3", older_than=timedelta(0), dry_run=True)
    assert report.removed == 1
    assert keys(s3) == {key}


def test_sweep_reports_rows_whose_object_is_missing(attach: Attach, s3: Storage) -> None:
    lost, kept = attach(b"lost", backend="s3"), attach(b"kept", backend="s3")
    s3.delete(lost.storage_key)
    with SessionLocal() as session:
        report = maintenance.sweep(session, backend="s3", older_than=timedelta(hours=1))
    assert (report.objects, report.removed, report.missing) == (1, 0, [lost.id])
    assert keys(s3) == {kept.storage_key}


def test_sweep_removes_uploads_left_unfinished_long_ago(s3: Storage, local: Storage) -> None:
    """What a process killed mid-upload leaves: a partial file, a multipart upload never completed."""
    assert isinstance(s3, S3Storage) and isinstance(local, LocalStorage)
    for storage in (s3, local):
        writer = storage.create()
        writer.write(b"x" * (PART_BYTES + 1))  # past one part: S3 has begun a multipart upload
    assert len(in_progress_uploads(s3.client, s3.bucket)) == 1
    assert len(list(local.partial_dir.iterdir())) == 1

    with SessionLocal() as session:
        # At its start the upload is in flight: spared. (Only on the disk: moto dates every
        # multipart upload 2010-11-10, where S3 gives the time it began.)
        report = maintenance.sweep(session, backend="local", older_than=timedelta(hours=1))
        assert report.unfinished == 0
        later = datetime.now(UTC) + timedelta(hours=2)
        for name in ("s3", "local"):
            report = maintenance.sweep(session, backend=name, older_than=timedelta(hours=1), now=later)
            assert report.unfinished == 1
    assert in_progress_uploads(s3.client, s3.bucket) == []
    assert list(local.partial_dir.iterdir()) == []


def test_storage_sweep_command_sweeps_every_backend_rows_name_and_fails_on_missing_objects(
    attach: Attach, local: Storage, s3: Storage
) -> None:
    attach(b"still local")
    lost = attach(b"lost", backend="s3")
    s3.delete(lost.storage_key)
    orphan(s3)
    orphan(local)

    result = CliRunner().invoke(cli_app, ["storage", "sweep", "--older-than", "0s", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "local: 2 objects, 1 unnamed would be removed" in result.output
    assert "s3: 1 objects, 1 unnamed would be removed" in result.output
    assert f"attachment {lost.id}" in result.output
    assert len(keys(s3)) == 1 and len(keys(local)) == 2

    result = CliRunner().invoke(cli_app, ["storage", "sweep", "--older-than", "0s"])
    assert "s3: 1 objects, 1 unnamed removed" in result.output
    assert keys(s3) == set() and len(keys(local)) == 1


def test_storage_sweep_command_refuses_a_bad_duration() -> None:
    result = CliRunner().invoke(cli_app, ["storage", "sweep", "--older-than", "soon"])
    assert result.exit_code == 2
    assert "--older-than" in result.output
