"""Stopping on SIGTERM / SIGINT only after everything is closed.

uvicorn shuts down gracefully on a signal, then raises the signal again as its
``serve()`` returns, to get the signal's default effect. That came too early for us:
SIGTERM (what Docker, Kubernetes and systemd send) killed the process before the
runtime closed (the last deferred metrics and log lines, the Redis connection, the
traces still to export), and SIGINT cancelled the runtime's close half-way. Here the
server records the signals instead; the entry point raises them again with
:func:`raise_stop_signals` once the event loop has finished, so the process still ends
as the signal says (killed by SIGTERM; SIGINT's KeyboardInterrupt, which the CLI turns
into a clean exit).

Hand-written because uvicorn has no option for it: the override is its own
``capture_signals`` without the re-raise.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

__all__ = ["deferred", "server"]

#: The signal lists of the entry points running now (innermost last).
_collectors: list[list[int]] = []


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within it, servers made by :func:`server` record the signals that stop them;
    when it ends normally (the event loop has finished, everything is closed) they are
    raised again, the last first, as uvicorn does. Wrap the entry point's event loop."""
    signals: list[int] = []
    _collectors.append(signals)
    try:
        yield
    finally:
        _collectors.remove(signals)
    for sig in reversed(signals):
        signal.raise_signal(sig)


def server(config: uvicorn.Config, *, defer_signals: bool = True) -> uvicorn.Server:
    """A uvicorn server that records the signals that stop it inside :func:`deferred`
    (see the module); uvicorn's own elsewhere, or with ``defer_signals`` False (a
    listener beside another transport, which must not hold the process up)."""
    import uvicorn
    from uvicorn.server import HANDLED_SIGNALS

    if not defer_signals or not _collectors:
        return uvicorn.Server(config)
    signals = _collectors[-1]

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield  # signals reach the main thread only
                return
            original = {sig: signal.signal(sig, self._stop) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        def _stop(self, sig: int, frame: FrameType | None) -> None:
            signals.append(sig)
            self.handle_exit(sig, frame)

    return _Server(config)
