"""Settings for reading files into requests (the ``inputs`` group of the server's
settings: ``GEMINI_FAILOVER_INPUTS__INLINE_MAX_BYTES=...``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1024 * 1024


class InputSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inline_max_bytes: int = Field(
        4 * MiB,
        ge=0,
        description="A media file up to this size travels inline in the request; a larger "
        "one is uploaded through the Files API (Media.path).",
    )
    inline_total_max_bytes: int = Field(
        14 * MiB,
        ge=0,
        description="Inline media per request, in raw bytes: Gemini caps a request at 20 MB "
        "and base64 adds a third, so files past this total are uploaded instead.",
    )
    max_file_bytes: int = Field(
        100 * MiB, gt=0, description="Largest media file accepted (the Files API takes 2 GB)."
    )
    max_text_file_bytes: int = Field(
        2 * MiB, gt=0, description="Largest text or code file accepted (~500k tokens)."
    )
    max_request_bytes: int = Field(
        256 * MiB, gt=0, description="All files of one request together, in bytes."
    )
    max_files: int = Field(
        500, ge=1, description="Files in one request, after expanding directories."
    )
    max_walk_entries: int = Field(
        20_000,
        ge=1,
        description="Directory entries visited when expanding directories (per request): "
        "bounds the walk of a huge tree; the report says when it stopped early.",
    )
    max_walk_depth: int = Field(32, ge=1, description="Deepest sub-folder level walked.")
    directory_token_budget: int = Field(
        400_000,
        ge=1,
        description="Estimated tokens that files from directories may add to a request, "
        "after the files named explicitly; the rest are left out (and reported).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> InputSettings:
        if self.inline_max_bytes > self.max_file_bytes:
            raise ValueError("inline_max_bytes must not exceed max_file_bytes")
        return self
