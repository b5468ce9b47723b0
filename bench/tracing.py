"""What OpenTelemetry tracing costs per call, off and on, interleaved in one run.

    python -m bench.tracing [--calls 1000]

Off (no OTEL_* variables): the server registers no subscriber, no middleware and no
log processor, so the request path is the plain manager's; the "off" row compares a
manager built as with tracing off against a bare one (the same code: an A/A
comparison, whose difference is the machine's noise). On: the EventBus subscriber
and a request span per call, with an SDK tracer provider and a batch processor whose
exporter drops the spans (the export runs in the processor's thread, off the
request path).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench.common import Row, emulator_process, interleave, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.observability import tracing
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.tracing_switch import tracing_configured


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def measure(base_url: str, calls: int) -> str:
    settings = load_settings(
        api_key="bench", base_url=base_url, models=["bench-primary", "bench-fallback"]
    )
    request = GenerationRequest.from_prompt("How much does a trace cost?")

    def manager() -> FailoverManager:
        return FailoverManager(settings, GeminiBackend(api_key="bench", base_url=base_url))

    bare, off, on = manager(), manager(), manager()
    assert not tracing_configured({})  # "off" is what a server without OTEL_* builds
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    on.events.subscribe(tracing.Tracing(provider).handle)

    async def one_bare() -> float:
        t0 = time.perf_counter()
        await bare.generate(request)
        return time.perf_counter() - t0

    async def one_off() -> float:
        t0 = time.perf_counter()
        await off.generate(request)
        return time.perf_counter() - t0

    async def one_on() -> float:
        t0 = time.perf_counter()
        with tracing.request_span("generate_content", "bench-primary", provider=provider):
            await on.generate(request)
        return time.perf_counter() - t0

    for _ in range(50):  # warm up every path
        await one_bare()
        await one_off()
        await one_on()
    offs, bares = await interleave(one_off, one_bare, calls)
    ons, bares_2 = await interleave(one_on, one_bare, calls)
    for m in (bare, off, on):
        await m.aclose()
    provider.shutdown()

    mb, moff, mon, mb2 = median(bares), median(offs), median(ons), median(bares_2)
    off_us, on_us = (moff - mb) * 1e6, (mon - mb2) * 1e6
    rows = [
        Row("median per call, no tracing", f"{mb * 1e3:.3f} ms", "", "", "", ""),
        # An A/A comparison (the same code): it shows this machine's noise.
        Row("added per call, tracing off (A/A)", f"{off_us:.0f} us", "", f"{moff / mb:.3f}x"),
        Row(
            "added per call, tracing on",
            f"{on_us:.0f} us",
            "",
            f"{mon / mb2:.3f}x",
            "<= 1.15x",
            ok(mon / mb2 <= 1.15),
        ),
        Row("p99 per call, tracing on", f"{pct(ons, 99) * 1e3:.3f} ms", "", "", "", ""),
    ]
    return table(f"Tracing cost ({calls} calls each, interleaved)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with emulator_process() as url:
        print(asyncio.run(measure(url, args.calls)))


if __name__ == "__main__":
    main()
