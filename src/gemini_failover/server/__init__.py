"""MCP server assembly, the process-wide runtime, transports and their security.

Importing this package is cheap; ``build_server`` and ``Runtime`` pull in the MCP SDK
and the failover manager, never google.genai (that is imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_failover.server.app import build_server
    from gemini_failover.server.runtime import Runtime, StartupError

__all__ = ["Runtime", "StartupError", "build_server"]


def __getattr__(name: str) -> Any:
    if name == "build_server":
        from gemini_failover.server.app import build_server

        return build_server
    if name in ("Runtime", "StartupError"):
        from gemini_failover.server import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
