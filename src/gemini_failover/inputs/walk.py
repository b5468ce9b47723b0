"""A bounded walk of a directory that is already open (a descriptor from the sandbox).

Every entry is reached through ``dir_fd`` opens that never follow a symlink, so the walk
cannot leave the directory it started from. Hidden entries (a leading dot), symlinks,
special files and entries a ``.gitignore`` ignores are reported, not entered. The order
is stable: in each directory its files by name, then its sub-directories by name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pathspec

from gemini_failover.inputs.sandbox import InputError, Opened, ancestor_dirs, open_child

#: Largest .gitignore read (a bigger one is ignored, and reported).
GITIGNORE_MAX_BYTES = 256 * 1024

Reason = Literal[
    "hidden",
    "ignored",
    "symlink",
    "special",
    "binary",
    "media",
    "too_large",
    "unreadable",
    "duplicate",
    "token_budget",
    "file_limit",
    "request_size",
    "walk_limit",
    "depth_limit",
]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file found by the walk; ``fd`` is open (close it), valid only until the
    walk resumes."""

    rel: tuple[str, ...]
    fd: int
    st: os.stat_result


@dataclass(frozen=True, slots=True)
class Skipped:
    rel: tuple[str, ...]
    reason: Reason
    detail: str


@dataclass
class WalkLimits:
    """Shared by every walk of one request: ``entries_left`` only goes down."""

    entries_left: int
    max_depth: int
    truncated: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class Ignore:
    """One .gitignore's rules: they apply to paths under ``base`` (components below the
    walked directory); ``prefix`` is prepended for a .gitignore above that directory."""

    base: tuple[str, ...]
    spec: pathspec.GitIgnoreSpec
    prefix: tuple[str, ...] = ()


def walk(
    top_fd: int, label: str, limits: WalkLimits, inherited: Sequence[Ignore] = ()
) -> Generator[FileEntry | Skipped, None, None]:
    """Walk the directory open at ``top_fd`` (not closed here). ``label`` names it in
    errors; ``inherited``: rules of .gitignore files above it (see :func:`ancestor_ignores`).
    Stops when ``limits.entries_left`` runs out (sets ``truncated``)."""
    yield from _walk_dir(top_fd, (), label, limits, list(inherited))


def ancestor_ignores(opened: Opened) -> list[Ignore]:
    """Rules of the .gitignore files between the allowed root and ``opened`` (a named
    directory), as git applies a repository's .gitignore to its sub-folders. Files
    above the root are never read."""
    found = []
    for rel, fd in ancestor_dirs(opened):
        spec = _read_gitignore(fd, opened.real_path, rel)
        if spec is not None:
            found.append(Ignore((), spec, opened.parts[len(rel) :]))
    return found


def _walk_dir(
    dir_fd: int,
    rel: tuple[str, ...],
    label: str,
    limits: WalkLimits,
    ignores: list[Ignore],
) -> Generator[FileEntry | Skipped, None, None]:
    names: list[tuple[str, os.stat_result | None]] = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            if limits.entries_left <= 0:
                limits.truncated = True
                break
            limits.entries_left -= 1
            try:
                st: os.stat_result | None = entry.stat(follow_symlinks=False)
            except OSError:
                st = None
            names.append((entry.name, st))
    names.sort(key=lambda item: item[0])

    local = list(ignores)
    gitignore = next((st for name, st in names if name == ".gitignore"), None)
    if gitignore is not None and stat.S_ISREG(gitignore.st_mode):
        spec = _read_gitignore(dir_fd, label, rel)
        if spec is not None:
            local.append(Ignore(rel, spec))

    files: list[tuple[str, os.stat_result]] = []
    dirs: list[tuple[str, os.stat_result]] = []
    for name, st in names:
        path = (*rel, name)
        if st is None:
            yield Skipped(path, "unreadable", "vanished or cannot be examined")
        elif name.startswith("."):
            yield Skipped(path, "hidden", "hidden entries are not expanded")
        elif stat.S_ISLNK(st.st_mode):
            yield Skipped(path, "symlink", "symlinks are not followed in a folder; name it")
        elif stat.S_ISDIR(st.st_mode):
            if _ignored(local, path, directory=True):
                yield Skipped(path, "ignored", "ignored by .gitignore")
            else:
                dirs.append((name, st))
        elif not stat.S_ISREG(st.st_mode):
            yield Skipped(path, "special", "device files, FIFOs and sockets are not read")
        elif _ignored(local, path, directory=False):
            yield Skipped(path, "ignored", "ignored by .gitignore")
        else:
            files.append((name, st))

    for name, st in files:
        path = (*rel, name)
        try:
            fd = open_child("files", label, dir_fd, name, directory=False)
        except InputError as exc:
            yield Skipped(path, "unreadable", exc.problem)
            continue
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            yield Skipped(path, "unreadable", "changed while the folder was read")
            continue
        yield FileEntry(path, fd, now)

    for name, st in dirs:
        path = (*rel, name)
        if len(path) > limits.max_depth:
            yield Skipped(path, "depth_limit", f"deeper than {limits.max_depth} folders")
            continue
        try:
            sub = open_child("files", label, dir_fd, name, directory=True)
        except InputError as exc:
            yield Skipped(path, "unreadable", exc.problem)
            continue
        try:
            now = os.fstat(sub)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                yield Skipped(path, "unreadable", "changed while the folder was read")
                continue
            yield from _walk_dir(sub, path, label, limits, local)
        finally:
            os.close(sub)


def _read_gitignore(dir_fd: int, label: str, rel: tuple[str, ...]) -> pathspec.GitIgnoreSpec | None:
    try:
        fd = open_child("files", label, dir_fd, ".gitignore", directory=False)
    except InputError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > GITIGNORE_MAX_BYTES:
            return None
        data = os.read(fd, GITIGNORE_MAX_BYTES)
    finally:
        os.close(fd)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(ignores: list[Ignore], path: tuple[str, ...], *, directory: bool) -> bool:
    """Git's rule: the deepest .gitignore with a matching pattern decides (its last
    matching pattern, so ``!keep.log`` re-includes); a directory is matched with a
    trailing slash so ``build/`` patterns apply. An ignored directory is not entered, so
    nothing under it can be re-included, as in git."""
    for ignore in reversed(ignores):
        sub = "/".join((*ignore.prefix, *path[len(ignore.base) :])) + ("/" if directory else "")
        result = ignore.spec.check_file(sub)
        if result.include is not None:
            return result.include
    return False
