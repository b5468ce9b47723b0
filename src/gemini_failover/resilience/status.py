"""The engine's state as typed values: what ``FailoverManager.status()`` returns and
the health document and the ``gemini_list_models`` tool are built from.

``as_dict`` gives the JSON shape those emit (keys in field order)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gemini_failover.resilience.results import FailoverRecord
from gemini_failover.state import StoreHealth


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    state: str  # closed / half_open / open
    reason: str
    trips: int
    open_for_s: float  # 0 unless open


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    input_token_limit: int | None
    output_token_limit: int | None
    json_schema: bool
    function_calling: bool
    system_instruction: bool
    source: str  # "models.get", "config", "defaults", "learned" (from the model's 400)
    # -- inputs: what the model reads besides text, and the URL-context tool --
    input_modalities: tuple[str, ...] = ("text", "image", "audio", "video", "pdf")
    url_context: bool = True
    google_search: bool = True
    thinking: str = "budget"  # "none", "budget", "level"


@dataclass(frozen=True, slots=True)
class ModelStatus:
    model: str
    role: str  # primary, secondary, ...; embedding-primary, ... in the embedding chain
    active: bool  # the model taking generation traffic now
    breaker: BreakerStatus
    error_rate: float
    calls_in_window: int
    rate_limited_for_s: float
    quota_exhausted_for_s: float
    unavailable_for_s: float
    profile: ProfileStatus
    #: the endpoint (quota pool) serving this pair, and how long it is left out after
    #: its credentials were rejected
    endpoint: str = "gemini"
    endpoint_down_for_s: float = 0.0

    @property
    def usable(self) -> bool:
        """Can this model take a request now (possibly as a half-open probe)?"""
        return (
            self.breaker.state != "open"
            and not self.quota_exhausted_for_s
            and not self.unavailable_for_s
            and not self.endpoint_down_for_s
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ManagerStatus:
    active_model: str
    primary_model: str
    models: tuple[ModelStatus, ...]  # the generation chain, in order
    embedding_models: tuple[ModelStatus, ...]
    last_failover: FailoverRecord | None
    store: StoreHealth
