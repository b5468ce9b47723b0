"""The backend's direct path for plain text generation: Gemini JSON over a pooled
HTTP client, without the SDK's request and response models.

A *plain* request (:func:`is_plain`) has text turns only: no files, no tools (Google
Search, URL context), no thinking config. For those, building the SDK's pydantic
request, converting it to the wire dict, sending it through the SDK's client and
validating the answer into pydantic models again costs ~1.5 ms of CPU per call, ten
times the manager's own work; this module sends the same JSON the SDK would send
(:func:`request_body`; a test compares the two on the wire) and reads only what the
manager needs from the answer (:func:`read_answer`). Everything else (files, tools,
thinking) goes through google-genai as before.

Failures leave as the same exceptions as on the SDK path: an HTTP error status or an
SSE error event is raised as the SDK's own ``APIError`` (built by the SDK from the
response, so message, status and details are the ones the SDK path reports) and
normalised by :mod:`.errors`; transport and decoding errors are httpx2's and ``json``'s,
which :mod:`.errors` already knows. An answer this reader does not model (grounding
metadata) is handed to the SDK's response parser instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from gemini_failover import json_codec
from gemini_failover.gemini.answers import grounding_of, split_parts, usage_of
from gemini_failover.protocol import GenerationRequest, GenerationResult, Usage
from gemini_failover.resilience.errors import EmptyResponse, ResponseBlocked

if TYPE_CHECKING:
    from google.genai import types as genai_types

    from gemini_failover.gemini.http1 import Response

__all__ = [
    "BLOCK_REASONS",
    "DEFAULT_BASE_URL",
    "Chunk",
    "WireClient",
    "is_plain",
    "read_answer",
    "read_chunk",
    "request_body",
]

#: The Gemini Developer API (what the SDK uses when no base URL is given).
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"

#: finish reasons that mean "the model refused", not "the model finished".
BLOCK_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


def available() -> bool:
    """Whether the direct path may be used in this environment: not when the SDK would
    talk to Vertex AI (GOOGLE_GENAI_USE_VERTEXAI: other URLs), nor through a proxy
    (the SDK's client honours the proxy variables; :mod:`.http1` does not)."""
    from gemini_failover.gemini.http1 import proxied

    vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
    return not vertex and not proxied()


def is_plain(request: GenerationRequest) -> bool:
    """Whether ``request`` can take the direct path: text turns and generation
    settings only."""
    return (
        request.thinking is None
        and not request.google_search
        and not request.uses_url_context
        and all(not turn.attachments for turn in request.contents)
    )


def request_body(request: GenerationRequest) -> bytes:
    """A plain request as the SDK puts it on the wire (same fields, same order)."""
    body: dict[str, Any] = {
        "contents": [{"parts": [{"text": t.text}], "role": t.role} for t in request.contents]
    }
    if request.system_instruction is not None:
        body["systemInstruction"] = {
            "parts": [{"text": request.system_instruction}],
            "role": "user",
        }
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_output_tokens is not None:
        config["maxOutputTokens"] = request.max_output_tokens
    if request.stop_sequences:
        config["stopSequences"] = list(request.stop_sequences)
    if request.response_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = request.response_schema
    body["generationConfig"] = config
    return json_codec.dumps(body)


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, Mapping):
        return None
    try:  # counts of another type: a malformed answer, as the SDK's parser says
        prompt = int(meta.get("promptTokenCount") or 0)
        output = int(meta.get("candidatesTokenCount") or 0)
        thinking = int(meta.get("thoughtsTokenCount") or 0)
        total = int(meta.get("totalTokenCount") or prompt + output + thinking)
    except (TypeError, ValueError):
        raise json.JSONDecodeError("usageMetadata counts are not numbers", "", 0) from None
    return Usage(prompt, output, total, thinking)


def read_answer(data: Any) -> tuple[str, str, str | None, Usage | None]:
    """(text, thoughts, finish_reason, usage) of a GenerateContentResponse's JSON;
    raises ResponseBlocked for a refusal, as the SDK path does. Anything that is not
    the response's shape raises ``json.JSONDecodeError`` (a malformed answer)."""
    if not isinstance(data, dict):
        raise json.JSONDecodeError("not a GenerateContentResponse", str(data)[:80], 0)
    feedback = data.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise ResponseBlocked(f"prompt blocked: {feedback['blockReason']}")
    usage = _usage(data.get("usageMetadata"))
    candidates = data.get("candidates")
    if not candidates or not isinstance(candidates, list):
        return "", "", None, usage
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise json.JSONDecodeError("not a Candidate", str(candidate)[:80], 0)
    reason = candidate.get("finishReason") or None
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    text: list[str] = []
    thoughts: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        piece = part.get("text") if isinstance(part, dict) else None
        if piece and isinstance(piece, str):
            (thoughts if part.get("thought") else text).append(piece)
    if reason in BLOCK_REASONS:
        raise ResponseBlocked(str(reason))
    return "".join(text), "".join(thoughts), reason, usage


