"""Gemini REST API emulator with fault injection (see docs/emulator.md).

Speaks the wire format the google-genai SDK uses (``generateContent``,
``streamGenerateContent?alt=sse``, ``countTokens``, ``batchEmbedContents``, ``models.get``
and ``models.list`` under ``/v1beta``), answers deterministically, and injects faults per
model: HTTP errors, rate limits with real token buckets, latency, hangs, cut / truncated /
failing streams, malformed, empty and blocked answers, flapping, overlapping
continuations, schema violations and auth failures. Also inline and file data, the Files
API (resumable upload), URL context, Google Search grounding, thinking, and the Vertex AI
paths (project and express mode) beside the Gemini API's, with faults per endpoint.

The Gemini wire format itself (request parsing, response and error shapes, SSE framing)
is in :mod:`gemini_failover.emulator.wire`, which knows nothing of emulated models or
faults.
"""

from .app import ABORT_SCOPE_KEY, ConnectionDropped, Emulator, RequestRecord
from .clock import Clock, ManualClock, SystemClock
from .fault_kinds import HANDLERS, FaultHandler, RequestFacts, handles
from .grounding import LEVEL_TOKENS, grounding_for, thought_summary, thoughts_tokens
from .media import media_tokens, modality_of, received_summary, url_status
from .schema import openapi_to_json_schema, value_for_schema, violating_json
from .server import EmulatorServer, EmulatorThread, run_emulator
from .spec import (
    ACTIONS,
    DEFAULT_METHODS,
    MODALITIES,
    Action,
    EndpointSpec,
    Fault,
    FilesSettings,
    ModelSettings,
    Profile,
    Scenario,
    load_scenario,
    parse_fault,
)
from .text import count_tokens, embedding_for, expected_text, overlap_start, stream_chunks_for

__all__ = [
    "ABORT_SCOPE_KEY",
    "ACTIONS",
    "DEFAULT_METHODS",
    "HANDLERS",
    "LEVEL_TOKENS",
    "MODALITIES",
    "Action",
    "Clock",
    "ConnectionDropped",
    "Emulator",
    "EmulatorServer",
    "EmulatorThread",
    "EndpointSpec",
    "Fault",
    "FaultHandler",
    "FilesSettings",
    "ManualClock",
    "ModelSettings",
    "Profile",
    "RequestFacts",
    "RequestRecord",
    "Scenario",
    "SystemClock",
    "count_tokens",
    "embedding_for",
    "expected_text",
    "grounding_for",
    "handles",
    "load_scenario",
    "media_tokens",
    "modality_of",
    "openapi_to_json_schema",
    "overlap_start",
    "parse_fault",
    "received_summary",
    "run_emulator",
    "stream_chunks_for",
    "thought_summary",
    "thoughts_tokens",
    "url_status",
    "value_for_schema",
    "violating_json",
]
