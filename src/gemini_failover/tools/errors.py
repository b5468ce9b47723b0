"""RequestFailed (every expected failure of the failover manager) -> ToolError.

The message is for the model that called the tool, and through it for a person: what
happened and what to do. Anything that is not a RequestFailed is a bug and is not
caught here (the SDK reports it as "Error executing tool ..." and logs the traceback).
"""

from __future__ import annotations

import math

from mcp.server.mcpserver.exceptions import ToolError

from gemini_failover.resilience.results import RequestFailed

#: What to do, per category, when the manager's message does not already say it.
_ADVICE: dict[str, str] = {
    "bad_request": "Change the arguments: the same call would fail again",
    "blocked": "Rephrase the request",
    "no_capable_model": "Shorten the input, or add a model that can serve it to "
    "GEMINI_FAILOVER_MODELS",
    "timeout": "Retry later, or allow more time with GEMINI_FAILOVER_TOTAL_TIMEOUT",
    "semantic": "Retry; if it keeps failing, simplify the request",
}


def tool_error(exc: RequestFailed) -> ToolError:
    """The ToolError for a failed request: the manager's message, when to retry, and
    what to do (as sentences), with every registered secret redacted."""
    message = exc.message.strip().rstrip(".")
    retry_after = exc.retry_after
    if retry_after is not None and "retry after" not in message:
        message += f"; retry after {max(1, math.ceil(retry_after))} s"
    message += "."
    advice = _ADVICE.get(exc.category)
    if exc.category == "unavailable" and retry_after is None:
        advice = "Retry shortly; gemini_health shows the state of each model"
    if advice is not None:
        message += f" {advice}."
    if exc.partial_text:
        message += (
            f" {len(exc.partial_text):,} characters of the answer had been produced before "
            "it failed (sent as progress notifications, if requested)."
        )
    from gemini_failover.observability.logging import redact_text  # structlog: not at start-up

    return ToolError(redact_text(message))
