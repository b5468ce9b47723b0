"""The sandbox: only files under the allowed roots can be read.

A user names a file by an absolute path or a ``file://`` URI. :meth:`Roots.open` turns
that into an open file descriptor, or refuses with an :class:`InputError` that names the
argument and the path. How it decides (POSIX; the server runs on Linux and macOS):

1. **Parse.** Absolute paths only (``~`` and relative paths are refused: there is no
   meaningful working directory for an MCP server); ``file://`` URIs are
   percent-decoded and must have no host other than ``localhost``; NUL is refused.
2. **Check.** ``os.path.realpath`` removes every symlink and ``..``; the real path is
   inside a root when one of its ancestors *is* a root directory, compared by identity
   (``st_dev``/``st_ino``), not by string prefix. Identity makes case tricks harmless on
   a case-insensitive filesystem (macOS APFS/HFS+, where ``realpath`` keeps the case the
   user typed: ``/Users/Me/ROOT/x`` is matched to the root ``/Users/me/root`` because it
   is the same directory), and it cannot be fooled by ``/root-evil`` sharing the prefix
   ``/root``. A path outside every root is refused as *outside* whether or not it
   exists, so errors are no oracle for files outside the roots.
3. **Open.** The file is opened by walking down from a descriptor of the root, one
   component of the checked real path at a time, with ``dir_fd`` opens and
   ``O_NOFOLLOW`` on *every* component (``O_DIRECTORY`` on the intermediate ones), and
   ``O_NONBLOCK | O_NOCTTY`` on the last so a FIFO or a terminal cannot block or attach.
   We chose the walk over "``O_NOFOLLOW`` on the full path + fstat comparison" alone
   because ``O_NOFOLLOW`` only covers the last component: a directory swapped for a
   symlink between check and open would be followed. The walk refuses any symlink that
   appears anywhere after the check (``ELOOP``/``ENOTDIR``). On top of the walk, the
   opened descriptor is ``fstat``-ed and its ``st_dev``/``st_ino`` must equal those
   recorded at the check, which also catches a directory renamed out of the root
   mid-walk or a file replaced by another one: what we read is the very file that was
   inside a root when it was checked. (Linux's ``openat2(RESOLVE_BENEATH)`` would do
   this in the kernel, but Python does not expose it and macOS lacks it.)
4. **Type.** Device files, FIFOs and sockets are refused before opening (``lstat``) and
   again after (``fstat`` ``S_ISREG``/``S_ISDIR``), before a byte is read.

**Hard links** are indistinguishable from the original file (one inode, no "real"
location), so a hard link inside a root is inside the root. Making one needs write access
to the root and, with Linux's ``fs.protected_hardlinks`` (the default), ownership of the
target: it grants nothing its maker could not already read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: The environment variable that allows folders for clients that declare no roots.
ALLOWED_DIRS_ENV = "GEMINI_FAILOVER_ALLOWED_DIRS"

_HOW_TO_ALLOW = (
    "allow a folder by adding it to your MCP client's roots (workspace folders), or, for "
    f"clients without roots, set {ALLOWED_DIRS_ENV} in the server's env block to a list "
    f"of absolute folders separated by '{os.pathsep}'"
)

#: The walk needs ``dir_fd`` opens and O_NOFOLLOW/O_DIRECTORY (Linux, macOS, BSDs).
#: Elsewhere (Windows) the module imports but reads nothing: it fails closed.
SUPPORTED = (
    all(hasattr(os, flag) for flag in ("O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "O_NOCTTY"))
    and os.open in os.supports_dir_fd
)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
_O_LEAF = (
    os.O_RDONLY
    | _O_NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | _O_CLOEXEC
)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # a URI scheme (paths start with "/")

#: Test seam: called with the checked real path between the check and the open, so a
#: test can change the filesystem there deterministically (a race without sleeps).
_after_check: Callable[[str], None] | None = None


class InputError(ValueError):
    """A file the user named cannot be used: names the argument and the path."""

    def __init__(self, argument: str, path: str, problem: str) -> None:
        self.argument = argument
        self.path = path
        self.problem = problem
        super().__init__(f"{argument}: {path!r}: {problem}")


@dataclass(frozen=True, slots=True)
class Opened:
    """An open, checked descriptor (close it: use :meth:`Roots.open` as a context)."""

    fd: int
    st: os.stat_result
    real_path: str  # the checked real path (inside ``root``)
    root: str
    parts: tuple[str, ...] = ()  # ``real_path``'s components below ``root``

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def parse_allowed_dirs(value: str | None) -> list[str]:
    """``GEMINI_FAILOVER_ALLOWED_DIRS``: folders separated by ``os.pathsep`` (blanks
    ignored)."""
    return [part.strip() for part in (value or "").split(os.pathsep) if part.strip()]


def user_path(argument: str, raw: str) -> str:
    """The absolute, normalised-for-syntax-only path a user named (no filesystem access):
    an absolute path or a ``file://`` URI, percent-decoded; never relative, never NUL."""
    if not isinstance(raw, str) or not raw:
        raise InputError(argument, str(raw), "is empty: give an absolute path or file:// URI")
    path = raw
    if raw[:5].lower() == "file:":
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise InputError(
                argument, raw, f"names a file on host {parts.netloc!r}: only local files"
            )
        if parts.query or parts.fragment:
            raise InputError(argument, raw, "a file URI with a query or fragment is not a file")
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            raise InputError(argument, raw, "percent-encodes bytes that are not UTF-8") from None
    elif _SCHEME.match(raw):
        raise InputError(argument, raw, "only absolute paths and file:// URIs are files")
    if "\x00" in path:
        raise InputError(argument, raw, "contains a NUL byte")
    if not os.path.isabs(path):
        raise InputError(
            argument,
            raw,
            "is not an absolute path (a relative path or ~ has no meaning for this server)",
        )
    return path


