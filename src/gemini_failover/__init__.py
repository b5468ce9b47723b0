"""gemini-failover-mcp: an MCP server for Gemini with a failover manager underneath."""

__version__ = "0.1.0"
