"""Re-open a large :class:`Media` (one that carries ``path``) for upload, safely.

The file was checked when the request was built; by upload time it may have been
swapped. :func:`open_media` goes through the sandbox again (so a path that now leads
outside the roots is refused) and :class:`VerifiedReader` hashes what it reads: it never
returns the last bytes of the file until their SHA-256 and size equal the ones recorded,
so an uploader that finalises on the last chunk (the resumable protocol the SDK uses)
never completes an upload of content other than what was checked.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator

import anyio.to_thread

from gemini_failover.inputs.sandbox import InputError, Roots
from gemini_failover.protocol import Media

UPLOAD_CHUNK = 8 * 1024 * 1024


class VerifiedReader(io.RawIOBase):
    """A read-only binary stream over a checked descriptor that raises
    :class:`InputError` instead of handing out the final bytes of content that differs
    from ``media.sha256`` / ``media.size`` (or that grew past it)."""

    def __init__(self, fd: int, media: Media, argument: str) -> None:
        super().__init__()
        self._fd = fd
        self._media = media
        self._argument = argument
        self._hash = hashlib.sha256()
        self._offset = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), self._media.size - self._offset)
        if want <= 0:
            self._verify()
            return 0
        chunk = os.pread(self._fd, want, self._offset)
        if len(chunk) < want:
            raise self._changed()
        self._hash.update(chunk)
        self._offset += len(chunk)
        if self._offset == self._media.size:
            self._verify()  # before the last bytes leave
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _verify(self) -> None:
        if self._verified:
            return
        grew = os.pread(self._fd, 1, self._media.size) != b""
        if grew or self._hash.hexdigest() != self._media.sha256:
            raise self._changed()
        self._verified = True

    def _changed(self) -> InputError:
        return InputError(
            self._argument,
            self._media.label,
            "changed since it was checked (its SHA-256 or size differs); refused",
        )

    @property
    def size(self) -> int:
        return self._media.size

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_media(media: Media, roots: Roots, *, argument: str = "files") -> VerifiedReader:
    """Re-open ``media.path`` through the sandbox (blocking: call it off the event loop)."""
    if media.path is None:
        raise InputError(argument, media.label, "has no path to upload from (it is inline)")
    opened = roots.open_fd(argument, media.path, allow_dir=False)
    if opened.st.st_size != media.size:
        os.close(opened.fd)
        raise InputError(argument, media.label, "changed since it was checked (size differs)")
    return VerifiedReader(opened.fd, media, argument)


async def iter_media(
    media: Media, roots: Roots, *, argument: str = "files", chunk_size: int = UPLOAD_CHUNK
) -> AsyncIterator[bytes]:
    """The content of ``media.path`` in chunks, read in a worker thread; the last chunk
    is yielded only after the whole content is verified."""
    reader = await anyio.to_thread.run_sync(lambda: open_media(media, roots, argument=argument))
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(reader.read, chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        reader.close()