class Roots:
    """The allowed directories: from the MCP client's roots or
    ``GEMINI_FAILOVER_ALLOWED_DIRS``. Empty means nothing is readable."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        seen: dict[str, None] = {}
        for d in dirs:
            raw = os.fspath(d)
            if raw[:5].lower() == "file:":
                raw = user_path("roots", raw)
            if not os.path.isabs(raw) or "\x00" in raw:
                raise InputError("roots", raw, "an allowed folder must be an absolute path")
            seen[os.path.realpath(raw)] = None
        self._dirs: tuple[str, ...] = tuple(seen)

    @property
    def dirs(self) -> tuple[str, ...]:
        """The effective roots (real paths), for the health document."""
        return self._dirs

    def __bool__(self) -> bool:
        return bool(self._dirs)

    def __repr__(self) -> str:
        return f"Roots({list(self._dirs)!r})"

    # -- checking ----------------------------------------------------------------------

    def _root_ids(self) -> dict[tuple[int, int], str]:
        ids: dict[tuple[int, int], str] = {}
        for d in self._dirs:
            with contextlib.suppress(OSError):  # a root that is gone allows nothing
                st = os.stat(d)
                if stat.S_ISDIR(st.st_mode):
                    ids.setdefault((st.st_dev, st.st_ino), d)
        return ids

    def check(self, argument: str, raw: str) -> tuple[str, str, tuple[str, ...]]:
        """(real path, root, components below the root) for a user path, or InputError.
        Filesystem metadata only; nothing is opened."""
        path = user_path(argument, raw)
        if not SUPPORTED:
            raise InputError(argument, raw, "reading files needs Linux or macOS (POSIX opens)")
        if not self._dirs:
            raise InputError(argument, raw, f"no folder is allowed: {_HOW_TO_ALLOW}")
        real = os.path.realpath(path)
        ids = self._root_ids()
        below: list[str] = []
        probe = real
        while True:
            try:
                st = os.stat(probe)
            except OSError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) in ids:
                root = ids[(st.st_dev, st.st_ino)]
                return real, root, tuple(reversed(below))
            parent, name = os.path.split(probe)
            if parent == probe or not name:
                break
            below.append(name)
            probe = parent
        raise InputError(
            argument,
            raw,
            f"is outside the allowed folders ({', '.join(self._dirs)}); {_HOW_TO_ALLOW}",
        )

    # -- opening -----------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, argument: str, raw: str, *, allow_dir: bool = True) -> Iterator[Opened]:
        """Check ``raw`` and open it without following any symlink that appears after the
        check; yields an :class:`Opened` regular file (or directory when ``allow_dir``),
        closed on exit."""
        opened = self.open_fd(argument, raw, allow_dir=allow_dir)
        try:
            yield opened
        finally:
            os.close(opened.fd)

    def open_fd(self, argument: str, raw: str, *, allow_dir: bool = True) -> Opened:
        """:meth:`open` without the context: the caller closes ``Opened.fd``."""
        real, root, parts = self.check(argument, raw)
        try:
            before = os.lstat(real)
        except FileNotFoundError:
            raise InputError(argument, raw, "does not exist") from None
        except OSError as exc:
            raise InputError(argument, raw, f"cannot be read ({exc.strerror})") from None
        _require_kind(argument, raw, before, allow_dir)
        if _after_check is not None:
            _after_check(real)
        fd = _walk_open(argument, raw, root, parts)
        try:
            after = os.fstat(fd)
            _require_kind(argument, raw, after, allow_dir)
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise InputError(argument, raw, "changed while it was being opened; refused")
        except BaseException:
            os.close(fd)
            raise
        return Opened(fd=fd, st=after, real_path=real, root=root, parts=parts)


def _require_kind(argument: str, raw: str, st: os.stat_result, allow_dir: bool) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return
    if stat.S_ISDIR(mode):
        raise InputError(argument, raw, "is a directory, a file is needed here")
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device file"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a symlink"
        if stat.S_ISLNK(mode)
        else "not a regular file"
    )
    raise InputError(argument, raw, f"is {kind}; only regular files and folders are read")


def _walk_open(argument: str, raw: str, root: str, parts: Sequence[str]) -> int:
    """Open ``root/parts...`` from a descriptor of the root, never following a symlink."""
    try:
        cur = os.open(root, _O_DIR)
    except OSError as exc:
        raise InputError(
            argument, raw, f"its allowed folder cannot be opened ({exc.strerror})"
        ) from None
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                nxt = os.open(name, _O_LEAF if last else _O_DIR, dir_fd=cur)
            except OSError as exc:
                raise InputError(argument, raw, _open_problem(exc)) from None
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def open_child(argument: str, label: str, dir_fd: int, name: str, *, directory: bool) -> int:
    """Open an entry of an already-open directory without following a symlink (for the
    directory walk); regular files open non-blocking."""
    try:
        return os.open(name, _O_DIR if directory else _O_LEAF, dir_fd=dir_fd)
    except OSError as exc:
        raise InputError(argument, label, _open_problem(exc)) from None


def _open_problem(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return "changed into a symlink after it was checked; refused"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "is not readable (permission denied)"
    return f"cannot be opened ({exc.strerror})"


def ancestor_dirs(opened: Opened) -> Iterator[tuple[tuple[str, ...], int]]:
    """The directories from ``opened.root`` down to the parent of ``opened``, each as
    (its components below the root, an fd valid until the next item), opened like the
    walk: from the root's descriptor, never following a symlink. Stops quietly at the
    first one that cannot be opened (they only supply .gitignore rules)."""
    try:
        cur = os.open(opened.root, _O_DIR)
    except OSError:
        return
    try:
        for depth in range(len(opened.parts)):
            yield opened.parts[:depth], cur
            if depth == len(opened.parts) - 1:
                break
            try:
                nxt = os.open(opened.parts[depth], _O_DIR, dir_fd=cur)
            except OSError:
                return
            os.close(cur)
            cur = nxt
    finally:
        os.close(cur)
