"""The Gemini Files API on the wire: the resumable upload protocol, ``File`` resources,
``files.list`` pages and the Files API's errors.

The upload is Google's resumable protocol as the google-genai SDK speaks it:

1. ``POST /upload/{version}/files`` with ``X-Goog-Upload-Protocol: resumable``,
   ``X-Goog-Upload-Command: start``, ``X-Goog-Upload-Header-Content-Length`` and
   ``-Content-Type`` and a JSON body ``{"file": {"mimeType", "sizeBytes", "displayName"?,
   "name"?}}``; the answer carries ``X-Goog-Upload-URL`` and ``X-Goog-Upload-Status:
   active``.
2. ``POST`` to that URL, once per chunk, with ``X-Goog-Upload-Command: upload`` (the last:
   ``upload, finalize``) and ``X-Goog-Upload-Offset``; each answer carries
   ``X-Goog-Upload-Status`` (``active``, then ``final`` with ``{"file": File}``). The
   SDK retries a chunk whose answer has no such header, so error answers carry
   ``final`` too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import ErrorReply, error_body
from .inputs import field

__all__ = [
    "FILE_URI_RE",
    "UPLOAD_STATUS",
    "UPLOAD_URL",
    "FileMeta",
    "UploadChunk",
    "UploadStart",
    "file_not_accessible",
    "file_resource",
    "file_uri_id",
    "invalid_file_uri",
    "list_files_response",
    "rfc3339",
    "sha256_field",
]

UPLOAD_URL = "x-goog-upload-url"
UPLOAD_STATUS = "x-goog-upload-status"

#: ``https://host/v1beta/files/{id}`` (what Gemini puts in ``File.uri``).
FILE_URI_RE = re.compile(r"^https?://[^/]+/v1[a-z0-9]*/files/([a-z0-9-]{1,40})$")


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}


@dataclass(frozen=True, slots=True)
class UploadStart:
    """A ``start`` request: the declared size and MIME type, and the optional
    ``displayName`` and ``name`` (``files/{id}``) of the file to create. ``problem`` is
    Gemini's 400 when the request is not a valid start."""

    size: int | None
    mime_type: str | None
    display_name: str | None
    name: str | None
    problem: str | None

    @classmethod
    def parse(cls, headers: Iterable[tuple[bytes, bytes]], body: dict[str, Any]) -> UploadStart:
        h = _headers(headers)
        raw = body.get("file")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        size_text = h.get("x-goog-upload-header-content-length") or str(
            field(meta, "sizeBytes") or ""
        )
        size = int(size_text) if size_text.isdigit() else None
        mime = h.get("x-goog-upload-header-content-type") or field(meta, "mimeType")
        display = field(meta, "displayName")
        name = field(meta, "name")
        problem = None
        if h.get("x-goog-upload-protocol") != "resumable":
            problem = "Only the resumable upload protocol is supported (X-Goog-Upload-Protocol)."
        elif h.get("x-goog-upload-command") != "start":
            problem = "X-Goog-Upload-Command must be 'start'."
        elif size is None:
            problem = "X-Goog-Upload-Header-Content-Length is required."
        elif not isinstance(mime, str) or "/" not in mime:
            problem = "X-Goog-Upload-Header-Content-Type is required."
        elif name is not None and (
            not isinstance(name, str)
            or not re.fullmatch(r"files/[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?", name)
        ):
            problem = f"Invalid file name: {name}"
        return cls(
            size,
            mime if isinstance(mime, str) else None,
            display if isinstance(display, str) else None,
            name if isinstance(name, str) else None,
            problem,
        )


@dataclass(frozen=True, slots=True)
class UploadChunk:
    """A chunk request: its commands (``upload``, ``finalize``, ``query``, ``cancel``)
    and offset."""

    commands: frozenset[str]
    offset: int | None

    @classmethod
    def parse(cls, headers: Iterable[tuple[bytes, bytes]]) -> UploadChunk:
        h = _headers(headers)
        commands = frozenset(c.strip() for c in h.get("x-goog-upload-command", "").split(","))
        offset = h.get("x-goog-upload-offset", "")
        return cls(commands - {""}, int(offset) if offset.isdigit() else None)


def rfc3339(epoch: float) -> str:
    """A google.protobuf.Timestamp in JSON: ``2026-12-05T07:33:18.123456Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_field(hex_digest: str) -> str:
    """``sha256Hash`` as Gemini sends it: base64 of the hex digest."""
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What a ``File`` resource says."""

    file_id: str
    display_name: str | None
    mime_type: str
    size: int
    sha256_hex: str
    create_time: float
    expiration_time: float
    uri: str


def file_resource(meta: FileMeta) -> dict[str, Any]:
    """A ``File`` resource (``state: ACTIVE``, ``source: UPLOADED``); ``sizeBytes`` is an
    int64, so a JSON string."""
    resource: dict[str, Any] = {"name": f"files/{meta.file_id}"}
    if meta.display_name is not None:
        resource["displayName"] = meta.display_name
    resource.update(
        {
            "mimeType": meta.mime_type,
            "sizeBytes": str(meta.size),
            "createTime": rfc3339(meta.create_time),
            "updateTime": rfc3339(meta.create_time),
            "expirationTime": rfc3339(meta.expiration_time),
            "sha256Hash": sha256_field(meta.sha256_hex),
            "uri": meta.uri,
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
    )
    return resource


def list_files_response(
    files: Sequence[dict[str, Any]], next_page_token: str | None = None
) -> dict[str, Any]:
    """A ``files.list`` page (``{}`` when there are no files, as Gemini answers)."""
    reply: dict[str, Any] = {}
    if files:
        reply["files"] = list(files)
    if next_page_token is not None:
        reply["nextPageToken"] = next_page_token
    return reply


def file_uri_id(uri: str) -> str | None:
    """The file id a Files API URI names, or None when it is not one."""
    match = FILE_URI_RE.match(uri)
    return match.group(1) if match else None


def file_not_accessible(file_id: str) -> ErrorReply:
    """Gemini's 403 for a file that does not exist, was deleted, has expired or belongs
    to another project."""
    return ErrorReply(
        403,
        error_body(
            403,
            f"You do not have permission to access the File {file_id} or it may not exist.",
        ),
    )


def invalid_file_uri(uri: str) -> ErrorReply:
    """Gemini's 400 for a ``fileData.fileUri`` that is no Files API URI."""
    return ErrorReply(400, error_body(400, f"Invalid or unsupported file uri: {uri}"))
