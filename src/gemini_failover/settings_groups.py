"""The nested settings groups (``[breaker]``, ``GEMINI_FAILOVER_BREAKER__...``) and the
per-model overrides: plain pydantic models that :class:`gemini_failover.config.Settings`
is made of (kept apart so that each module stays one readable page)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from gemini_failover.kinds import Modality


def _header_safe(secret: SecretStr) -> SecretStr:
    """A credential is sent in an HTTP header: surrounding whitespace (a pasted key's
    newline) is dropped, and anything but visible ASCII inside it is refused here, with
    the value not shown, rather than failing every call or splitting a request head."""
    value = secret.get_secret_value().strip()
    if any(not "!" <= char <= "~" for char in value):
        raise ValueError("must be visible ASCII characters only (the value is not shown)")
    return SecretStr(value)


#: An API key or token (it goes into a request header).
Credential = Annotated[SecretStr, AfterValidator(_header_safe)]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Group):
    max_attempts_per_model: int = Field(
        3,
        ge=1,
        le=10,
        description="Attempts on one model (first try included) before failing over.",
    )
    backoff_initial: float = Field(
        0.2, gt=0, description="First backoff (s); doubles each retry, full jitter."
    )
    backoff_max: float = Field(5.0, gt=0, description="Cap on one backoff wait (s).")
    budget_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Retries allowed as a fraction of recent requests: stops retry storms.",
    )
    budget_min_per_second: float = Field(
        2.0, ge=0, description="Retries always allowed per second, so quiet servers can retry."
    )
    budget_window: float = Field(10.0, gt=0, description="Window (s) the retry budget counts over.")
    semantic_retries: int = Field(
        1, ge=0, le=3, description="Same-model retries of an empty or schema-invalid answer."
    )


class BreakerSettings(_Group):
    failure_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Failure (or slow-call) rate in the window that opens it."
    )
    window_seconds: float = Field(30.0, gt=0, description="Sliding window for the failure rate.")
    minimum_throughput: int = Field(
        10, ge=1, description="Calls needed in the window before the rate is trusted."
    )
    consecutive_failures: int = Field(
        5, ge=1, description="Consecutive failures that open it regardless of the rate."
    )
    slow_call_seconds: float = Field(
        20.0, gt=0, description="A success slower than this counts as a slow call."
    )
    break_seconds: float = Field(
        15.0, gt=0, description="How long it stays open before half-open probes."
    )
    max_break_seconds: float = Field(
        300.0, gt=0, description="Cap on the break after repeated trips (doubles each trip)."
    )
    half_open_probes: int = Field(
        3, ge=1, description="Probe calls admitted at once while half-open."
    )
    required_successes: int = Field(
        3, ge=1, description="Successful probes needed (with sustained health) to close it."
    )
    sustained_health_seconds: float = Field(
        10.0, ge=0, description="How long probes must stay healthy before it closes: no flapping."
    )
    reset_trips_after: float = Field(
        600.0, gt=0, description="Closed this long without trouble: the break duration resets."
    )


class OutlierSettings(_Group):
    """Outlier ejection (Envoy's outlier detection), counted per attempt, retries
    included: a model that fails a large share of its calls is ejected (its breaker
    opened) even when retries hide the failures from the user."""

    consecutive_errors: int = Field(
        5, ge=1, description="Consecutive failed attempts that eject the model."
    )
    failure_percentage: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Share of failed attempts over the interval that ejects the model.",
    )
    minimum_requests: int = Field(
        10, ge=1, description="Attempts in the interval before the share is trusted."
    )
    interval: float = Field(10.0, gt=0, description="Window (s) the share is counted over.")


class RateLimitSettings(_Group):
    spill_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of requests that spill to the next capable model at once while "
        "the model's Retry-After still fits max_wait (0: they all wait; spilling past "
        "max_wait is always on, through the next model's admission limit).",
    )
    default_retry_after: float = Field(
        1.0, gt=0, description="Wait (s) after a 429 that names no retry delay."
    )
    max_wait: float = Field(
        10.0,
        ge=0,
        description="Longest Retry-After (s) a request waits out on the same model (not a "
        "retry: no retry budget spent); longer, or past the deadline: the next model.",
    )
    release_min_rate: float = Field(
        1.0,
        gt=0,
        description="Calls/s released after a cool-down's probe succeeds, at least (or "
        "1 / Retry-After when higher); +that much per success until a 429.",
    )
    release_max_rate: float = Field(
        1000.0, gt=0, description="Release rate (calls/s) at which pacing ends."
    )
    spill_start_rate: float = Field(
        4.0,
        gt=0,
        description="Requests spilled onto a model that is not paced start at this rate "
        "(calls/s), +that per success until its first 429 (slow start).",
    )
    day_quota_reprobe: float = Field(
        900.0,
        gt=0,
        description="A per-day quota with no usable RetryInfo cools down until the next "
        "midnight America/Los_Angeles, re-probed this often (s) to notice a raised quota.",
    )


class ConcurrencySettings(_Group):
    per_model: int = Field(
        16,
        ge=1,
        description="Starting admission limit (in-flight calls) of a model whose health is "
        "not proven yet: at start-up and back from an ejection. It adapts (AIMD) between "
        "min_per_model and max_per_model: +1 per success while calls queue (slow start: "
        "it doubles per round trip), x decrease_factor on a 429 or a slow call.",
    )
    min_per_model: int = Field(1, ge=1, description="Floor of the adaptive admission limit.")
    max_per_model: int = Field(1024, ge=1, description="Ceiling of the adaptive admission limit.")
    decrease_factor: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="The limit is multiplied by this on a 429 or a slow call of the model.",
    )
    max_waiting: int = Field(
        256, ge=0, description="Requests allowed to queue for a slot before shedding."
    )


class HttpSettings(_Group):
    """Limits of the HTTP and SSE transports (and the --metrics-port listener)."""

    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers."
    )
    idle_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    max_connections: int = Field(
        512, ge=1, description="Open connections; more are closed as they are accepted."
    )
    max_sessions: int = Field(
        100, ge=1, description="Open MCP sessions (streamable HTTP or SSE); more get 503."
    )


class ModelOverride(_Group):
    """Feature flags and limits that ``models.get`` does not report (or that you
    want to pin). Unset fields fall back to what the API says, then to defaults."""

    input_token_limit: int | None = Field(None, ge=1)
    output_token_limit: int | None = Field(None, ge=1)
    json_schema: bool | None = None
    function_calling: bool | None = None
    system_instruction: bool | None = None
    # -- inputs (files, web pages) --
    input_modalities: list[Modality] | None = Field(
        None, description='What the model reads besides text, e.g. ["text", "image", "pdf"].'
    )
    url_context: bool | None = Field(None, description="Takes the URL-context tool (urls).")
    # -- search grounding and thinking (issue 16) --
    google_search: bool | None = None
    #: How the model takes thinking settings: "none", "budget" or "level".
    thinking: Literal["none", "budget", "level"] | None = None
    thinking_budget_min: int | None = Field(None, ge=0)
    thinking_budget_max: int | None = Field(None, ge=0)
    #: Whether thinking can be turned off (budget 0, level MINIMAL).
    thinking_off: bool | None = None


EndpointKind = Literal["gemini_api", "vertex"]


class EndpointSettings(_Group):
    """One endpoint: a quota pool the chain's ``endpoint:model`` entries are served by.

    ``gemini_api``: the Gemini API with ``api_key`` (``base_url``: a proxy or the
    emulator). ``vertex``: Vertex AI, either in express mode (``api_key``) or with
    ``project`` and ``location``, authenticated by ``access_token`` (a fixed OAuth token:
    the emulator's, or ``gcloud auth print-access-token``) or else by Application
    Default Credentials."""

    kind: EndpointKind = "gemini_api"
    api_key: Credential | None = Field(None, description="API key (Gemini API; Vertex express).")
    base_url: str | None = Field(None, description="Send this endpoint's traffic here instead.")
    api_version: str | None = Field(
        None, description="API version (default: v1beta for the Gemini API, the SDK's for Vertex)."
    )
    project: str | None = Field(None, min_length=1, description="Vertex AI project.")
    location: str | None = Field(None, min_length=1, description="Vertex AI location.")
    access_token: Credential | None = Field(
        None, description="A fixed OAuth bearer token for Vertex AI (instead of ADC)."
    )

    @model_validator(mode="after")
    def _check_kind(self) -> EndpointSettings:
        if self.kind == "gemini_api":
            extra = [n for n in ("project", "location", "access_token") if getattr(self, n)]
            if extra:
                raise ValueError(f"a gemini_api endpoint takes no {', '.join(extra)}")
            return self
        if self.api_key is not None:
            if self.project or self.location or self.access_token:
                raise ValueError(
                    "a vertex endpoint takes either api_key (express mode) or project and "
                    "location, not both"
                )
        elif not (self.project and self.location):
            raise ValueError(
                "a vertex endpoint needs project and location (or api_key for express mode)"
            )
        return self

    @property
    def express(self) -> bool:
        return self.kind == "vertex" and self.api_key is not None


# (defined here, used by the state package: config imports nothing of it)
class ConversationSettings(BaseModel):
    """How long threads live and how big they may grow (``conversations`` group)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_seconds: float = Field(
        86_400.0, gt=0, description="A thread is kept this long after its last use (24 h)."
    )
    max_turns: int = Field(
        40,
        ge=2,
        description="Turns kept per thread (user and model each count); oldest exchanges go.",
    )
    max_bytes: int = Field(
        1_048_576,
        ge=4096,
        description="Stored size (bytes of JSON) kept per thread; oldest exchanges go.",
    )
    inline_media_bytes: int = Field(
        65_536,
        ge=0,
        description="Media up to this size are stored inline; larger ones by path and sha256.",
    )
    id_in_text: bool = Field(
        True,
        description="End a generation tool's text with one short line naming its "
        "conversation_id, so a client that shows the calling model only the text can "
        "continue the thread (off: structuredContent only).",
    )
    memory_max_conversations: int = Field(
        1000,
        ge=1,
        description="Threads the in-process store keeps; the least recently used go first.",
    )

    @property
    def max_exchanges(self) -> int:
        return self.max_turns // 2
