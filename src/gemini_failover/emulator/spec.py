"""Pydantic models of the emulator's configuration: profiles, faults and scenarios.

These are the exact shapes accepted by ``Emulator.configure``, the scenario file and the
``PUT /_emulator/models/{model}`` control endpoint (see docs/emulator.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .wire.requests import ACTIONS, Action

__all__ = [
    "ACTIONS",
    "DEFAULT_METHODS",
    "MODALITIES",
    "Action",
    "AuthFault",
    "BlockedFault",
    "EmptyFault",
    "EndpointSpec",
    "Fault",
    "FilesSettings",
    "FlapFault",
    "HangFault",
    "LatencyFault",
    "MalformedFault",
    "Modality",
    "ModelSettings",
    "OverlapFault",
    "Profile",
    "RateLimitFault",
    "Scenario",
    "SchemaViolationFault",
    "StatusFault",
    "StreamCutFault",
    "StreamErrorFault",
    "StreamTruncateFault",
    "load_scenario",
    "parse_fault",
]

#: Gemini method names that gate each action (see Profile.methods).
DEFAULT_METHODS: tuple[str, ...] = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "batchEmbedContents",
)

ErrorCode = Annotated[int, Field(ge=400, le=599)]

#: Input modalities a profile can accept (``pdf``: ``application/pdf``).
Modality = Literal["text", "image", "audio", "video", "pdf"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "audio", "video", "pdf")


class Profile(BaseModel):
    """What a model can do. Every field has a default, so ``{}`` is a valid profile."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    version: str = "001"
    input_token_limit: int = Field(1_048_576, ge=1)
    output_token_limit: int = Field(65_536, ge=1)
    json_schema: bool = True
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    stream_chunks: int = Field(8, ge=1)
    embedding_dim: int = Field(768, ge=1, le=65_536)
    input_modalities: list[Modality] = Field(default_factory=lambda: list(MODALITIES))
    url_context: bool = True
    google_search: bool = True
    thinking: Literal["none", "budget", "level"] = "budget"
    thinking_budget_min: int = Field(0, ge=0)
    thinking_budget_max: int = Field(24_576, ge=0)


class _FaultBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int | None = Field(
        None, ge=1, description="Apply to the next N requests it applies to, then drop it."
    )
    actions: list[Action] | None = Field(None, description="Only these actions (default all).")
    endpoint: str | None = Field(
        None,
        description="Only requests to this endpoint: a kind (gemini_api, vertex) or the "
        "name of a scenario endpoint (default all).",
    )


class StatusFault(_FaultBase):
    kind: Literal["status"]
    code: ErrorCode
    message: str | None = None
    status: str | None = Field(None, description="Override the status name (e.g. UNAVAILABLE).")
    retry_after: float | None = Field(None, ge=0, description="Adds RetryInfo and Retry-After.")
    quota: Literal["minute", "day"] | None = Field(None, description="Adds a QuotaFailure.")
    details: list[dict[str, Any]] | None = Field(None, description="Extra error details.")


class RateLimitFault(_FaultBase):
    kind: Literal["rate_limit"]
    rpm: float = Field(ge=0, description="Bucket size; refills rpm/60 per second (minute quota).")
    quota: Literal["minute", "day"] = "minute"
    retry_after: float | None = Field(None, ge=0, description="Override the computed delay.")
    quota_id: str | None = None
    quota_metric: str | None = None


class LatencyFault(_FaultBase):
    kind: Literal["latency"]
    ms: float = Field(0, ge=0)
    per_chunk_ms: float = Field(0, ge=0)


class HangFault(_FaultBase):
    kind: Literal["hang"]
    after: int | None = Field(None, ge=0, description="Streams: hang after this many chunks.")


class StreamCutFault(_FaultBase):
    kind: Literal["stream_cut"]
    after: int = Field(1, ge=0)


class StreamTruncateFault(_FaultBase):
    kind: Literal["stream_truncate"]
    after: int = Field(1, ge=0)


class StreamErrorFault(_FaultBase):
    kind: Literal["stream_error"]
    after: int = Field(1, ge=0)
    code: ErrorCode = 503
    message: str | None = None


class MalformedFault(_FaultBase):
    kind: Literal["malformed"]


class EmptyFault(_FaultBase):
    kind: Literal["empty"]
    variant: Literal["no_candidates", "empty_list", "no_parts"] = "no_candidates"


class BlockedFault(_FaultBase):
    kind: Literal["blocked"]
    prompt: bool = Field(False, description="Block the prompt (promptFeedback) instead.")
    reason: str | None = Field(None, description="finishReason / blockReason (default SAFETY).")


class FlapFault(_FaultBase):
    kind: Literal["flap"]
    code: ErrorCode = 503
    message: str | None = None


class OverlapFault(_FaultBase):
    kind: Literal["overlap"]
    words: int = Field(3, ge=0)


class SchemaViolationFault(_FaultBase):
    kind: Literal["schema_violation"]


class AuthFault(_FaultBase):
    kind: Literal["auth"]
    code: Literal[400, 401, 403] = 401
    message: str | None = None


Fault = Annotated[
    StatusFault
    | RateLimitFault
    | LatencyFault
    | HangFault
    | StreamCutFault
    | StreamTruncateFault
    | StreamErrorFault
    | MalformedFault
    | EmptyFault
    | BlockedFault
    | FlapFault
    | OverlapFault
    | SchemaViolationFault
    | AuthFault,
    Field(discriminator="kind"),
]

_FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)


def parse_fault(data: Any) -> Fault:
    """Validate one fault (a dict or an already-built fault model)."""
    if isinstance(data, _FaultBase):
        return data  # type: ignore[return-value]
    return _FAULT_ADAPTER.validate_python(data)


class ModelSettings(BaseModel):
    """One model's settings: body of ``PUT /_emulator/models/{model}``."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile = Field(default_factory=Profile)
    faults: list[Fault] = Field(default_factory=list)


class EndpointSpec(BaseModel):
    """A named endpoint: requests of that kind whose credentials match (every field
    given must match) are logged under, and faults addressed to, this name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["gemini_api", "vertex"]
    api_key: str | None = Field(None, description="The API key it is called with.")
    project: str | None = Field(None, description="Vertex AI project (project mode).")
    location: str | None = Field(None, description="Vertex AI location (project mode).")


class FilesSettings(BaseModel):
    """Files API limits. Uploaded bytes are hashed as they arrive and not kept, so memory
    use does not grow with the size of the files."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(2 * 1024**3, ge=1, description="Largest file (Gemini: 2 GB).")
    max_files: int = Field(10_000, ge=1, description="Files kept per emulator.")
    ttl_seconds: float = Field(48 * 3600, gt=0, description="Lifetime (Gemini: 48 hours).")


class Scenario(BaseModel):
    """A scenario file: settings per model name; ``"*"`` holds defaults for every model."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelSettings] = Field(default_factory=dict)
    serve_unknown_models: bool = True
    endpoints: list[EndpointSpec] = Field(default_factory=list)
    vertex_token: str = Field(
        "emulator-token", min_length=1, description="The OAuth token Vertex AI paths accept."
    )
    files: FilesSettings = Field(default_factory=FilesSettings)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario JSON file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return Scenario.model_validate(data)
