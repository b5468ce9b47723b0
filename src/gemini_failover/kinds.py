"""The Literal types the settings and the protocol share, in a module that costs
nothing to import: the settings (read before the server answers ``initialize``) need
``Modality`` without loading the protocol's dataclasses, which only the request path
uses. :mod:`gemini_failover.protocol` re-exports them."""

from __future__ import annotations

from typing import Literal

Role = Literal["user", "model"]
#: What a model must be able to read for a request: its profile lists the ones it takes.
Modality = Literal["text", "image", "audio", "video", "pdf"]
ThinkingLevel = Literal["off", "low", "medium", "high"]

__all__ = ["Modality", "Role", "ThinkingLevel"]
