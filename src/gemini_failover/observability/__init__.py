"""Metrics and logs, produced by subscribing to the failover manager's EventBus.

    metrics = ManagerMetrics(settings.models, initial_backend="redis" if redis else "memory")
    bus.subscribe(metrics.handle)
    bus.subscribe(EventLogger().handle)
    body, content_type = metrics.render()          # GET /metrics

``configure_logging`` sends everything to stderr (stdout is the MCP stdio transport) and
redacts secrets; call ``register_secret`` for every credential as soon as it is read.
"""

from gemini_failover.observability.logging import (
    EventLogger,
    configure_logging,
    redact_text,
    register_secret,
)
from gemini_failover.observability.metrics import ManagerMetrics, sample_exposition

__all__ = [
    "EventLogger",
    "ManagerMetrics",
    "configure_logging",
    "redact_text",
    "register_secret",
    "sample_exposition",
]
