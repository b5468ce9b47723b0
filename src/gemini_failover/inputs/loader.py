"""Turn what a user names (absolute paths, ``file://`` URIs, directories) into request
attachments (:class:`TextFile`, :class:`Media`) and a report of what went in.

Everything runs in a worker thread (:func:`load_files`), reads only through the sandbox,
and is bounded: caps on bytes per file and per request, on files per request and on
directory entries visited; no read goes past a cap. A file named explicitly that breaks a
rule is an :class:`InputError`; a file found by expanding a directory that does not fit is
left out and reported.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio.to_thread

from gemini_failover.inputs.media import (
    EXTENSIONS,
    HEAD_BYTES,
    Measure,
    PdfPages,
    measure,
    reconcile,
    sniff,
    text_tokens,
)
from gemini_failover.inputs.sandbox import InputError, Opened, Roots, user_path
from gemini_failover.inputs.settings import InputSettings
from gemini_failover.inputs.walk import (
    FileEntry,
    Reason,
    Skipped,
    WalkLimits,
    ancestor_ignores,
    walk,
)
from gemini_failover.protocol import Attachment, Media, TextFile

#: Left-out entries listed one by one in a report (all are counted in ``left_out_counts``).
MAX_REPORTED = 200
_CHUNK = 1024 * 1024
_SUPPORTED = (
    "text, code, PNG, JPEG, WebP, HEIC, HEIF, GIF, PDF, WAV, MP3, AIFF, AAC, OGG, FLAC, "
    "MP4, MOV, MPEG, AVI, FLV, WebM, WMV, 3GP"
)


@dataclass(frozen=True, slots=True)
class Included:
    argument: str  # which argument brought it in, e.g. "files[1]"
    label: str
    kind: Literal["text", "media"]
    mime_type: str
    size: int
    tokens: int  # estimated as Gemini counts them
    inline: bool  # False: ``Media.path``, uploaded through the Files API later
    tokens_exact: bool = True  # False when pages or duration were assumed from the size


@dataclass(frozen=True, slots=True)
class LeftOut:
    argument: str
    label: str
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class LoadReport:
    included: tuple[Included, ...]
    #: The first ``MAX_REPORTED`` files left out; every one is counted in left_out_counts.
    left_out: tuple[LeftOut, ...]
    left_out_counts: dict[str, int]
    tokens: int
    bytes: int
    #: A directory walk stopped at ``max_walk_entries``: there may be more files.
    walk_truncated: bool = False


@dataclass(frozen=True, slots=True)
class Loaded:
    attachments: tuple[Attachment, ...]
    report: LoadReport


async def load_files(
    paths: Sequence[str],
    roots: Roots,
    settings: InputSettings,
    *,
    argument: str = "files",
    token_budget: int | None = None,
) -> Loaded:
    """Read ``paths`` in a worker thread; see :func:`load_files_sync`."""
    return await anyio.to_thread.run_sync(
        lambda: load_files_sync(
            paths, roots, settings, argument=argument, token_budget=token_budget
        )
    )


def load_files_sync(
    paths: Sequence[str],
    roots: Roots,
    settings: InputSettings,
    *,
    argument: str = "files",
    token_budget: int | None = None,
) -> Loaded:
    """Explicit files first, in the order given, then directories' files within
    ``token_budget`` (default ``settings.directory_token_budget``) estimated tokens.
    Raises :class:`InputError` (naming ``argument[i]`` and the path) for an explicit
    file that cannot be used or a directory with nothing readable in it."""
    run = _Run(settings, token_budget or settings.directory_token_budget, argument)
    if len(paths) > settings.max_files:
        raise InputError(
            argument,
            f"{len(paths)} paths",
            f"too many files: at most {settings.max_files} (max_files) per request",
        )
    directories: list[tuple[str, str, Opened]] = []
    try:
        for i, raw in enumerate(paths):
            arg = f"{argument}[{i}]"
            opened = roots.open_fd(arg, raw)
            if opened.is_dir:
                directories.append((arg, raw, opened))
                continue
            try:
                run.explicit(arg, raw, opened)
            except OSError as exc:
                raise InputError(arg, raw, f"cannot be read ({exc.strerror})") from None
            finally:
                os.close(opened.fd)
        for arg, raw, opened in directories:
            run.directory(arg, raw, opened)
    finally:
        for _, _, opened in directories:
            os.close(opened.fd)
    return run.result()


@dataclass
class _Run:
    settings: InputSettings
    budget: int
    argument: str
    attachments: list[Attachment] = field(default_factory=list)
    included: list[Included] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    bytes: int = 0
    inline_bytes: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set)
    limits: WalkLimits | None = None

    def result(self) -> Loaded:
        report = LoadReport(
            included=tuple(self.included),
            left_out=tuple(self.left_out),
            left_out_counts=dict(sorted(self.counts.items())),
            tokens=self.tokens,
            bytes=self.bytes,
            walk_truncated=bool(self.limits and self.limits.truncated),
        )
        return Loaded(tuple(self.attachments), report)

    def _leave_out(self, arg: str, label: str, reason: Reason, detail: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.left_out) < MAX_REPORTED:
            self.left_out.append(LeftOut(arg, label, reason, detail))

    def _add(self, item: Included, attachment: Attachment, st: os.stat_result) -> None:
        self.included.append(item)
        self.attachments.append(attachment)
        self.tokens += item.tokens
        self.bytes += item.size
        self.seen.add((st.st_dev, st.st_ino))

    # -- a file named explicitly: every problem is an error ------------------------------

    def explicit(self, arg: str, raw: str, opened: Opened) -> None:
        s = self.settings
        st, label = opened.st, user_path(arg, raw)
        if (st.st_dev, st.st_ino) in self.seen:
            self._leave_out(arg, label, "duplicate", "the same file is already included")
            return
        if len(self.included) >= s.max_files:
            raise InputError(arg, raw, f"too many files: at most {s.max_files} (max_files)")
        if self.bytes + st.st_size > s.max_request_bytes:
            raise InputError(
                arg, raw, f"the files together pass {_mb(s.max_request_bytes)} (max_request_bytes)"
            )
        head = os.pread(opened.fd, HEAD_BYTES, 0)
        hint = EXTENSIONS.get(os.path.splitext(opened.real_path)[1].lower())
        try:
            mime = reconcile(sniff(head, hint), hint)
        except ValueError as exc:
            raise InputError(arg, raw, str(exc)) from None
        if mime is not None:
            if st.st_size > s.max_file_bytes:
                raise InputError(
                    arg, raw, f"is {_mb(st.st_size)}, over {_mb(s.max_file_bytes)} (max_file_bytes)"
                )
            item, media = self._media(arg, label, opened, mime)
            self._add(item, media, st)
            return
        if st.st_size > s.max_text_file_bytes:
            raise InputError(
                arg,
                raw,
                f"is {_mb(st.st_size)}, over {_mb(s.max_text_file_bytes)} for a text file "
                "(max_text_file_bytes)",
            )
        text = _read_text(opened.fd, st.st_size)
        if text is None:
            raise InputError(
                arg, raw, f"is a binary file of a type Gemini does not read (it reads {_SUPPORTED})"
            )
        self._add(_text_item(arg, label, st, text), TextFile(label, text), st)

    def _media(self, arg: str, label: str, opened: Opened, mime: str) -> tuple[Included, Media]:
        size = opened.st.st_size
        inline = (
            size <= self.settings.inline_max_bytes
            and self.inline_bytes + size <= self.settings.inline_total_max_bytes
        )
        digest = hashlib.sha256()
        pages = PdfPages() if mime == "application/pdf" else None
        kept: list[bytes] = []
        offset = 0
        while offset < size:
            chunk = os.pread(opened.fd, min(_CHUNK, size - offset), offset)
            if not chunk:
                raise InputError(arg, label, "shrank while it was read; refused")
            digest.update(chunk)
            if pages is not None:
                pages.feed(chunk)
            if inline:
                kept.append(chunk)
            offset += len(chunk)
        m: Measure = measure(
            mime, size, lambda o, n: os.pread(opened.fd, n, o), pages.result() if pages else None
        )
        if inline:
            self.inline_bytes += size
        media = Media(
            label=label,
            mime_type=mime,
            size=size,
            sha256=digest.hexdigest(),
            data=b"".join(kept) if inline else None,
            path=None if inline else opened.real_path,
            tokens=m.tokens,
        )
        item = Included(arg, label, "media", mime, size, m.tokens, inline, m.exact)
        return item, media

    # -- a directory: its text files, within the budget; the rest reported ---------------

    def directory(self, arg: str, raw: str, opened: Opened) -> None:
        s = self.settings
        label = user_path(arg, raw)
        if self.limits is None:
            self.limits = WalkLimits(s.max_walk_entries, s.max_walk_depth)
        before = len(self.included)
        was_truncated = self.limits.truncated
        spent = 0
        stop: tuple[Reason, str] | None = None
        gen = walk(opened.fd, raw, self.limits, ancestor_ignores(opened))
        try:
            for event in gen:
                if isinstance(event, Skipped):
                    self._leave_out(arg, _join(raw, event.rel), event.reason, event.detail)
                    continue
                n = len(self.included)
                where = _join(label, event.rel)
                try:
                    stop = self._dir_file(arg, where, event, self.budget - spent)
                except OSError as exc:
                    self._leave_out(arg, where, "unreadable", f"cannot be read ({exc.strerror})")
                finally:
                    os.close(event.fd)
                if len(self.included) > n:
                    spent += self.included[-1].tokens
                if stop is not None:
                    break
        finally:
            gen.close()
        if stop is not None:
            self._leave_out(arg, label, stop[0], stop[1] + "; the rest of the folder was not read")
        if self.limits.truncated and not was_truncated:
            self._leave_out(
                arg,
                label,
                "walk_limit",
                f"stopped after {s.max_walk_entries} entries (max_walk_entries)",
            )
        if len(self.included) == before:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
            raise InputError(
                arg, raw, f"has no readable text files to include (left out: {counts or 'none'})"
            )

    def _dir_file(
        self, arg: str, label: str, entry: FileEntry, remaining: int
    ) -> tuple[Reason, str] | None:
        """Include one file found in a directory, or leave it out (the return value says
        why when the whole walk should stop)."""
        s, st = self.settings, entry.st
        if (st.st_dev, st.st_ino) in self.seen:
            self._leave_out(arg, label, "duplicate", "already included")
            return None
        if len(self.included) >= s.max_files:
            return "file_limit", f"at most {s.max_files} files (max_files)"
        if self.bytes + st.st_size > s.max_request_bytes:
            return "request_size", f"the files together pass {_mb(s.max_request_bytes)}"
        if st.st_size > s.max_text_file_bytes:
            self._leave_out(arg, label, "too_large", f"over {_mb(s.max_text_file_bytes)}")
            return None
        # Even at one byte per character it would not fit: skip without reading.
        if text_tokens(st.st_size // 4) > remaining:
            self._leave_out(
                arg, label, "token_budget", f"does not fit the {self.budget}-token budget"
            )
            return None
        head = os.pread(entry.fd, HEAD_BYTES, 0)
        hint = EXTENSIONS.get(os.path.splitext(entry.rel[-1])[1].lower())
        if hint is not None or sniff(head) is not None:
            self._leave_out(
                arg, label, "media", "folders expand to text files; name it to attach it"
            )
            return None
        text = _read_text(entry.fd, st.st_size)
        if text is None:
            self._leave_out(arg, label, "binary", "not UTF-8 text")
            return None
        item = _text_item(arg, label, st, text)
        if item.tokens > remaining:
            self._leave_out(
                arg, label, "token_budget", f"does not fit the {self.budget}-token budget"
            )
            return None
        self._add(item, TextFile(label, text), st)
        return None


def _read_text(fd: int, size: int) -> str | None:
    """The file's UTF-8 text (a BOM is dropped), or None when it is binary: a NUL byte in
    it or bytes that are not UTF-8. Reads ``size`` bytes at most."""
    first = os.pread(fd, min(size, 8192), 0)
    if b"\x00" in first:
        return None
    data = first + (os.pread(fd, size - len(first), len(first)) if size > len(first) else b"")
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _text_item(arg: str, label: str, st: os.stat_result, text: str) -> Included:
    return Included(arg, label, "text", "text/plain", st.st_size, text_tokens(len(text)), True)


def _join(raw: str, rel: tuple[str, ...]) -> str:
    return "/".join((raw.rstrip("/"), *rel)) if rel else raw


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
