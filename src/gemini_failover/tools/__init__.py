"""MCP tool handlers (thin): strict arguments (arguments.py), one call into the failover
manager (calls.py), and what the model reads (render.py). See handlers.py."""

from gemini_failover.tools.handlers import build_tools

__all__ = ["build_tools"]
