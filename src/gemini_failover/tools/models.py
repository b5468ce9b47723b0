"""Structured results of the tools (their ``outputSchema``).

Every answer carries its provenance: which model served it (``served_by``), every
attempt and its outcome, every failover and why, and for generated text which model
produced which character span (a stream that broke on one model and was continued on
the next has two spans).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Attempt(_Out):
    model: str
    outcome: str = Field(description='"ok", or what went wrong: an HTTP status, "timeout", ...')


class Failover(_Out):
    from_: str = Field(alias="from", description="The model that was left.")
    to: str = Field(description="The model that took over.")
    reason: str = Field(description="Why: transient, timeout, breaker_open, quota_exhausted, ...")


class Skipped(_Out):
    model: str
    reason: str = Field(description="Why this model was not tried for this request.")


class Span(_Out):
    model: str
    start: int = Field(description="First character of the text this model produced.")
    end: int = Field(description="One past the last character.")


class TokenUsage(_Out):
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    thinking_tokens: int = 0


class Citation(_Out):
    """A source of a Google Search grounded answer and the span of the answer it
    supports (one entry per supported span and source)."""

    title: str
    uri: str
    start: int = Field(description="First character of the supported answer text.")
    end: int = Field(description="One past the last character.")


class ProvenanceOutput(_Out):
    served_by: str = Field(description="The model that produced the (end of the) answer.")
    attempts: list[Attempt] = Field(description="Every upstream call, in order.")
    failovers: list[Failover] = Field(description="Every move to another model, in order.")
    skipped: list[Skipped] = Field(
        default_factory=list, description="Models not tried (breaker open, cannot serve it, ...)."
    )
    request_id: str = Field(description="Quote it when reporting a problem: it is in the logs.")


# -- files and web pages (the files and urls arguments) --


class FileIncluded(_Out):
    argument: str = Field(description='The argument that brought it in, e.g. "files[0]".')
    path: str
    mime_type: str = Field(description="text/plain for text and code.")
    bytes: int
    tokens: int = Field(description="Estimated prompt tokens, as Gemini counts them.")
    uploaded: bool = Field(description="Sent through the Files API rather than inline.")


class FileLeftOut(_Out):
    argument: str
    path: str
    reason: str = Field(description="token_budget, binary, ignored, hidden, too_large, ...")
    detail: str


class LeftOutCount(_Out):
    reason: str
    count: int


class FilesOutput(_Out):
    included: list[FileIncluded] = Field(default_factory=list)
    left_out: list[FileLeftOut] = Field(
        default_factory=list, description="The first 200 files left out (all are counted)."
    )
    left_out_counts: list[LeftOutCount] = Field(
        default_factory=list, description="Every file left out, counted by reason."
    )
    tokens: int = Field(0, description="Estimated tokens of all the files.")
    urls: list[str] = Field(default_factory=list, description="Pages given to URL context.")


class _WithFiles(_Out):
    files: FilesOutput | None = Field(
        None, description="Which files went in and which were left out (when files or urls)."
    )


class GenerateOutput(ProvenanceOutput, _WithFiles):
    text: str = Field(description="The answer.")
    finish_reason: str = Field(description="STOP, MAX_TOKENS, ...")
    spans: list[Span] = Field(description="Which model produced which part of the text.")
    usage: TokenUsage
    citations: list[Citation] = Field(
        default_factory=list, description="Google Search sources and the spans they support."
    )
    search_queries: list[str] = Field(
        default_factory=list, description="The searches Google Search grounding ran."
    )
    thoughts: str = Field("", description="The thought summary, when include_thoughts.")
    conversation_id: str = Field(
        "", description="Pass it back as conversation_id to continue this conversation."
    )
    dropped_turns: int = Field(
        0, description="Oldest turns of the conversation dropped to fit its size cap."
    )
    conversation_note: str = Field(
        "", description="What was dropped or not saved in the conversation, if anything."
    )


class JsonOutput(ProvenanceOutput, _WithFiles):
    value: Any = Field(description="The answer: a JSON value that validates against the schema.")
    usage: TokenUsage
    thoughts: str = Field("", description="The thought summary, when include_thoughts.")


class CountTokensOutput(ProvenanceOutput, _WithFiles):
    total_tokens: int = Field(description="Tokens the text takes in the serving model.")


class EmbedOutput(ProvenanceOutput):
    embeddings: list[list[float]] = Field(description="One vector per text, in order.")
    dimensions: int = Field(description="Length of each vector.")


class ModelsOutput(_Out):
    active_model: str = Field(description="The model currently taking generation traffic.")
    models: list[dict[str, Any]] = Field(
        description="Each model in the generation and embedding chains with its role, "
        "profile (limits, features) and live state (breaker, error rate, cool-downs)."
    )


Role = Literal["user", "model"]


class ChatTurn(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description='"user" for the person, "model" for earlier Gemini answers.')
    text: str = Field(min_length=1, description="What was said in this turn.")
