"""Attachments: upload to a post or a comment, download, delete (docs/api.md, "Attachments")."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, status
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from deps import (
    CurrentUser,
    DeletableAttachment,
    IncomingFiles,
    ReadableAttachment,
    SessionDep,
    WritableComment,
    WritablePost,
)
from models import Attachment
from routers.responses import (
    AUTHENTICATED,
    DELETABLE_ATTACHMENT,
    READABLE_ATTACHMENT,
    WRITABLE_COMMENT,
    WRITABLE_POST,
    Responses,
    error_response,
    errors,
    refusal,
)
from schemas import AttachmentPublic
from services import attachments as attachments_service
from services.attachments import GIF, JPEG, PDF, PNG, TEXT, WEBP, ZIP

router = APIRouter(tags=["attachments"], responses=AUTHENTICATED)

# The body is parsed by deps.incoming_files (streamed to storage, not spooled by the form
# parser), so the multipart schema is declared here for /docs.
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [attachments_service.FIELD_NAME],
                    "properties": {
                        attachments_service.FIELD_NAME: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": attachments_service.MAX_FILES_PER_REQUEST,
                            "description": "PNG, JPEG, GIF, WebP, PDF, ZIP or UTF-8 text; "
                            "MAX_UPLOAD_MB each (judged by content, not by name or header; a "
                            "name that does not fit the content gets its type's extension).",
                        }
                    },
                },
                # A file part's value is its bytes; two small text files here.
                "example": {attachments_service.FIELD_NAME: ["마당 회의록\n", "notes\n"]},
            }
        },
    }
}
UPLOAD_NOTES = {
    400: refusal(
        "The multipart body is malformed (no boundary, a part without a name, cut short).", "bad_multipart"
    ),
    413: refusal(
        "A file is larger than MAX_UPLOAD_MB (file_too_large), or the files would take the "
        "uploader's stored attachments past UPLOAD_QUOTA_MB (quota_exceeded), or the whole body is "
        "larger than all files at their limit (payload_too_large).",
        "file_too_large",
        "quota_exceeded",
        "payload_too_large",
    ),
    415: refusal(
        "The body is not multipart/form-data, a file's content is not an allowed type, or a "
        "file's name claims another allowed type than its content (extension_mismatch).",
        "not_multipart",
        "unsupported_file_type",
        "extension_mismatch",
    ),
    422: refusal(
        "No file, an empty file, too many files, another field than 'files', or an unsafe ('..') name.",
        "no_files",
        "empty_file",
        "too_many_files",
        "unexpected_field",
        "unsafe_filename",
    ),
    429: refusal(
        "The uploader sent more than UPLOAD_LIMIT_PER_HOUR files in the hour (a refused upload's "
        "files count too).",
        rate_limited="at most 60 files may be uploaded an hour; try again in 1800 s",
    ),
}
# Served as stored, with the type its content was judged to be at upload.
DOWNLOAD_TYPES = tuple(kind.content_type.split(";")[0] for kind in (PNG, JPEG, GIF, WEBP, PDF, ZIP, TEXT))
DOWNLOAD_HEADERS = {
    "Content-Disposition": {"description": "attachment; filename*=UTF-8''...", "schema": {"type": "string"}},
    "X-Content-Type-Options": {"description": "nosniff", "schema": {"type": "string"}},
    "Accept-Ranges": {"description": "bytes: a Range request is answered", "schema": {"type": "string"}},
    "ETag": {"description": "The file's sha256, quoted (for If-Range).", "schema": {"type": "string"}},
}
DOWNLOAD_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in DOWNLOAD_TYPES
}
_CONTENT_RANGE = {"description": "bytes first-last/size", "schema": {"type": "string"}}
RANGE_REFUSED = {
    **error_response(
        416,
        refusal(
            "The Range asked for lies wholly outside the file; Content-Range gives its size (bytes */size).",
            range_not_satisfiable="the range asked for lies outside the file's 2048 bytes",
        ),
    ),
    "headers": {"Content-Range": {"description": "bytes */size", "schema": {"type": "string"}}},
}
# The object storage failed (services.attachments.storage_answers). 503 is not among the
# generic statuses of routers.responses, so its entry is written out here.
STORAGE_UNAVAILABLE: Responses = {
    status.HTTP_503_SERVICE_UNAVAILABLE: error_response(
        503,
        refusal(
            "The file storage failed (unreachable, timed out, or answered an error of its own); an "
            "upload keeps nothing of the request. Try again later.",
            storage_unavailable="the file storage is unavailable; try again later",
        ),
    )
}
RangeHeader = Annotated[
    str | None,
    Header(
        alias="Range",
        description="One byte range (bytes=0-1023, bytes=1024-, bytes=-512): answered 206. Several "
        "ranges, or a header that cannot be read, are ignored: the whole file, 200.",
    ),
]
IfRangeHeader = Annotated[
    str | None,
    Header(alias="If-Range", description="The ETag of a download: Range is honoured only while it matches."),
]
# Large enough for every file at its limit; the route-level limit replaces the app's small
# JSON limit. Each file's own limit is enforced while it streams in.
UPLOAD_BODY_LIMIT = attachments_service.max_request_bytes()


@router.post(
    "/posts/{post_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=list[AttachmentPublic],
    summary="Attach files to a post (author or administrator)",
    max_body_size=UPLOAD_BODY_LIMIT,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        **errors(400, 403, 404, 413, 415, 422, 429, notes={**UPLOAD_NOTES, **WRITABLE_POST}),
        **STORAGE_UNAVAILABLE,
    },
)
def attach_to_post(
    post: WritablePost, user: CurrentUser, upload: IncomingFiles, session: SessionDep
) -> list[Attachment]:
    return attachments_service.attach(session, owner=post, uploader=user, upload=upload)


@router.post(
    "/comments/{comment_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=list[AttachmentPublic],
    summary="Attach files to a comment (author or administrator)",
    max_body_size=UPLOAD_BODY_LIMIT,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        **errors(400, 403, 404, 413, 415, 422, 429, notes={**UPLOAD_NOTES, **WRITABLE_COMMENT}),
        **STORAGE_UNAVAILABLE,
    },
)
def attach_to_comment(
    comment: WritableComment, user: CurrentUser, upload: IncomingFiles, session: SessionDep
) -> list[Attachment]:
    return attachments_service.attach(session, owner=comment, uploader=user, upload=upload)


@router.get(
    "/attachments/{attachment_id}",
    response_class=StreamingResponse,
    summary="Download an attachment (whoever may read its post)",
    responses={
        status.HTTP_200_OK: {
            "description": "The file's bytes, with the media type found at upload.",
            "content": DOWNLOAD_CONTENT,
            "headers": DOWNLOAD_HEADERS,
        },
        status.HTTP_206_PARTIAL_CONTENT: {
            "description": "The byte range asked for (Range).",
            "content": DOWNLOAD_CONTENT,
            "headers": {**DOWNLOAD_HEADERS, "Content-Range": _CONTENT_RANGE},
        },
        status.HTTP_302_FOUND: {
            "description": "With S3_PRESIGNED_DOWNLOADS, for a file in S3: a URL of the bucket that "
            "serves it for 60 seconds, under the same name and type (asked for once access is checked).",
            "headers": {"Location": {"description": "The presigned URL.", "schema": {"type": "string"}}},
        },
        **errors(403, 404, 422, notes=READABLE_ATTACHMENT),
        status.HTTP_416_RANGE_NOT_SATISFIABLE: RANGE_REFUSED,
        **STORAGE_UNAVAILABLE,
    },
)
def download_attachment(
    attachment: ReadableAttachment, byte_range: RangeHeader = None, if_range: IfRangeHeader = None
) -> Response:
    download = attachments_service.open_download(attachment, range_header=byte_range, if_range=if_range)
    if isinstance(download, attachments_service.Redirect):
        return RedirectResponse(download.url, status_code=status.HTTP_302_FOUND, headers=download.headers)
    return StreamingResponse(
        download.chunks, status_code=download.status, media_type=download.media_type, headers=download.headers
    )


@router.delete(
    "/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an attachment (uploader or administrator); the file goes too",
    responses=errors(403, 404, 422, notes=DELETABLE_ATTACHMENT),
)
def delete_attachment(attachment: DeletableAttachment, session: SessionDep) -> None:
    attachments_service.delete(session, attachment=attachment)
