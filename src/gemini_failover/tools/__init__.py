"""MCP tool handlers (thin): validation, one call into the failover manager, results
with provenance. See handlers.py."""

from gemini_failover.tools.handlers import build_tools

__all__ = ["build_tools"]
