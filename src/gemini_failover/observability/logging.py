"""Logging for the server, in three parts re-exported here:

- :mod:`~gemini_failover.observability.redaction`: the registry of secrets and the
  structlog processors that keep them (and secret-shaped text) out of every line;
- :mod:`~gemini_failover.observability.log_config`: structlog and stdlib logging
  configured as one, to stderr (stdout carries the MCP stdio transport);
- :mod:`~gemini_failover.observability.event_log`: the EventBus subscriber that logs
  every event as the event declares it.
"""

from gemini_failover.observability.event_log import EventLogger, LoggerLike
from gemini_failover.observability.log_config import (
    SDK_LOGGERS,
    LogFormat,
    configure_logging,
    parse_level,
)
from gemini_failover.observability.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    is_sensitive_key,
    redact_event_dict,
    redact_text,
    redact_value,
    register_secret,
)

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SDK_LOGGERS",
    "EventLogger",
    "LogFormat",
    "LoggerLike",
    "configure_logging",
    "is_sensitive_key",
    "parse_level",
    "redact_event_dict",
    "redact_text",
    "redact_value",
    "register_secret",
]
