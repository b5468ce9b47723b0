"""The narrow interface between the failover manager and a Gemini backend.

Plain frozen dataclasses and one Protocol: no SDK types cross this line, so the
manager and everything above it are testable without google.genai and without
sockets (httpx's lesson: transport at the bottom, behind a narrow interface).

Backends raise ``google.api_core.exceptions.GoogleAPICallError`` subclasses (see
``gemini_failover.gemini.errors``) and nothing else for upstream failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gemini_failover.kinds import Modality as Modality
from gemini_failover.kinds import Role as Role
from gemini_failover.kinds import ThinkingLevel as ThinkingLevel


def modality_of(mime_type: str) -> Modality:
    """The input modality a MIME type needs (text for anything textual)."""
    if mime_type == "application/pdf":
        return "pdf"
    major = mime_type.split("/", 1)[0]
    if major in ("image", "audio", "video"):
        return major  # type: ignore[return-value]  # narrowed by the membership test
    return "text"


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text or code file's content, sent as a text part labelled with its path."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Media:
    """An image, PDF, audio or video file for the model. Small files travel inline
    (``data``); large ones are uploaded through the serving endpoint's Files API from
    ``path`` (re-checked against the sandbox and ``sha256`` when read), so a failover to
    another endpoint uploads again there instead of sending a reference it cannot read."""

    label: str
    mime_type: str
    size: int
    sha256: str  # hex digest of the content: the upload cache key
    data: bytes | None = None
    path: str | None = None
    #: Estimated prompt tokens (as Gemini counts the medium), for context-window routing.
    tokens: int = 0

    @property
    def modality(self) -> Modality:
        return modality_of(self.mime_type)


Attachment = TextFile | Media


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str
    #: Files that come with this turn, sent before its text.
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Thinking:
    """How much the model should think. ``budget`` (tokens) overrides the level where
    the model takes a budget; ``include_thoughts`` asks for thought summaries."""

    level: ThinkingLevel | None = "medium"  # None: the model's own default
    budget: int | None = None
    include_thoughts: bool = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation request, independent of the model that will serve it."""

    contents: tuple[Turn, ...]
    system_instruction: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    #: A JSON Schema: ask for structured (JSON) output that validates against it.
    response_schema: Mapping[str, Any] | None = None
    #: Ground the answer in Google Search (the result carries its sources).
    google_search: bool = False
    #: http(s) pages for Gemini's URL-context tool (Gemini fetches them, never we).
    urls: tuple[str, ...] = ()
    #: The URL-context tool with the pages named in the prompt itself (as a Gemini API
    #: client writes them: the gateway), rather than listed from ``urls``.
    url_context: bool = False
    thinking: Thinking | None = None
    #: The index in ``contents`` of the user turn the ``urls`` are listed in: the
    #: question they were given with. Default: the last user turn when the request is
    #: built, so that a continuation (the request + the partial answer + "continue")
    #: and a continued conversation (its history + the new turn) keep them in place.
    urls_turn: int | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            return
        users = [i for i, t in enumerate(self.contents) if t.role == "user"]
        if self.urls_turn is None:
            if users:  # none: the URLs make a user turn of their own (gemini/content.py)
                object.__setattr__(self, "urls_turn", users[-1])
        elif self.urls_turn not in users:
            raise ValueError(f"urls_turn {self.urls_turn} is not a user turn of the request")

    @staticmethod
    def from_prompt(prompt: str, **kwargs: Any) -> GenerationRequest:
        return GenerationRequest(contents=(Turn("user", prompt),), **kwargs)

    @property
    def structured(self) -> bool:
        return self.response_schema is not None

    @property
    def uses_url_context(self) -> bool:
        """Whether the request declares Gemini's URL-context tool."""
        return self.url_context or bool(self.urls)

    def prompt_chars(self) -> int:
        n = sum(len(t.text) for t in self.contents)
        return n + len(self.system_instruction or "")

    def modalities(self) -> frozenset[Modality]:
        """The input modalities beyond text that the request's files need."""
        return frozenset(
            a.modality
            for turn in self.contents
            for a in turn.attachments
            if isinstance(a, Media) and a.modality != "text"
        )


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    thinking_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    uri: str


@dataclass(frozen=True, slots=True)
class Support:
    """A span of the answer (character offsets into its text, end exclusive) and the
    indices into ``Grounding.sources`` that support it."""

    start: int
    end: int
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Grounding:
    """What Google Search grounding returned: the queries it ran, the pages it used,
    and which span of the answer each page supports."""

    queries: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    supports: tuple[Support, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationResult:
    text: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)
    model_version: str | None = None
    grounding: Grounding | None = None
    #: Thought summaries (asked for with Thinking.include_thoughts), never in ``text``.
    thoughts: str = ""


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A text delta. The last chunk of a complete stream has ``finish_reason`` set.
    ``grounding`` offsets count from the start of this stream's text."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    grounding: Grounding | None = None
    thoughts: str = ""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``models.get`` says about a model."""

    name: str
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    supported_methods: tuple[str, ...] = ()
    #: Whether the model thinks (``Model.thinking``); None when models.get does not say.
    #: It does not say how (budget or level): see ``gemini.content``.
    thinking: bool | None = None


class Backend(Protocol):
    """One Gemini endpoint. Every method raises only GoogleAPICallError subclasses
    for upstream trouble; ``timeout`` is seconds for the whole attempt."""

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult: ...

    def stream(
        self,
        model: str,
        request: GenerationRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """``timeout``: longest wait for one chunk; ``deadline``: event-loop time
        (``loop.time()``) by which the whole stream must end."""
        ...

    async def count_tokens(
        self, model: str, contents: tuple[Turn, ...], *, timeout: float
    ) -> int: ...

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]: ...

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo: ...

    async def aclose(self) -> None: ...
