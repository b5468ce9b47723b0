"""Metrics and logs, produced by subscribing to the failover manager's EventBus.

    metrics = ManagerMetrics(settings.models, initial_backend="redis" if redis else "memory")
    bus.subscribe(metrics.handle)
    bus.subscribe(EventLogger().handle)
    body, content_type = metrics.render()          # GET /metrics

What an event logs and which metrics it feeds is declared on the event itself
(``spec``, see ``resilience/events.py``); the metrics are the table in
``metric_defs.py``.

``configure_logging`` sends everything to stderr (stdout is the MCP stdio transport) and
redacts secrets; call ``register_secret`` for every credential as soon as it is read.
"""

from gemini_failover.observability.event_log import EventLogger
from gemini_failover.observability.log_config import configure_logging
from gemini_failover.observability.metrics import ManagerMetrics, sample_exposition
from gemini_failover.observability.redaction import redact_text, register_secret

__all__ = [
    "EventLogger",
    "ManagerMetrics",
    "configure_logging",
    "redact_text",
    "register_secret",
    "sample_exposition",
]