def needs_sdk_reader(data: Any) -> bool:
    """Whether an answer carries what only the SDK's reader converts (grounding)."""
    if not isinstance(data, dict):
        return False
    candidates = data.get("candidates")
    return bool(
        isinstance(candidates, list)
        and candidates
        and isinstance(candidates[0], dict)
        and "groundingMetadata" in candidates[0]
    )


def sdk_response(data: dict[str, Any]) -> genai_types.GenerateContentResponse:
    """The SDK's own model of an answer (for what this module does not read)."""
    from google.genai import types

    # the reader the SDK's own client applies to an answer (model_validate refuses
    # fields newer than this SDK release; this drops them)
    return types.GenerateContentResponse._from_response(response=data, kwargs={})  # noqa: SLF001


class Chunk(NamedTuple):
    """What the backend reads from one answer or stream event."""

    text: str
    thoughts: str
    reason: str | None
    usage: Usage | None
    answered: bool  # did it carry a candidate?
    grounding: genai_types.GroundingMetadata | None = None


def sdk_chunk(response: genai_types.GenerateContentResponse) -> Chunk:
    """:class:`Chunk` of an answer in the SDK's model; raises ResponseBlocked."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise ResponseBlocked(f"prompt blocked: {feedback.block_reason.value}")
    if not response.candidates:
        return Chunk("", "", None, usage_of(response), False)
    candidate = response.candidates[0]
    reason = candidate.finish_reason.value if candidate.finish_reason else None
    text, thoughts = split_parts(candidate)
    if reason in BLOCK_REASONS:
        raise ResponseBlocked(reason or "unknown")
    return Chunk(text, thoughts, reason, usage_of(response), True, candidate.grounding_metadata)


def read_chunk(data: Any) -> Chunk:
    """:class:`Chunk` of a decoded answer (the SDK's reader for grounding metadata)."""
    if needs_sdk_reader(data):
        return sdk_chunk(sdk_response(data))
    text, thoughts, reason, usage = read_answer(data)
    return Chunk(text, thoughts, reason, usage, bool(data.get("candidates")))


class WireClient:
    """Posts Gemini JSON to one endpoint over keep-alive connections (:mod:`.http1`).
    Cheap to construct: no I/O until the first call."""

    def __init__(self, *, api_key: str, base_url: str | None, api_version: str) -> None:
        from gemini_failover.gemini.http1 import Origin

        base = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        # identity: this client does not decode gzip (the answers are small JSON)
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            "x-goog-api-key": api_key,
        }
        headers.update(_library_headers())
        self._origin = Origin(base, headers)
        self._version = f"/{api_version}/"

    def __repr__(self) -> str:  # never show the key
        return f"WireClient(host={self._origin.host!r})"

    async def aclose(self) -> None:
        self._origin.close()

    async def generate(self, model: str, request: GenerationRequest) -> GenerationResult:
        response = await self._origin.post(
            f"{self._version}{_resource(model)}:generateContent", request_body(request)
        )
        content = await response.read()
        if response.status != 200:
            _check_redirect(response)
            await _raise_for(response, content)
        data = _json(content)
        if needs_sdk_reader(data):
            result, reason = _sdk_result(data)
        else:
            text, thoughts, reason, usage = read_answer(data)
            result = GenerationResult(
                text=text,
                finish_reason=reason or "STOP",
                usage=usage or Usage(),
                model_version=data.get("modelVersion"),
                thoughts=thoughts,
            )
        if not result.text:
            raise EmptyResponse(f"{model} returned an empty answer (finish {reason})")
        return result

    async def stream(self, model: str, request: GenerationRequest) -> AsyncIterator[Any]:
        """The stream's events, decoded (dicts); an error event raises."""
        response = await self._origin.post(
            f"{self._version}{_resource(model)}:streamGenerateContent?alt=sse",
            request_body(request),
        )
        if response.status != 200:
            content = await response.read()
            _check_redirect(response)
            await _raise_for(response, content)
        body = response.stream()
        try:
            async for event in _events(body):
                data = _json(event)
                if isinstance(data, dict) and "error" in data:
                    from google.genai import errors as genai_errors

                    error = data.get("error")
                    code = error.get("code") if isinstance(error, dict) else None
                    status = code if isinstance(code, int) else 500
                    await genai_errors.APIError.raise_error_async(status, data, response)
                yield data
        finally:
            await body.aclose()


