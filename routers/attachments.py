"""Attachments: upload to a post or a comment, download, delete (DESIGN.md §3)."""

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
from schemas import AttachmentPublic
from services import attachments as attachments_service

router = APIRouter(tags=["attachments"])

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
                            "MAX_UPLOAD_MB each (judged by content, not by name or header).",
                        }
                    },
                }
            }
        },
    }
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "A file is larger than MAX_UPLOAD_MB."},
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"description": "A file's content is not an allowed type."},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "No file, an empty file, too many files, or an unsafe ('..') name."
    },
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
    responses=UPLOAD_ERRORS,
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
    responses=UPLOAD_ERRORS,
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
        status.HTTP_200_OK: {"content": {"application/octet-stream": {}}, "description": "The bytes."}
    },
)
def download_attachment(attachment: ReadableAttachment) -> StreamingResponse:
    download = attachments_service.open_download(attachment)
    return StreamingResponse(download.chunks, media_type=download.media_type, headers=download.headers)


@router.delete(
    "/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an attachment (uploader or administrator); the file goes too",
)
def delete_attachment(attachment: DeletableAttachment, session: SessionDep) -> None:
    attachments_service.delete(session, attachment=attachment)
