"""Files and web pages for the generation tools: the allowed roots of each client
connection, the ``files`` argument read through the sandbox, the ``urls`` argument
checked, and what a result says about them.

**Which folders are readable.** The MCP client's roots (``roots/list``, asked on the
first call that names files and again after ``notifications/roots/list_changed``) and
the operator's ``GEMINI_FAILOVER_ALLOWED_DIRS``:

- neither: nothing is readable (the error says how to allow a folder);
- only the allowed dirs (a client without roots): those folders;
- only client roots: those folders;
- both: only what lies inside a client root *and* an allowed dir (the intersection). A
  client can narrow what the operator allowed, never widen it; and an operator who set
  the variable never has files outside it read because a client declared a broad root.

The roots are asked for through the SDK's resolver mechanism (``ListRoots``), which
works on every protocol version; they are cached per connection until the client says
they changed (a client that cannot say so is asked on every call that names files).

The sandbox (inputs/sandbox.py) is imported by the first call that reads files or
reports the roots, not when the server starts.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.mcpserver.exceptions import ToolError

from gemini_failover.inputs.settings import InputSettings
from gemini_failover.tools.models import FileIncluded, FileLeftOut, FilesOutput, LeftOutCount

if TYPE_CHECKING:
    from gemini_failover.inputs.loader import Loaded
    from gemini_failover.inputs.sandbox import Roots
    from gemini_failover.protocol import Media

log = logging.getLogger("gemini_failover.tools")

#: Gemini's URL-context tool reads at most 20 URLs per request.
MAX_URLS = 20
MAX_URL_CHARS = 2048

#: The roots of the request being served, for the upload opener: a large file is
#: re-opened through the same sandbox when it is uploaded (inside the attempt).
current_roots: contextvars.ContextVar[Roots | None] = contextvars.ContextVar(
    "gemini_failover_current_roots", default=None
)


#: The client's roots per connection (process-wide, like the connections), until the
#: client says they changed.
_CLIENT_ROOTS: weakref.WeakKeyDictionary[Any, Roots] = weakref.WeakKeyDictionary()


def _key(session: Any) -> Any:
    # The SDK builds a ServerSession per request; the connection behind it lives as
    # long as the client is connected (a private attribute, read defensively).
    return getattr(session, "_connection", session)


def roots_changed(session: Any) -> None:
    """notifications/roots/list_changed: ask the client again on the next call."""
    _CLIENT_ROOTS.pop(_key(session), None)
    log.info("the client's roots changed; they are asked for again on the next call")


def ask_roots(ctx: Any, files: Sequence[str] | None) -> Any:
    """The resolver behind the tools' hidden ``roots`` parameter: None when the call
    names no files or the client declares no roots; the cached roots of this
    connection; else the SDK's ``ListRoots`` marker, which asks the client (mid-call on
    older protocol versions, through an input-required round on 2026-07-28+, where a
    server cannot send requests of its own)."""
    if not files:
        return None
    session = ctx.request_context.session
    caps = session.client_capabilities
    if caps is None or caps.roots is None:
        return None
    cached = _CLIENT_ROOTS.get(_key(session))
    if cached is not None:
        return cached
    from mcp.server.mcpserver import ListRoots

    return ListRoots()


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def intersect(client: Roots, allowed: Roots) -> Roots:
    """The folders inside both a client root and an allowed dir (real paths, compared
    by components; a case-insensitive filesystem can only make this narrower)."""
    from gemini_failover.inputs.sandbox import Roots

    out: list[str] = []
    for c in client.dirs:
        for a in allowed.dirs:
            if _within(c, a):
                out.append(c)
            elif _within(a, c):
                out.append(a)
    return Roots(out)


@dataclass
class FileInputs:
    """The ``inputs`` settings and the roots per client connection (one per process,
    shared by every connection; cached per connection, weakly)."""

    settings: InputSettings = field(default_factory=InputSettings)
    allowed_dirs: Sequence[str] = ()
    #: Whether the client's roots may widen what is readable (stdio, in-process: the
    #: client runs on this machine, as this user). Over HTTP the client's roots name
    #: folders on *its* machine: they may only narrow the allowed dirs, and with none
    #: set nothing is readable, whatever a remote client declares.
    trust_client_roots: bool = False
    _allowed: Roots | None = None
    #: What the last call that named files could read, for the health document.
    _last: tuple[str, Roots] | None = None

    @property
    def allowed(self) -> Roots:
        if self._allowed is None:
            from gemini_failover.inputs.sandbox import Roots

            self._allowed = Roots(self.allowed_dirs)
        return self._allowed

    def roots_for(self, ctx: Any, resolved: Any) -> Roots:
        """The readable folders for this call, from what ``ask_roots`` resolved to."""
        from gemini_failover.inputs.sandbox import Roots

        if isinstance(resolved, Roots):
            self._last = ("client_roots", resolved)
            return resolved
        if resolved is None:
            self._last = ("allowed_dirs", self.allowed)
            return self.allowed
        client = self._client_roots(resolved)
        if self.allowed:
            roots = intersect(client, self.allowed)
        else:
            roots = client if self.trust_client_roots else Roots(())
        session = ctx.request_context.session
        caps = session.client_capabilities
        if caps is not None and caps.roots is not None and caps.roots.list_changed:
            # else ask on every call: the client cannot tell us of a change
            with contextlib.suppress(TypeError):  # not weakly referenceable: no cache
                _CLIENT_ROOTS[_key(session)] = roots
        self._last = ("client_roots", roots)
        return roots

    @staticmethod
    def _client_roots(result: Any) -> Roots:
        from gemini_failover.inputs.sandbox import InputError, Roots

        dirs: list[str] = []
        for root in getattr(result, "roots", ()):
            uri = str(root.uri)
            try:
                dirs.extend(Roots([uri]).dirs)
            except InputError:
                log.warning("ignoring a client root that is not a local folder: %r", uri)
        return Roots(dirs)

    def health(self) -> dict[str, Any]:
        """The effective roots for the health document."""
        source, roots = self._last or (
            ("allowed_dirs" if self.allowed else "none"),
            self.allowed,
        )
        if not roots and source == "allowed_dirs":
            source = "none"
        return {
            "source": source,
            "roots": list(roots.dirs),
            "allowed_dirs": list(self.allowed.dirs),
        }

    def opener(self, media: Media) -> AsyncIterator[bytes]:
        """Read a large file for upload: through the sandbox of the request being
        served, checked against its SHA-256 (the backend's ``opener``)."""
        from gemini_failover.inputs.upload import iter_media

        return iter_media(media, current_roots.get() or self.allowed)

    async def load(
        self, ctx: Any, files: Sequence[str] | None, resolved: Any, *, argument: str = "files"
    ) -> Loaded | None:
        """Read ``files`` (None when not given) within the roots ``resolved`` stands
        for; every problem is a ToolError naming the argument and the path, raised
        before anything goes upstream."""
        if not files:
            return None
        from gemini_failover.inputs.loader import load_files
        from gemini_failover.inputs.sandbox import InputError

        roots = self.roots_for(ctx, resolved)
        current_roots.set(roots)
        try:
            return await load_files(files, roots, self.settings, argument=argument)
        except InputError as exc:
            raise ToolError(str(exc)) from None


# -- urls ---------------------------------------------------------------------------------


def check_urls(urls: Sequence[str] | None) -> tuple[str, ...]:
    """http(s) URLs with a host, no credentials, at most ``MAX_URLS``; duplicates
    dropped. The server never fetches them: Gemini's URL-context tool does."""
    if not urls:
        return ()
    if len(urls) > MAX_URLS:
        raise ToolError(f"urls: {len(urls)} URLs; Gemini reads at most {MAX_URLS} per request")
    out: dict[str, None] = {}
    for i, url in enumerate(urls):
        out[_check_url(f"urls[{i}]", url)] = None
    return tuple(out)


def _check_url(argument: str, url: str) -> str:
    def bad(problem: str, shown: str | None = None) -> ToolError:
        return ToolError(f"{argument}: {shown if shown is not None else url!r}: {problem}")

    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise bad(f"is {len(url):,} characters; at most {MAX_URL_CHARS:,}", repr(url[:60]))
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise bad("contains spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise bad(f"is not a valid URL ({exc})") from None
    if parts.username is not None or parts.password is not None:
        # never echo the credentials back
        masked = f"'{parts.scheme}://***@{parts.hostname or ''}{parts.path}'"
        raise bad("has credentials in it; only public pages can be read", masked)
    if parts.scheme.lower() not in ("http", "https"):
        raise bad("is not an http(s) URL (Gemini's URL context reads web pages only)")
    if not parts.hostname:
        raise bad("names no host")
    return url


# -- what the result says ------------------------------------------------------------------


def files_output(loaded: Loaded | None, urls: Sequence[str] = ()) -> FilesOutput | None:
    if loaded is None and not urls:
        return None
    if loaded is None:
        return FilesOutput(urls=list(urls))
    r = loaded.report
    return FilesOutput(
        included=[
            FileIncluded(
                argument=i.argument,
                path=i.label,
                mime_type=i.mime_type,
                bytes=i.size,
                tokens=i.tokens,
                uploaded=not i.inline,
            )
            for i in r.included
        ],
        left_out=[
            FileLeftOut(argument=o.argument, path=o.label, reason=o.reason, detail=o.detail)
            for o in r.left_out
        ],
        left_out_counts=[LeftOutCount(reason=k, count=v) for k, v in r.left_out_counts.items()],
        tokens=r.tokens,
        urls=list(urls),
    )
