"""A stop signal waits for the entry point's close, and only inside the entry point."""

from __future__ import annotations

import signal

import pytest
import uvicorn

from gemini_failover.server import stop_signals


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not served")


CONFIG = uvicorn.Config(_app, log_config=None)


def test_outside_an_entry_point_a_server_is_uvicorns_own() -> None:
    """Library use of the serve functions: uvicorn's behaviour, nothing recorded."""
    assert type(stop_signals.server(CONFIG)) is uvicorn.Server


def _serve_until_ctrl_c(order: list[str]) -> None:
    with stop_signals.deferred():
        server = stop_signals.server(CONFIG)
        assert type(server) is not uvicorn.Server
        with server.capture_signals():
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does while it serves
            assert server.should_exit  # it shuts down...
        order.append("closed")  # ...and the close runs before the signal takes effect
        assert type(stop_signals.server(CONFIG, defer_signals=False)) is uvicorn.Server


def test_a_stop_signal_is_raised_again_only_once_the_entry_point_is_done() -> None:
    order: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _serve_until_ctrl_c(order)
    assert order == ["closed"]
    assert type(stop_signals.server(CONFIG)) is uvicorn.Server  # nothing left behind
