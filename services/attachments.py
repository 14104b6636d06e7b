"""Attachments on posts and comments: receiving uploads, serving downloads, deleting.

An upload is received as a stream. `Upload` is fed the multipart request body chunk by
chunk; each file part goes straight to storage under a fresh random key while its size,
sha256 and type are worked out from the bytes themselves. A file over MAX_UPLOAD_MB, a type
outside the allow-list, an empty file or a malformed request stops the upload at that
point, and every file of the request is discarded: an upload is all or nothing. So does a
name that claims another allowed binary type than the content's; any other name that does not
fit the content gets the type's extension appended (xss.html -> xss.html.txt).

The received files are then recorded within the uploader's hourly rate (counted in files, in
the shared rate limiter) and storage quota (summed from the database, under a lock on the
uploader's row, so parallel uploads on any number of API processes cannot pass it together).

Files go to the configured backend (STORAGE_BACKEND: the local disk or an S3 bucket,
services/storage.py) and each row records which one; downloads and deletions open the backend
the row names. A download answers a byte range when asked (Range, RFC 9110), or, with
S3_PRESIGNED_DOWNLOADS, redirects to a short-lived URL of the bucket once access is checked.
When the storage fails (a bucket unreachable, timing out, answering 5xx, gone), an upload or a
download answers 503 storage_unavailable, and an upload leaves no row and discards what it wrote;
a deletion still removes the row (the object is left for `cli.py storage sweep`).
"""

import codecs
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session

