"""MCPServer assembly: the tools and the health resource over one failover manager.

``build_server`` does no I/O and creates no manager: the caller owns the manager (one
per process, see runtime.py), so a transport that enters the MCP lifespan once per
connection (SSE) never multiplies it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import mcp.server.mcpserver.server as sdk_server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resources import FunctionResource

from gemini_failover import __version__
from gemini_failover.tools.files import FileInputs, roots_changed
from gemini_failover.tools.handlers import HealthSource, ManagerSource, build_tools

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

    from gemini_failover.config import Settings
    from gemini_failover.resilience.manager import FailoverManager

SERVER_NAME = "gemini-failover"
_LOG_LEVELS: dict[str, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
}
HEALTH_URI = "health://status"

INSTRUCTIONS = """\
Gemini generation tools that keep working when a Gemini model does not. Every call \
goes through one failover manager: transient errors are retried, rate limits are \
waited out, a sick model's circuit breaker opens and traffic moves to the next model \
in the chain that can serve the request, and a stream that breaks is continued on the \
fallback. Each result says which model served it (served_by) and every failover.
Tools: gemini_generate (one prompt), gemini_chat (a conversation), \
gemini_generate_json (JSON validated against a schema), gemini_count_tokens, \
gemini_embed, gemini_list_models, gemini_health. An error result says what happened \
and what to do (for example how long to wait before retrying).
Read health://status (or call gemini_health) to see whether Gemini is usable now."""


def _watch_roots(server: MCPServer) -> None:
    """Ask the client for its roots again after notifications/roots/list_changed.
    MCPServer has no public hook for client notifications: registered on its low-level
    server (the public API of ``mcp.server.lowlevel.Server``)."""
    import mcp_types as types

    async def on_roots_changed(ctx: Any, params: types.NotificationParams) -> None:
        roots_changed(ctx.session)

    server._lowlevel_server.add_notification_handler(  # noqa: SLF001
        "notifications/roots/list_changed", types.NotificationParams, on_roots_changed
    )


_SWAP = threading.Lock()


def _keep_root_logging(level: str = "INFO") -> None:
    """Stands in for the SDK's configure_logging while the root logger has a handler."""


@contextlib.contextmanager
def _sdk_logging_skipped() -> Iterator[None]:
    """MCPServer() calls the SDK's ``configure_logging``: ``logging.basicConfig`` with a
    rich handler. Once the root logger has a handler (the server installs its own before
    it builds this one, see serve.py) basicConfig changes nothing, but the SDK has
    imported rich and built that handler first: about 15 ms of start-up, for nothing.
    Then it is skipped; otherwise (a library caller that has not set up logging) the
    SDK's logging is installed as always."""
    namespace = vars(sdk_server)  # where MCPServer.__init__ looks the function up
    with _SWAP:  # servers built on two threads at once must not keep the stand-in
        configure = namespace.get("configure_logging")
        if configure is None or not logging.getLogger().handlers:
            yield
            return
        namespace["configure_logging"] = _keep_root_logging
        try:
            yield
        finally:
            namespace["configure_logging"] = configure


def build_server(
    settings: Settings,
    manager: FailoverManager,
    *,
    emulator: bool = False,
    health: HealthSource | None = None,
) -> MCPServer:
    """An MCPServer with the gemini_* tools and the ``health://status`` resource, over
    a manager the caller owns (and starts and closes)."""

    async def get_manager() -> FailoverManager:
        return manager

    # an in-process client is this process: its roots are folders on this machine
    inputs = FileInputs(settings.inputs, settings.allowed_dirs, trust_client_roots=True)

    async def default_health() -> dict[str, Any]:
        from gemini_failover.server.health import health_document

        return {**health_document(manager, emulator=emulator), "files": inputs.health()}

    return assemble_server(
        get_manager, health or default_health, log_level=settings.log_level, inputs=inputs
    )


def assemble_server(
    get_manager: ManagerSource,
    health: HealthSource,
    *,
    log_level: str = "info",
    inputs: FileInputs | None = None,
) -> MCPServer:
    """The server over a manager that may still be starting: every tool call awaits
    ``get_manager()``; the resource and gemini_health await ``health()``. ``inputs``:
    the sandbox for the files argument (default: nothing readable)."""
    inputs = inputs if inputs is not None else FileInputs()
    tools: list[Tool] = list(build_tools(get_manager, health, inputs))
    with _sdk_logging_skipped():
        server: MCPServer = MCPServer(
            SERVER_NAME,
            title="Gemini with failover",
            version=__version__,
            instructions=INSTRUCTIONS,
            log_level=_LOG_LEVELS.get(log_level, "INFO"),
            tools=tools,
        )
    _watch_roots(server)

    # Conversations (conversation://{id}) and the prompts (second_opinion, ...).
    from gemini_failover.server.conversation_resource import add_conversation_resource
    from gemini_failover.server.prompts import add_prompts

    add_conversation_resource(server, get_manager)
    add_prompts(server)

    async def read_health() -> str:
        return json.dumps(await health(), indent=2)

    server.add_resource(
        FunctionResource.from_function(
            read_health,
            uri=HEALTH_URI,
            name="health",
            title="Gemini failover health",
            description="Overall status (ok / degraded / down), the active model, each "
            "model's circuit breaker, error rate, rate-limit and quota state, the last "
            "failover and its reason, the state backend, the version, and whether the "
            "server runs against the emulator. No secrets.",
            mime_type="application/json",
        )
    )
    return server
