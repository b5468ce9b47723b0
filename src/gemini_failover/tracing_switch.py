"""Whether OpenTelemetry tracing is on: read from the standard ``OTEL_*`` variables.

This module imports nothing but the standard library (and sits outside the
``observability`` package, whose ``__init__`` loads structlog and prometheus_client),
so asking costs nothing at start-up; the tracing itself
(:mod:`gemini_failover.observability.tracing`, the OpenTelemetry SDK and exporter) is
imported only when the answer is yes.

Tracing is **off** unless one of these is set (and not overridden by the two below):

- ``OTEL_TRACES_EXPORTER`` = ``otlp`` (OTLP over HTTP/protobuf) or ``console``
  (one JSON line per span on stderr);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the
  exporter is then ``otlp``).

``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off whatever else
is set. The specification's default exporter is ``otlp``; here a server with no
``OTEL_*`` setting at all traces nothing (and imports nothing for it).

The setting ``trace_content`` (``GEMINI_FAILOVER_TRACE_CONTENT=true``) additionally
records prompts and answers (``gen_ai.input.messages`` / ``gen_ai.output.messages``);
without it they never are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

#: The exporters this server builds itself (when no tracer provider is installed).
EXPORTERS: Final = ("otlp", "console")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def exporter_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The exporter tracing is configured with (``otlp``, ``console``, or another name
    given in ``OTEL_TRACES_EXPORTER``), or None when tracing is off."""
    env = os.environ if environ is None else environ
    if _flag(env.get("OTEL_SDK_DISABLED")):
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if "none" in names:
        return None
    if names:
        return names[0]
    if any(env.get(name, "").strip() for name in _ENDPOINTS):
        return "otlp"
    return None


def tracing_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when the ``OTEL_*`` variables ask for traces (see the module docstring)."""
    return exporter_name(environ) is not None


__all__ = [
    "EXPORTERS",
    "exporter_name",
    "tracing_configured",
]