from config import settings
from crud import attachments as attachments_crud
from database import write_turns
from errors import (
    BadRequest,
    DomainError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from models import Attachment, Comment, Post, User
from services import rate_limit
from services.storage import (
    ByteRange,
    ObjectMissing,
    ObjectWriter,
    RangeNotSatisfiable,
    S3Storage,
    Storage,
    StorageUnavailable,
    get_storage,
)

log = logging.getLogger("madang.attachments")

MIB = 1024 * 1024
FIELD_NAME = "files"
MAX_FILES_PER_REQUEST = 10
MAX_FILENAME_CHARS = 255  # Attachment.original_name
FALLBACK_STEM = "attachment"
# Room for the multipart framing around the largest request we accept.
MULTIPART_OVERHEAD_BYTES = MIB


@contextmanager
def storage_answers() -> Iterator[None]:
    """A storage that fails (StorageUnavailable: the bucket unreachable, timing out, answering
    5xx, refusing us, gone) as a 503 the client may retry later. The cause goes to the log, not
    to the client: it names the endpoint and the bucket."""
    try:
        yield
    except StorageUnavailable as exc:
        log.warning("storage unavailable: %s", exc)
        raise ServiceUnavailable(
            "the file storage is unavailable; try again later", code="storage_unavailable"
        ) from exc


def max_request_bytes() -> int:
    """The largest upload request worth reading: every file at its limit, plus framing."""
    return MAX_FILES_PER_REQUEST * settings.MAX_UPLOAD_MB * MIB + MULTIPART_OVERHEAD_BYTES


# --- what a file is, from its first bytes ----------------------------------------------------


@dataclass(frozen=True)
class FileType:
    label: str
    content_type: str
    # Given to a name whose own extension does not fit the content.
    extension: str
    # Other extensions that fit it: the file opens as what it is under them.
    also: tuple[str, ...] = ()

    def fits(self, extension: str) -> bool:
        return extension == self.extension or extension in self.also


PNG = FileType("PNG", "image/png", ".png")
JPEG = FileType("JPEG", "image/jpeg", ".jpg", (".jpeg",))
GIF = FileType("GIF", "image/gif", ".gif")
WEBP = FileType("WebP", "image/webp", ".webp")
PDF = FileType("PDF", "application/pdf", ".pdf")
# Office documents are ZIP archives inside; these open in applications that run nothing from
# them. Others (.jar, .apk, macro-enabled .docm, .hwpx which may hold scripts) get .zip appended.
ZIP = FileType("ZIP", "application/zip", ".zip", (".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp"))
# Text opens as plain text under these; under any other (.html, .svg, .js, .exe, ...) it would
# open as a page, a script or a program once saved, so it gets .txt appended.
TEXT = FileType(
    "UTF-8 text",
    "text/plain; charset=utf-8",
    ".txt",
    (".text", ".md", ".markdown", ".csv", ".tsv", ".log", ".json", ".yaml", ".yml"),
)
# An extension that claims one of the allowed binary types: a file named so must be of it.
_CLAIMED = {".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".gif": GIF, ".webp": WEBP, ".pdf": PDF, ".zip": ZIP}
_BY_CONTENT_TYPE = {kind.content_type: kind for kind in (PNG, JPEG, GIF, WEBP, PDF, ZIP, TEXT)}

_SIGNATURES: tuple[tuple[Callable[[bytes], bool], FileType], ...] = (
    (lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"), PNG),
    (lambda head: head.startswith(b"\xff\xd8\xff"), JPEG),
    (lambda head: head.startswith((b"GIF87a", b"GIF89a")), GIF),
    (lambda head: head.startswith(b"RIFF") and head[8:12] == b"WEBP", WEBP),
    (lambda head: head.startswith(b"%PDF-"), PDF),
    # A local file header, or the end record of an empty archive.
    (lambda head: head.startswith((b"PK\x03\x04", b"PK\x05\x06")), ZIP),
)
SNIFF_BYTES = 16  # longer than every signature above


def binary_type(head: bytes) -> FileType | None:
    """The allowed binary type whose magic bytes open the file, if any."""
    return next((kind for matches, kind in _SIGNATURES if matches(head)), None)


class _TextCheck(Enum):
    PENDING = "pending"
    FAILED = "failed"


# --- names -------------------------------------------------------------------------------------

_PATH_SEPARATORS = re.compile(r"[/\\]")


def display_name(raw: str) -> str:
    """The name a user sent, made safe to show and to offer back on download: Unicode NFC
    (macOS sends Korean decomposed), control and format characters removed (no NUL, no
    right-to-left override), only the last path component kept, length capped with the
    extension preserved. A name that climbs directories (`..`) is refused. May be empty."""
    # Browsers (WHATWG multipart) send '"' as %22 and CR/LF as %0D/%0A; the latter go with
    # the other control characters.
    text = unicodedata.normalize("NFC", raw.replace("%22", '"'))
    text = "".join(char for char in text if not unicodedata.category(char).startswith("C"))
    components = _PATH_SEPARATORS.split(text)
    if any(component.strip() == ".." for component in components):
        raise Unprocessable(f"unsafe file name {raw[:100]!r}: '..' is not allowed", code="unsafe_filename")
    name = components[-1].strip().lstrip(".").rstrip(". ")
    if len(name) <= MAX_FILENAME_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= 16:
        return f"{stem[: MAX_FILENAME_CHARS - len(extension) - 1].rstrip()}.{extension}"
    return name[:MAX_FILENAME_CHARS]


def extension_of(name: str) -> str:
    """The last extension of a name, lower-case with its dot ('.png'); '' when it has none."""
    stem, dot, extension = name.rpartition(".")
    return f".{extension.lower()}" if dot and stem.strip() else ""


def fitting_name(name: str, kind: FileType) -> str:
    """The name, with the type's extension appended when its own does not fit the content
    (xss.html -> xss.html.txt, README -> README.txt): saved, the file opens as what it is.
    Still at most MAX_FILENAME_CHARS."""
    if kind.fits(extension_of(name)):
        return name
    return f"{name[: MAX_FILENAME_CHARS - len(kind.extension)].rstrip()}{kind.extension}"


def served_name(attachment: Attachment) -> str:
    """The name a download is offered under; rows stored before names were fitted to their
    content get the same treatment here."""
    kind = _BY_CONTENT_TYPE.get(attachment.content_type)
    return attachment.original_name if kind is None else fitting_name(attachment.original_name, kind)


def ascii_filename(name: str) -> str:
    """A plain ASCII stand-in for clients that ignore `filename*`: accents dropped, other
    non-ASCII runs and quoting characters turned into '_'; 'attachment.<ext>' when nothing
    readable is left (an all-Korean name)."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(
        char if " " <= char <= "~" and char not in '"\\%' else "_"
        for char in decomposed
        if not unicodedata.combining(char)
    )
    text = re.sub(r"_+", "_", kept).strip()
    stem, dot, extension = text.rpartition(".")
    if not any(char.isalnum() for char in (stem if dot else text)):
        suffix = f".{extension}" if dot and extension.strip("_") else ""
        return f"{FALLBACK_STEM}{suffix}"
    return text


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename` and the exact name as RFC 5987 `filename*`."""
    return f"attachment; filename=\"{ascii_filename(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- receiving -----------------------------------------------------------------------------


class IncomingFile:
    """One file part being received: written to storage as it arrives, measured, hashed and
    typed on the way."""

    def __init__(self, *, writer: ObjectWriter, name: str, max_bytes: int) -> None:
        self.writer = writer
        self.name = name
        self.size = 0
        self.kind: FileType | None = None
        self._max_bytes = max_bytes
        self._sha256 = hashlib.sha256()
        self._head = b""
        self._text: _TextCheck = _TextCheck.PENDING
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def content_type(self) -> str:
        assert self.kind is not None, "type asked before the file ended"
        return self.kind.content_type

    def write(self, data: bytes) -> None:
        if self.size + len(data) > self._max_bytes:
            raise PayloadTooLarge(
                f"{self.name or 'a file'} is larger than {settings.MAX_UPLOAD_MB} MB", code="file_too_large"
            )
        self.size += len(data)
        self._sha256.update(data)
        self.writer.write(data)
        if self.kind is None:
            self._inspect(data)

    def finish(self) -> None:
        if self.size == 0:
            raise Unprocessable(f"{self.name or 'a file'} is empty", code="empty_file")
        if self.kind is None:
            self.kind = binary_type(self._head)
        if self.kind is None:
            self._check_text(b"", final=True)
            if self._text is _TextCheck.FAILED:
                raise self._unsupported()
            self.kind = TEXT
        self._check_name(self.kind)
        self.name = fitting_name(self.name or FALLBACK_STEM, self.kind)

    def _check_name(self, kind: FileType) -> None:
        """A name claiming another allowed binary type than the content's is refused: the user
        picked the wrong file, or the file pretends (text as x.png, a PNG as x.jpg)."""
        claimed = _CLAIMED.get(extension_of(self.name))
        if claimed is not None and claimed is not kind:
            raise UnsupportedMediaType(
                f"{self.name} is named as a {claimed.label} file but its content is {kind.label}; "
                "send it under a name that fits its content",
                code="extension_mismatch",
            )

    def _inspect(self, data: bytes) -> None:
        if len(self._head) < SNIFF_BYTES:
            self._head += data[: SNIFF_BYTES - len(self._head)]
            if len(self._head) == SNIFF_BYTES:
                self.kind = binary_type(self._head)
                if self.kind is not None:
                    self._check_name(self.kind)  # stop a mismatched file at its first bytes
                    return
        # No signature (yet): only UTF-8 text without NUL remains allowed.
        self._check_text(data, final=False)
        if self._text is _TextCheck.FAILED and len(self._head) == SNIFF_BYTES:
            raise self._unsupported()

    def _check_text(self, data: bytes, *, final: bool) -> None:
        if self._text is _TextCheck.FAILED:
            return
        try:
            self._utf8.decode(data, final=final)
        except UnicodeDecodeError:
            self._text = _TextCheck.FAILED
            return
        if b"\x00" in data:
            self._text = _TextCheck.FAILED

    def _unsupported(self) -> UnsupportedMediaType:
        return UnsupportedMediaType(
            f"{self.name or 'a file'} is not an allowed type "
            "(PNG, JPEG, GIF, WebP, PDF, ZIP or UTF-8 text); the type is judged by the content",
            code="unsupported_file_type",
        )


class _State(Enum):
    RECEIVING = "receiving"
    RECEIVED = "received"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Upload:
    """The files of one multipart request, received as the body streams in.

    Not thread-safe: feed it from one thread at a time. `close()` discards whatever was not
    committed, so a failure anywhere (here, in the database, in the client) leaves no file.
    """

    def __init__(self, content_type_header: str, *, storage: Storage | None = None) -> None:
        media_type, options = parse_options_header(content_type_header)
        if media_type != b"multipart/form-data":
            raise UnsupportedMediaType(
                f"send the files as multipart/form-data in the field '{FIELD_NAME}'", code="not_multipart"
            )
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("the multipart body has no boundary", code="bad_multipart")
        self.files: list[IncomingFile] = []
        with storage_answers():
            self._storage = storage or get_storage()
        self.storage_backend: str = self._storage.name  # recorded on each row
        self._max_bytes = settings.MAX_UPLOAD_MB * MIB
        self._state = _State.RECEIVING
        self._current: IncomingFile | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._ended = False
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as exc:
            raise BadRequest("the multipart boundary is invalid", code="bad_multipart") from exc

    def feed(self, chunk: bytes) -> None:
        assert self._state is _State.RECEIVING, "feed after the body ended"
        try:
            with storage_answers():  # each file part is written to storage as it arrives
                self._parser.write(chunk)
        except FormParserError as exc:
            raise BadRequest("the multipart body is malformed", code="bad_multipart") from exc

    def finish(self) -> None:
        """The body has ended: it must have been complete and held at least one file."""
        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise BadRequest("the multipart body is malformed", code="bad_multipart") from exc
        if not self._ended or self._current is not None:
            raise BadRequest("the multipart body ended early", code="bad_multipart")
        if not self.files:
            raise Unprocessable(f"send one or more files in the field '{FIELD_NAME}'", code="no_files")
        self._state = _State.RECEIVED

    def commit(self) -> None:
        """Make every file readable in storage (before the database rows are committed)."""
        assert self._state is _State.RECEIVED, "commit before the body was received"
        with storage_answers():
            for file in self.files:
                file.writer.commit()
        self._state = _State.COMMITTED

    def abort(self) -> None:
        """Discard every file of this upload, committed or not."""
        self._state = _State.ABORTED
        for file in self.files:
            try:
                file.writer.abort()
            except Exception:
                # A disk or bucket error; the next object may still go. A leftover object has no
                # row, so nothing serves it (`cli.py storage sweep` finds it).
                log.exception("could not discard upload object %s", file.writer.key)

    def close(self) -> None:
        # Aborted already (attach's own cleanup): each object is discarded once, so a bucket that
        # is down is not waited for twice.
        if self._state not in (_State.COMMITTED, _State.ABORTED):
            self.abort()

    # python-multipart callbacks: they run inside feed(), so their errors end the upload.

    def _on_part_begin(self) -> None:
        self._disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._disposition)
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequest(
                "a multipart part lacks 'Content-Disposition: form-data; name=...'", code="bad_multipart"
            )
        field = options[b"name"].decode("utf-8", errors="replace")
        if field != FIELD_NAME:
            raise Unprocessable(
                f"unexpected form field {field[:64]!r}: send files in the field '{FIELD_NAME}'",
                code="unexpected_field",
            )
        if len(self.files) == MAX_FILES_PER_REQUEST:
            raise Unprocessable(
                f"at most {MAX_FILES_PER_REQUEST} files may be sent at once", code="too_many_files"
            )
        # The name is only ever shown and offered back on download; it never names a file on disk.
        name = display_name(options.get(b"filename", b"").decode("utf-8", errors="replace"))
        self._current = IncomingFile(writer=self._storage.create(), name=name, max_bytes=self._max_bytes)
        self.files.append(self._current)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._current is not None
        self._current.write(data[start:end])

    def _on_part_end(self) -> None:
        assert self._current is not None
        self._current.finish()
        self._current = None

    def _on_end(self) -> None:
        self._ended = True


# --- the operations ------------------------------------------------------------------------


UPLOAD_RATE_WINDOW_SECONDS = 3600


def attach(session: Session, *, owner: Post | Comment, uploader: User, upload: Upload) -> list[Attachment]:
    """Records the received files as attachments of a post or a comment, all or none, within
    the uploader's hourly rate (UPLOAD_LIMIT_PER_HOUR files) and storage quota (UPLOAD_QUOTA_MB
    of stored attachments). A refusal discards the files (deps.incoming_files closes the upload)."""
    uploader_id = uploader.id
    limit = settings.UPLOAD_LIMIT_PER_HOUR
    rate_limit.enforce_per_user(
        "upload",
        user_id=uploader_id,
        limit=limit,
        window_seconds=UPLOAD_RATE_WINDOW_SECONDS,
        cost=len(upload.files),
        detail=f"at most {limit} files may be uploaded an hour",
    )
    is_post = isinstance(owner, Post)
    attachments = [
        Attachment(
            post_id=owner.id if is_post else None,
            comment_id=None if is_post else owner.id,
            uploader_id=uploader_id,
            original_name=file.name,
            storage_key=file.writer.key,
            content_type=file.content_type,
            size=file.size,
            sha256=file.sha256,
            storage_backend=upload.storage_backend,
        )
        for file in upload.files
    ]
    try:
        # Files made durable and readable first, outside the locks below: without rows nothing
        # serves them, and a refusal removes them again.
        upload.commit()
        with write_turns.turn():
            # One user's uploads take turns from here to the commit, on every API process: the
            # user's row is locked (MariaDB; on SQLite the first write takes the write lock),
            # the rows go in and the sum that includes them is checked. The owner's row is
            # locked before the rows' foreign-key checks reach it (see mark_file_attached).
            attachments_crud.lock_uploader(session, uploader_id)
            attachments_crud.mark_file_attached(session, attachments[0])
            attachments_crud.add_many(session, attachments)
            _check_quota(session, uploader_id=uploader_id, adding=sum(file.size for file in upload.files))
            session.commit()
    except BaseException:
        session.rollback()
        upload.abort()
        raise
    return attachments


def _check_quota(session: Session, *, uploader_id: int, adding: int) -> None:
    """Refuses (413) when the user's stored attachments, those being added included, pass
    UPLOAD_QUOTA_MB. Every row counts, on hidden (deleted) posts too: their files are still on
    disk. Deleting an attachment frees its bytes."""
    quota_mb = settings.UPLOAD_QUOTA_MB
    stored = attachments_crud.stored_bytes(session, uploader_id)
    if stored > quota_mb * MIB:
        raise PayloadTooLarge(
            f"these files ({_megabytes(adding)}) would take your attachments past your quota of "
            f"{quota_mb} MB ({_megabytes(stored - adding)} used); delete some attachments first",
            code="quota_exceeded",
        )


def _megabytes(size: int) -> str:
    return f"{size / MIB:.1f} MB"


class RangeRefused(DomainError):
    """416: the byte range asked for lies outside the file; Content-Range names its size."""

    status = 416
    code = "range_not_satisfiable"

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}", "Accept-Ranges": "bytes"}


# One range: `first-last`, `first-` or `-suffix`. Nineteen digits at most, so a number always
# fits the 64-bit integers of the services behind us.
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})", re.IGNORECASE)


