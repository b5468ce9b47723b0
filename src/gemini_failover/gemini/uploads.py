"""Files API uploads for one endpoint (one GeminiBackend, one API key).

Files belong to the endpoint (the API key's project) that uploaded them, so the cache
lives on the backend instance: a file uploaded for one endpoint is never referenced on
another. Guarantees:

- **cached by content**: one upload per SHA-256, reused until ``reuse_margin`` seconds
  before the file's ``expirationTime`` (48 h on Gemini);
- **single-flight**: concurrent requests for the same content share one upload; the
  upload is cancelled only when every request waiting for it has gone;
- **nothing left behind**: every upload is given a name of ours up front, so an upload
  that failed or was cancelled at any point (even after its last chunk was sent, before
  the answer came) is deleted by that name;
- **content re-checked**: the bytes read through the opener must match the ``Media``'s
  size and SHA-256 (a file that changed since it was checked is refused, not sent).

The SDK's ``files.upload`` takes a path or a seekable, blocking ``io.IOBase`` only (it
reads the size up front and reads chunks synchronously), while the opener yields bytes
asynchronously; so the content is spooled to a private temporary file first, which the
SDK then reads in worker threads. That also verifies the hash before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Any

import structlog

from gemini_failover.gemini import errors
from gemini_failover.protocol import Media

if TYPE_CHECKING:
    from google import genai

log = structlog.get_logger(__name__)

#: Reads a path-only Media for upload; raises OSError or ValueError (e.g. the sandbox's
#: InputError) to refuse it, which the request gets as a bad_request.
Opener = Callable[[Media], AsyncIterator[bytes]]

#: Gemini keeps uploaded files 48 hours; used when an answer has no expirationTime.
DEFAULT_TTL = 48 * 3600.0
#: How long before its expiry a cached file stops being reused (a request sent with it
#: must still find it there).
DEFAULT_REUSE_MARGIN = 3600.0
#: Bound on the clean-up delete after a failed or cancelled upload.
CLEANUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class UploadedFile:
    name: str  # "files/abc"
    uri: str
    mime_type: str
    expires_at: float  # epoch seconds


@dataclass(slots=True)
class _Flight:
    task: asyncio.Task[UploadedFile]
    waiters: int = 0


def upload_name(sha256: str) -> str:
    """A fresh Files API name for this content: ``files/`` + at most 40 of [a-z0-9-]."""
    return f"files/{sha256[:24].lower()}-{secrets.token_hex(6)}"


class FileCache:
    """Uploads path-only media through one client's Files API (see the module doc)."""

    def __init__(
        self,
        client: Callable[[], genai.Client],
        opener: Opener | None,
        *,
        reuse_margin: float = DEFAULT_REUSE_MARGIN,
        clock: Callable[[], float] = time.time,
        max_entries: int = 4096,
        spool_dir: str | None = None,
    ) -> None:
        self._client = client
        self._spool_dir = spool_dir
        self._opener = opener
        self._margin = reuse_margin
        self._clock = clock
        self._max_entries = max_entries
        self._files: dict[str, UploadedFile] = {}
        self._flights: dict[str, _Flight] = {}
        #: clean-ups in progress and uploads cancelled when their last waiter left
        self._cleanups: set[asyncio.Task[Any]] = set()

    def cached(self, sha256: str) -> UploadedFile | None:
        """The reusable upload of this content, if any."""
        found = self._files.get(sha256)
        if found is not None and found.expires_at - self._margin <= self._clock():
            del self._files[sha256]
            return None
        return found

    async def acquire(self, media: Media) -> UploadedFile:
        """The uploaded file for ``media``: cached, joined in flight, or uploaded now."""
        found = self.cached(media.sha256)
        if found is not None:
            return found
        if self._opener is None:
            raise errors.refused(
                f"{media.label}: this backend has no file opener, so it cannot upload "
                "files that are not sent inline"
            )
        flight = self._flights.get(media.sha256)
        if flight is None:
            task = asyncio.create_task(
                self._upload(media), name=f"gemini-upload-{media.sha256[:12]}"
            )
            flight = _Flight(task)
            self._flights[media.sha256] = flight
            task.add_done_callback(lambda t: self._landed(media.sha256, flight, t))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if flight.waiters == 1 and not flight.task.done():
                # Nobody else wants it: its clean-up deletes what it made, and a later
                # request for the same content starts afresh instead of joining it.
                if self._flights.get(media.sha256) is flight:
                    del self._flights[media.sha256]
                flight.task.cancel()
                self._track(flight.task)
            raise
        finally:
            flight.waiters -= 1

    def _landed(self, sha256: str, flight: _Flight, task: asyncio.Task[UploadedFile]) -> None:
        if self._flights.get(sha256) is flight:
            del self._flights[sha256]
        if task.cancelled() or task.exception() is not None:
            return
        if len(self._files) >= self._max_entries:
            self._files.pop(next(iter(self._files)))  # the oldest upload is forgotten
        self._files[sha256] = task.result()

    async def forget_missing(self, names: Iterable[str], *, timeout: float) -> bool:
        """After a 403/404 on a request that referenced ``names``: ask the endpoint for
        each, forget those it no longer has (deleted or expired upstream). True when at
        least one was forgotten, i.e. uploading again may help."""
        wanted = set(names)
        forgotten = False
        for sha, uploaded in list(self._files.items()):
            if uploaded.name not in wanted:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await self._client().aio.files.get(name=uploaded.name)
            except errors.catchable() as exc:
                normalised = errors.normalise(exc)
                if normalised is None:
                    raise
                if normalised.code in (403, 404):
                    self._files.pop(sha, None)
                    forgotten = True
                # anything else says nothing of the file: the caller's error stands
        return forgotten

    async def aclose(self) -> None:
        """Cancel uploads in flight and wait for every clean-up (also of uploads
        cancelled earlier) to end."""
        for flight in list(self._flights.values()):
            flight.task.cancel()
        pending = [f.task for f in self._flights.values()] + list(self._cleanups)
        if pending:
            await asyncio.wait(pending)

    # -- one upload -------------------------------------------------------------------

    async def _upload(self, media: Media) -> UploadedFile:
        from google.genai import types

        name = upload_name(media.sha256)
        spooled = await self._spool(media)
        try:
            config = types.UploadFileConfig(
                name=name,
                mime_type=media.mime_type,
                display_name=PurePath(media.label).name[:128] or None,
            )
            try:
                raw = await self._client().aio.files.upload(file=spooled, config=config)
            except BaseException as exc:
                await self._discard(name)
                normalised = errors.normalise_upload(exc)
                if normalised is None:
                    raise
                raise normalised from exc
        finally:
            await asyncio.to_thread(_unlink, spooled)
        expires = raw.expiration_time.timestamp() if raw.expiration_time else None
        log.debug("gemini_file_uploaded", file=raw.name, bytes=media.size)
        return UploadedFile(
            name=raw.name or name,
            uri=raw.uri or "",
            mime_type=raw.mime_type or media.mime_type,
            expires_at=expires if expires is not None else self._clock() + DEFAULT_TTL,
        )

    async def _spool(self, media: Media) -> str:
        """Copy the opener's bytes to a private temporary file, checking size and hash."""
        assert self._opener is not None
        handle: IO[bytes] = await asyncio.to_thread(
            tempfile.NamedTemporaryFile, prefix="gemini-upload-", dir=self._spool_dir, delete=False
        )
        digest = hashlib.sha256()
        size = 0
        try:
            try:
                async for chunk in self._opener(media):
                    digest.update(chunk)
                    size += len(chunk)
                    if size > media.size:
                        break
                    await asyncio.to_thread(handle.write, chunk)
            except OSError as exc:
                raise errors.refused(f"{media.label}: cannot be read ({exc.strerror})") from exc
            except ValueError as exc:  # the opener refuses it (the sandbox: outside, changed)
                raise errors.refused(str(exc)) from exc
            finally:
                await asyncio.to_thread(handle.close)
            if size != media.size or digest.hexdigest() != media.sha256.lower():
                raise errors.refused(f"{media.label}: the file changed since it was checked")
        except BaseException:
            await asyncio.to_thread(_unlink, handle.name)
            raise
        return handle.name

    async def _discard(self, name: str) -> None:
        """Delete ``name`` if the failed upload created it, whatever happens to us."""
        task = asyncio.create_task(self._delete_quietly(name), name=f"gemini-discard-{name}")
        self._track(task)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete_quietly(self, name: str) -> None:
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await self._client().aio.files.delete(name=name)
        except errors.catchable() as exc:
            # 403/404: the upload never got as far as creating it (the usual case).
            normalised = errors.normalise(exc)
            if normalised is None or normalised.code not in (403, 404):
                log.warning("gemini_upload_cleanup_failed", file=name, error=str(normalised))
            return
        log.info("gemini_upload_discarded", file=name)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
