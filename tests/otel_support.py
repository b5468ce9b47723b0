"""One in-memory OpenTelemetry tracer provider for the whole test session.

The OpenTelemetry API allows the global tracer provider to be set once per process,
so every tracing test shares this one and clears its exporter first. The server's
set-up (``start_tracing``) finds an SDK provider already installed and uses it.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
_provider: TracerProvider | None = None


def install() -> InMemorySpanExporter:
    """The session's exporter, emptied; installs the provider on first use."""
    global _provider
    if _provider is None:
        _provider = TracerProvider()
        _provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(_provider)
    EXPORTER.clear()
    return EXPORTER


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def roots(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The spans called *name* that have no parent."""
    return [s for s in named(spans, name) if s.parent is None]


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    """The direct children of *parent*, in the order they ended (attempts: the order
    of their AttemptFinished events)."""
    assert parent.context is not None
    parent_id = parent.context.span_id
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]
    return sorted(found, key=lambda s: s.end_time or 0)
