"""Attachments: upload to a post or a comment, download, delete (docs/api.md, "Attachments")."""

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import StreamingResponse

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
}
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
    responses=errors(400, 403, 404, 413, 415, 422, 429, notes={**UPLOAD_NOTES, **WRITABLE_POST}),
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
    responses=errors(400, 403, 404, 413, 415, 422, 429, notes={**UPLOAD_NOTES, **WRITABLE_COMMENT}),
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
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in DOWNLOAD_TYPES
            },
            "headers": DOWNLOAD_HEADERS,
        },
        **errors(403, 404, 422, notes=READABLE_ATTACHMENT),
    },
)
def download_attachment(attachment: ReadableAttachment) -> StreamingResponse:
    download = attachments_service.open_download(attachment)
    return StreamingResponse(download.chunks, media_type=download.media_type, headers=download.headers)


@router.delete(
    "/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an attachment (uploader or administrator); the file goes too",
    responses=errors(403, 404, 422, notes=DELETABLE_ATTACHMENT),
)
def delete_attachment(attachment: DeletableAttachment, session: SessionDep) -> None:
    attachments_service.delete(session, attachment=attachment)
