"""Settings: environment variables, an optional TOML file, and defaults, in that order.

Every threshold is a named setting with a default and a reason (Polly / Resilience4j
style). Nested groups are reachable from the environment with ``__``:
``GEMINI_FAILOVER_BREAKER__BREAK_SECONDS=10``, because Claude Desktop passes a stdio
server nothing but its ``env`` block. A bad value fails at start-up with a message
that names the setting; the API key and the bearer token are ``SecretStr`` and are
never printed.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "GEMINI_FAILOVER_"

#: URL schemes redis-py's from_url accepts.
REDIS_SCHEMES = ("redis", "rediss", "unix")


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
        10.0,
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
        256,
        ge=1,
        description="Starting admission limit (in-flight calls) of each model; it adapts "
        "(AIMD) between min_per_model and max_per_model.",
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


ContinuationPolicy = Literal["continue", "restart", "fail"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEMINI_FAILOVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_by_name=True,  # load_settings(api_key=...) in code; env: the aliases only
    )

    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        description="Gemini API key (GEMINI_API_KEY or GOOGLE_API_KEY).",
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gemini-pro-latest", "gemini-flash-latest"],
        description="The failover chain, primary first (comma-separated).",
    )
    embedding_models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gemini-embedding-001"],
        description="The embedding chain: its own chain, so vectors never mix spaces.",
    )
    base_url: str | None = Field(
        None, description="Send SDK traffic here instead of Google (an emulator or a proxy)."
    )
    api_version: str = Field("v1beta", description="Gemini API version.")
    attempt_timeout: float = Field(30.0, gt=0, description="One attempt's timeout (s).")
    stream_idle_timeout: float = Field(
        20.0, gt=0, description="Longest wait (s) between two chunks of a stream."
    )
    total_timeout: float = Field(
        90.0, gt=0, description="Deadline (s) for a whole request, retries and failovers included."
    )
    continuation: ContinuationPolicy = Field(
        "continue", description="What to do when a stream breaks after text was sent."
    )
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    outlier: OutlierSettings = OutlierSettings()
    concurrency: ConcurrencySettings = ConcurrencySettings()
    http: HttpSettings = HttpSettings()
    model_overrides: dict[str, ModelOverride] = Field(
        default_factory=dict, description="Per-model capability overrides."
    )
    redis_url: SecretStr | None = Field(
        None, description="Share model state through this Redis (redis://host:port/db)."
    )
    redis_prefix: str = Field("gemini-failover", min_length=1, description="Redis key prefix.")
    redis_resync_seconds: float = Field(
        5.0, gt=0, description="Full state resync period from Redis (pub/sub covers the rest)."
    )
    auth_token: SecretStr | None = Field(
        None, description="Bearer token required on HTTP transports (and /metrics)."
    )
    host: str = Field("127.0.0.1", description="Bind address for HTTP transports.")
    port: int = Field(8000, ge=0, le=65535, description="Port for HTTP transports.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Standalone /metrics port (for stdio)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON otherwise."
    )

    @field_validator("models", "embedding_models", mode="before")
    @classmethod
    def _split_chain(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list):
            value = [str(v).strip() for v in value if str(v).strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here with urllib rather than redis-py's parser, so that start-up does
        # not import redis; the rules are redis-py's (from_url). The URL itself is
        # never quoted back: it may carry a password.
        if value is None:
            return None
        url = value.get_secret_value().strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(
                "not a Redis URL: it must start with redis://, rediss:// or unix:// "
                "(for example redis://localhost:6379/0)"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("the Redis URL names no host (for example redis://localhost:6379/0)")
        if parts.scheme != "unix" and parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ValueError("the database in the Redis URL must be a number (…/0)")
        return SecretStr(url)

    @model_validator(mode="after")
    def _check_chain(self) -> Settings:
        for name, chain in (("models", self.models), ("embedding_models", self.embedding_models)):
            env = ENV_PREFIX + name.upper()
            if not chain:
                raise ValueError(f"{name} ({env}): the chain needs at least one model")
            if len(set(chain)) != len(chain):
                raise ValueError(f"{name} ({env}): duplicate model in the chain {chain}")
        if self.attempt_timeout > self.total_timeout:
            raise ValueError(
                "attempt_timeout (GEMINI_FAILOVER_ATTEMPT_TIMEOUT) must not exceed "
                "total_timeout (GEMINI_FAILOVER_TOTAL_TIMEOUT)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (the TOML file, see load_settings) < environment: env wins, so a
        # Claude Desktop `env` block can override a shared config file.
        return env_settings, init_settings


class ConfigError(Exception):
    """A setting is invalid; the message (one line) names it and its variable."""


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Environment, then ``config_file`` (TOML), then ``overrides``, then defaults."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(_one_line(f"config file {path}: {exc}")) from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # a variable that should hold JSON does not
        raise ConfigError(_describe_settings_error(exc)) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def env_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ENV_PREFIX + "__".join(str(p) for p in loc).upper()


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a check across settings: its message names them
            lines.append(message)
            continue
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"{where} ({env_name(err['loc'])}): {message}")
    return _one_line("invalid configuration: " + "; ".join(lines))


def _describe_settings_error(exc: SettingsError) -> str:
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else "a setting"
    cause = exc.__cause__
    detail = f" ({cause})" if cause is not None else ""
    env = env_name([field]) if found else "its environment variable"
    return _one_line(
        f"invalid configuration: {field} ({env}): not valid JSON{detail}; for example "
        f"{env}='{_JSON_EXAMPLES.get(field, '{}')}'"
    )


_JSON_EXAMPLES = {
    "model_overrides": '{"gemini-pro-latest": {"input_token_limit": 1048576}}',
    "retry": '{"max_attempts_per_model": 3}',
    "breaker": '{"break_seconds": 15}',
    "rate_limit": '{"spill_fraction": 0}',
    "concurrency": '{"per_model": 64}',
}


def _known_variables() -> tuple[set[str], set[str]]:
    """Every GEMINI_FAILOVER_* name the settings read, and the prefixes of free-form
    nested ones (model_overrides is keyed by model name)."""
    names: set[str] = set()
    prefixes: set[str] = set()
    for name, field in Settings.model_fields.items():
        if name == "api_key":
            continue
        env = env_name([name])
        names.add(env)
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names.update(env_name([name, sub]) for sub in group.model_fields)
        elif name == "model_overrides":
            prefixes.add(env + "__")
    return names, prefixes


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for every GEMINI_FAILOVER_* variable that is not a setting (a typo
    would otherwise be ignored without a word)."""
    names, prefixes = _known_variables()
    warnings = []
    for raw in sorted(os.environ if environ is None else environ):
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in names:
            continue
        if any(name.startswith(p) for p in prefixes):
            continue
        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{raw} is not a setting and is ignored{hint}")
    return warnings
