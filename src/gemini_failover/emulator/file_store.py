"""The emulator's Files API state: upload sessions and files, per endpoint, in memory.

Uploaded bytes are hashed (SHA-256) and scanned for PDF pages as they arrive, then
dropped: a file is its metadata, so memory does not grow with file sizes. Limits are
the scenario's ``files`` settings (largest file, number of files, lifetime). Files
belong to the endpoint they were uploaded to (see :mod:`.endpoints`) and expire by the
emulator's clock; an expired file is gone, as on Gemini.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock
from .media import pdf_pages
from .spec import FilesSettings
from .wire import errors
from .wire.errors import ErrorReply
from .wire.files import FileMeta, UploadChunk, UploadStart, file_resource

__all__ = ["FileStore", "StoredFile"]

#: Upload sessions kept open at once (the oldest is forgotten beyond this).
MAX_SESSIONS = 1000
_PAGE_TAIL = 32  # bytes kept between chunks so that a "/Type /Page" cut in two is counted


@dataclass(slots=True)
class StoredFile:
    """A file: its resource, the endpoint that owns it, and PDF pages."""

    meta: FileMeta
    endpoint: str
    pages: int = 1

    @property
    def name(self) -> str:
        return f"files/{self.meta.file_id}"

    def to_dict(self) -> dict[str, Any]:
        return {**file_resource(self.meta), "endpoint": self.endpoint, "pages": self.pages}


@dataclass(slots=True)
class _Session:
    endpoint: str
    file_id: str
    display_name: str | None
    mime_type: str
    size: int
    uri_base: str
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    tail: bytes = b""
    page_marks: int = 0


def _upload_error(code: int, message: str, status: str | None = None) -> ErrorReply:
    return ErrorReply(code, errors.error_body(code, message, status=status))


class FileStore:
    """Thread-safe store of upload sessions and files."""

    def __init__(self, settings: FilesSettings, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.settings = settings
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._files: dict[str, StoredFile] = {}

    def reset(self, settings: FilesSettings | None = None) -> None:
        with self._lock:
            if settings is not None:
                self.settings = settings
            self._sessions.clear()
            self._files.clear()

    # ------------------------------------------------------------------ uploads

    def start(self, endpoint: str, request: UploadStart, uri_base: str) -> str | ErrorReply:
        """Open an upload session; returns its id (or the error to answer)."""
        if request.problem is not None:
            return errors.invalid_argument(request.problem)
        assert request.size is not None and request.mime_type is not None
        limit = self.settings.max_file_bytes
        if request.size > limit:
            return errors.invalid_argument(
                f"File size {request.size} exceeds the maximum of {limit} bytes."
            )
        file_id = (request.name or "").removeprefix("files/") or secrets.token_hex(6)
        with self._lock:
            self._expire_locked()
            if file_id in self._files:
                return _upload_error(409, f"File files/{file_id} already exists.", "ALREADY_EXISTS")
            upload_id = secrets.token_urlsafe(24)
            self._sessions[upload_id] = _Session(
                endpoint, file_id, request.display_name, request.mime_type, request.size, uri_base
            )
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return upload_id

    def session_endpoint(self, upload_id: str) -> str | None:
        """The endpoint an open upload session belongs to."""
        with self._lock:
            session = self._sessions.get(upload_id)
            return session.endpoint if session is not None else None

    def append(
        self, upload_id: str, chunk: UploadChunk, data: bytes
    ) -> StoredFile | ErrorReply | None:
        """Take one chunk: None while the upload is active, the file once finalized."""
        with self._lock:
            session = self._sessions.get(upload_id)
            if session is None:
                return _upload_error(404, "Upload session not found or already finished.")
            if "cancel" in chunk.commands:
                del self._sessions[upload_id]
                return _upload_error(499, "Upload cancelled.")
            if chunk.offset is not None and chunk.offset != session.received:
                return errors.invalid_argument(
                    f"Invalid upload offset {chunk.offset}: {session.received} bytes received."
                )
            if session.received + len(data) > session.size:
                del self._sessions[upload_id]
                return errors.invalid_argument(
                    "Upload exceeds the declared X-Goog-Upload-Header-Content-Length."
                )
            session.received += len(data)
            session.hasher.update(data)
            if session.mime_type == "application/pdf":
                window = session.tail + data
                session.page_marks += pdf_pages(window) if b"/Page" in window else 0
                session.page_marks -= pdf_pages(session.tail) if b"/Page" in session.tail else 0
                session.tail = window[-_PAGE_TAIL:]
            if "finalize" not in chunk.commands:
                return None
            del self._sessions[upload_id]
            if session.received != session.size:
                return errors.invalid_argument(
                    f"Upload finalized after {session.received} of {session.size} bytes."
                )
            self._expire_locked()
            if len(self._files) >= self.settings.max_files:
                return _upload_error(429, "File storage quota exceeded.")
            now = self._clock.time()
            meta = FileMeta(
                file_id=session.file_id,
                display_name=session.display_name,
                mime_type=session.mime_type,
                size=session.size,
                sha256_hex=session.hasher.hexdigest(),
                create_time=now,
                expiration_time=now + self.settings.ttl_seconds,
                uri=f"{session.uri_base}/files/{session.file_id}",
            )
            stored = StoredFile(meta, session.endpoint, max(1, session.page_marks))
            self._files[session.file_id] = stored
            return stored

    # ------------------------------------------------------------------ files

    def _expire_locked(self) -> None:
        now = self._clock.time()
        for file_id in [i for i, f in self._files.items() if f.meta.expiration_time <= now]:
            del self._files[file_id]

    def get(self, endpoint: str, file_id: str) -> StoredFile | None:
        """The endpoint's file, or None (no such file, expired, another endpoint's)."""
        with self._lock:
            self._expire_locked()
            stored = self._files.get(file_id)
            return stored if stored is not None and stored.endpoint == endpoint else None

    def listed(self, endpoint: str) -> list[StoredFile]:
        with self._lock:
            self._expire_locked()
            return [f for f in self._files.values() if f.endpoint == endpoint]

    def delete(self, endpoint: str, file_id: str) -> bool:
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None or stored.endpoint != endpoint:
                return False
            del self._files[file_id]
            return True

    # ------------------------------------------------------------------ control

    def all_files(self) -> list[StoredFile]:
        with self._lock:
            self._expire_locked()
            return list(self._files.values())

    def expire(self, file_id: str) -> bool:
        """Make a file expire now (it is then gone, as on Gemini)."""
        with self._lock:
            return self._files.pop(file_id.removeprefix("files/"), None) is not None

    def remove(self, file_id: str) -> bool:
        """Delete a file whatever its endpoint."""
        return self.expire(file_id)