def requested_range(range_header: str | None, if_range: str | None, etag: str) -> ByteRange | None:
    """The one byte range a Range header asks for, or None: answer the whole file. RFC 9110
    lets a server ignore Range (section 14.2), which this does for a header it cannot read
    (another unit, a range ending before it starts), for several ranges (answering them would
    take a multipart/byteranges body; clients ask for one) and when If-Range names another
    version than this one (here only an ETag can match: a date cannot, the file's time is not
    given out)."""
    if not range_header:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _RANGE.fullmatch(range_header.strip())
    if match is None:
        return None
    first, last = (int(group) if group else None for group in match.groups())
    if first is None and last is None:
        return None
    if first is not None and last is not None and last < first:
        return None
    return ByteRange(first, last)


@dataclass
class Download:
    chunks: Iterator[bytes]
    media_type: str
    headers: dict[str, str]
    status: int = 200


@dataclass
class Redirect:
    """A presigned URL of the bucket, to answer 302 with (S3_PRESIGNED_DOWNLOADS)."""

    url: str
    headers: dict[str, str]


def etag(attachment: Attachment) -> str:
    # A file never changes under its row, so its sha256 is a strong validator.
    return f'"{attachment.sha256}"'


def open_download(
    attachment: Attachment, *, range_header: str | None = None, if_range: str | None = None
) -> Download | Redirect:
    """The attachment's bytes (a byte range of them, for a Range request) from the backend
    its row names, or, for a row in S3 with S3_PRESIGNED_DOWNLOADS, a presigned URL to them
    that gives the browser the same name and type. Called once access was checked."""
    with storage_answers():
        storage = get_storage(attachment.storage_backend)
    disposition = content_disposition(served_name(attachment))
    if settings.S3_PRESIGNED_DOWNLOADS and isinstance(storage, S3Storage):
        with storage_answers():
            url = storage.presigned_url(
                attachment.storage_key, content_type=attachment.content_type, content_disposition=disposition
            )
        # The URL is a credential for a minute: no cache may keep the answer that carries it.
        return Redirect(url=url, headers={"Cache-Control": "no-store"})
    tag = etag(attachment)
    byte_range = requested_range(range_header, if_range, tag)
    try:
        with storage_answers():
            stored = storage.open(attachment.storage_key, byte_range)
    except ObjectMissing as exc:
        log.error("attachment %s: object %s is missing from storage", attachment.id, attachment.storage_key)
        raise NotFound("attachment") from exc
    except RangeNotSatisfiable as exc:
        raise RangeRefused(
            f"the range asked for lies outside the file's {exc.size} bytes", size=exc.size
        ) from exc
    headers = {
        "Content-Disposition": disposition,
        "Content-Length": str(stored.length),
        "Accept-Ranges": "bytes",
        "ETag": tag,
        # Served as stored: never sniffed, never rendered inline, never cached by a shared cache.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
    }
    # A range asked for and honoured is answered 206, even one that spans the whole file.
    partial = byte_range is not None
    if partial:
        headers["Content-Range"] = f"bytes {stored.start}-{stored.end}/{stored.size}"
    return Download(
        chunks=stored.chunks,
        media_type=attachment.content_type,
        headers=headers,
        status=206 if partial else 200,
    )


def delete(session: Session, *, attachment: Attachment) -> None:
    """Removes the row (the owner's flag follows in the same transaction), then the file from
    the backend the row names."""
    attachments_crud.remove(session, attachment.id)
    attachments_crud.refresh_file_flag(session, attachment)
    session.commit()
    try:
        get_storage(attachment.storage_backend).delete(attachment.storage_key)
    except Exception:
        # The row is gone, so nothing serves the file any more; it only wastes space until
        # `cli.py storage sweep` removes it (a disk or bucket error here, StorageUnavailable
        # included, is logged, not answered: the deletion the user asked for happened).
        log.exception("attachment %s: could not remove object %s", attachment.id, attachment.storage_key)