class Redirected(Exception):
    """The endpoint answered with a redirect: the call belongs on the SDK path, which
    follows redirects (this client does not)."""


def _check_redirect(response: Response) -> None:
    """307 and 308 keep the method and body: the SDK path follows them. (httpx2 turns a
    301-303 into a body-less GET, which the API refuses: that is an error either way.)"""
    if response.status in (307, 308) and "location" in response.headers:
        raise Redirected(response.status)


def _resource(model: str) -> str:
    """The model's resource name as the SDK makes it (``t_model``): names already under
    ``models/`` or ``tunedModels/`` are kept, others go under ``models/``."""
    if model.startswith(("models/", "tunedModels/")):
        return model
    return f"models/{model}"


def _json(content: bytes | str) -> Any:
    """JSON of an answer; bytes that are not JSON in UTF-8 raise ``JSONDecodeError``: a
    malformed answer (the error table's network/malformed row), as on the SDK path,
    never a bug of ours."""
    return json_codec.loads(content)


def _library_headers() -> dict[str, str]:
    """The SDK's user-agent and x-goog-api-client headers (as its own calls send)."""
    from google.genai._api_client import append_library_version_headers

    headers: dict[str, str] = {}
    append_library_version_headers(headers)
    return headers


async def _lines(body: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The body's lines, ended by CR, LF or CRLF: the SSE format's terminators, and
    only those (as the SDK splits them; U+2028 and friends may sit inside JSON)."""
    parts: list[bytes] = []  # the line being read, in pieces
    after_cr = False  # the last piece ended with CR: a leading LF completes it
    async for chunk in body:
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF cut between chunks
            after_cr = False
        if not chunk:
            continue
        after_cr = chunk.endswith(b"\r")
        if b"\n" not in chunk and b"\r" not in chunk:
            parts.append(chunk)
            continue
        lines = chunk.splitlines()  # bytes split at CR, LF and CRLF only
        tail = None if chunk.endswith((b"\r", b"\n")) else lines.pop()
        if parts:
            lines[0] = b"".join((*parts, lines[0]))
            parts = []
        for line in lines:
            yield line.decode("utf-8", "replace")
        if tail is not None:
            parts.append(tail)
    if parts:
        yield b"".join(parts).decode("utf-8", "replace")


async def _events(body: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """SSE ``data:`` payloads (and an error body sent as plain JSON lines), split as
    the SDK splits them."""
    data: list[str] = []
    raw: list[str] = []
    async for line in _lines(body):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data: "):
            data.append(line[6:])
            continue
        raw.append(line)
        joined = "\n".join(raw)
        if _balanced(joined):
            raw = []
            yield joined
    if raw:
        yield "\n".join(raw)
    if data:
        yield "\n".join(data)


def _balanced(text: str) -> bool:
    """Whether the braces of ``text`` balance, ignoring those inside strings."""
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "{":
            depth += 1
        elif not quoted and char == "}":
            depth -= 1
    return depth == 0 and "{" in text


async def _raise_for(response: Response, content: bytes) -> None:
    """Raise the SDK's APIError for an error answer, built as the SDK builds it (its
    message, status and details; the headers for Retry-After)."""
    from google.genai import errors as genai_errors

    try:
        answer: Any = json.loads(content)
    except ValueError:  # not JSON, or not UTF-8
        text = content.decode("utf-8", "replace")
        answer = {"message": text, "status": response.reason_phrase}
    await genai_errors.APIError.raise_error_async(response.status, answer, response)
    raise AssertionError("raise_error_async returned")  # pragma: no cover


def _sdk_result(data: dict[str, Any]) -> tuple[GenerationResult, str | None]:
    """An answer with grounding, read through the SDK's models: (result, finish reason)."""
    chunk = read_chunk(data)
    result = GenerationResult(
        text=chunk.text,
        finish_reason=chunk.reason or "STOP",
        usage=chunk.usage or Usage(),
        model_version=data.get("modelVersion"),
        grounding=grounding_of(chunk.grounding, chunk.text),
        thoughts=chunk.thoughts,
    )
    return result, chunk.reason
