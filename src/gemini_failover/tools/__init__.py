"""MCP tool handlers (thin): validation, one call into the failover manager, results
with provenance. See handlers.py."""

from gemini_failover.tools.handlers import register_tools

__all__ = ["register_tools"]
