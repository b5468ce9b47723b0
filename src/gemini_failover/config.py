"""Settings: environment variables, an optional TOML file, and defaults, in that order.

Every threshold is a named setting with a default and a reason (Polly / Resilience4j
style). Nested groups are reachable from the environment with ``__``:
``GEMINI_FAILOVER_BREAKER__BREAK_SECONDS=10``, because Claude Desktop passes a stdio
server nothing but its ``env`` block. A bad value fails at start-up with a message
that names the setting; the API key and the bearer token are ``SecretStr`` and are
never printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
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

from gemini_failover import pairs
from gemini_failover.inputs.settings import InputSettings
from gemini_failover.settings_groups import (
    BreakerSettings,
    ConcurrencySettings,
    ConversationSettings,
    Credential,
    EndpointSettings,
    HttpSettings,
    ModelOverride,
    OutlierSettings,
    RateLimitSettings,
    RetrySettings,
)

ENV_PREFIX = "GEMINI_FAILOVER_"

#: URL schemes redis-py's from_url accepts.
REDIS_SCHEMES = ("redis", "rediss", "unix")


ContinuationPolicy = Literal["continue", "restart", "fail"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEMINI_FAILOVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_by_name=True,  # load_settings(api_key=...) in code; env: the aliases only
    )

    api_key: Credential | None = Field(
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
    endpoints: dict[str, EndpointSettings] = Field(
        default_factory=dict,
        description="Named endpoints (quota pools) the chain's endpoint:model entries use; "
        'the implicit "gemini" endpoint is GEMINI_API_KEY with base_url and api_version.',
    )
    default_endpoint: str | None = Field(
        None, description='The endpoint bare model names in the chains mean (default "gemini").'
    )
    endpoint_auth_cooldown: float = Field(
        300.0,
        gt=0,
        description="How long an endpoint whose credentials were rejected (401/403, an "
        "invalid key) is left out of the chain when another endpoint can serve.",
    )
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
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Short names for chain models in the tools' `model` argument, "
        'e.g. {"pro": "gemini-2.5-pro"}; "pro" and "flash" default to the first chain '
        "model whose name says so.",
    )
    # Conversation threads (conversation_id): TTL and size cap; kept in Redis when
    # redis_url is set, else in this process.
    conversations: ConversationSettings = ConversationSettings()
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
    gateway_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys clients of the Gemini-compatible gateway must send "
        "(comma-separated; never forwarded upstream). Empty: no key check, loopback only.",
    )
    gateway_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["auto"],
        description="Model names the gateway routes to the start of a chain (comma-separated).",
    )
    gateway_port: int = Field(8080, ge=0, le=65535, description="Port of the gateway.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON otherwise."
    )
    # -- inputs: files the tools may read (the sandbox) --
    inputs: InputSettings = InputSettings()
    allowed_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders files may be read from (absolute, separated by ':'; ';' on "
        "Windows). When the MCP client declares roots, only what is inside both is readable.",
    )
    trace_content: bool = Field(
        False,
        description="Record prompts and answers on OpenTelemetry spans (off: never recorded).",
    )

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            from gemini_failover.inputs.sandbox import parse_allowed_dirs

            value = parse_allowed_dirs(value)
        if isinstance(value, list):
            for d in value:
                if not isinstance(d, str) or not os.path.isabs(d) or "\x00" in d:
                    raise ValueError(f"{d!r} is not an absolute folder path")
        return value

    @field_validator("models", "embedding_models", "gateway_keys", "gateway_aliases", mode="before")
    @classmethod
    def _split_chain(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list):
            value = [str(v).strip() for v in value if str(v).strip()]
        return value

    @field_validator("endpoints", mode="before")
    @classmethod
    def _check_endpoint_names(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name in value:
                if not isinstance(name, str) or not pairs.ENDPOINT_NAME.fullmatch(name):
                    raise ValueError(
                        f"{name!r} is not an endpoint name (lower case letters, digits, "
                        "'_' and '-', starting with a letter)"
                    )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The shape is checked with urllib (clear messages), then redis-py's own parser
        # has the last word (query options such as socket_timeout=abc); redis is only
        # imported when a URL is set, and then the server needs it anyway. Neither the
        # URL nor a parser's message is ever quoted back: both may carry the password.
        if value is None:
            return None
        url = value.get_secret_value().strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("not a valid URL (check the port and the characters)") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(
                "not a Redis URL: it must start with redis://, rediss:// or unix:// "
                "(for example redis://localhost:6379/0)"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("the Redis URL names no host (for example redis://localhost:6379/0)")
        if parts.scheme != "unix" and parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ValueError("the database in the Redis URL must be a number (…/0)")
        from redis.connection import parse_url

        try:
            parse_url(url)
        except (ValueError, TypeError):
            raise ValueError(
                "redis-py cannot read this URL (check its query options, e.g. "
                "socket_timeout must be a number)"
            ) from None
        return SecretStr(url)

    @model_validator(mode="after")
    def _check_chain(self) -> Settings:
        table = self.endpoint_table()
        default = self.default_endpoint_name
        configured = ", ".join(sorted(table))
        if default not in table:
            raise ValueError(
                f"default_endpoint (GEMINI_FAILOVER_DEFAULT_ENDPOINT): {default!r} is not a "
                f"configured endpoint (configured: {configured})"
            )
        for name, chain in (("models", self.models), ("embedding_models", self.embedding_models)):
            env = ENV_PREFIX + name.upper()
            if not chain:
                raise ValueError(f"{name} ({env}): the chain needs at least one model")
            keys = [pairs.canonical(k, default) for k in chain]
            for key in keys:
                if not pairs.url_safe(pairs.model_of(key)):
                    raise ValueError(
                        f"{name} ({env}): {pairs.model_of(key)!r} is not a model name "
                        "(visible ASCII characters without '?', '#' or '%', and no '.' "
                        "or '..' between slashes)"
                    )
                endpoint = pairs.endpoint_of(key, default)
                if endpoint not in table:
                    raise ValueError(
                        f"{name} ({env}): {key!r} names the endpoint {endpoint!r}, which is "
                        f"not configured (configured: {configured}; see "
                        f"{ENV_PREFIX}ENDPOINTS)"
                    )
            if len(set(keys)) != len(keys):
                raise ValueError(f"{name} ({env}): duplicate model in the chain {keys}")
            object.__setattr__(self, name, keys)  # the canonical spelling of each pair
        # overrides and alias targets may spell a pair on the default endpoint in full
        overrides: dict[str, ModelOverride] = {}
        for key, override in self.model_overrides.items():
            canonical = pairs.canonical(key, default)
            if canonical in overrides:
                raise ValueError(
                    f"model_overrides ({ENV_PREFIX}MODEL_OVERRIDES): {key!r} names the same "
                    f"pair as another entry ({canonical!r})"
                )
            overrides[canonical] = override
        object.__setattr__(self, "model_overrides", overrides)
        aliases = {a: pairs.canonical(t, default) for a, t in self.model_aliases.items()}
        object.__setattr__(self, "model_aliases", aliases)
        if self.attempt_timeout > self.total_timeout:
            raise ValueError(
                "attempt_timeout (GEMINI_FAILOVER_ATTEMPT_TIMEOUT) must not exceed "
                "total_timeout (GEMINI_FAILOVER_TOTAL_TIMEOUT)"
            )
        return self

    # -- endpoints -------------------------------------------------------------------

    @property
    def default_endpoint_name(self) -> str:
        """The endpoint a bare model name in a chain is served by."""
        return self.default_endpoint or pairs.IMPLICIT_ENDPOINT

    def endpoint_table(self) -> dict[str, EndpointSettings]:
        """Every endpoint: the configured ones and, unless one of them is named so,
        the implicit ``gemini`` endpoint (GEMINI_API_KEY, base_url, api_version)."""
        table = dict(self.endpoints)
        if pairs.IMPLICIT_ENDPOINT not in table:
            table[pairs.IMPLICIT_ENDPOINT] = EndpointSettings(
                kind="gemini_api",
                api_key=self.api_key,
                base_url=self.base_url,
                api_version=self.api_version,
            )
        return table

    def endpoints_in_use(self) -> dict[str, EndpointSettings]:
        """The endpoints the chains name, in chain order."""
        table, default = self.endpoint_table(), self.default_endpoint_name
        used = dict.fromkeys(
            pairs.endpoint_of(k, default) for k in (*self.models, *self.embedding_models)
        )
        return {name: table[name] for name in used}

    def endpoints_without_credentials(self) -> list[str]:
        """The endpoints in use with no API key (Vertex AI in project mode falls back
        on Application Default Credentials, so it never appears here)."""
        return [
            name
            for name, endpoint in self.endpoints_in_use().items()
            if endpoint.kind == "gemini_api"
            and not (endpoint.api_key and endpoint.api_key.get_secret_value().strip())
        ]

    def pointed_at(self, base_url: str, api_key: str, vertex_token: str) -> Settings:
        """These settings with every endpoint sent to ``base_url`` (the emulator):
        missing API keys become ``api_key``, Vertex AI project mode uses
        ``vertex_token``."""
        endpoints = {}
        for name, endpoint in self.endpoints.items():
            update: dict[str, Any] = {"base_url": base_url}
            if endpoint.kind == "gemini_api" and endpoint.api_key is None:
                update["api_key"] = SecretStr(api_key)
            elif endpoint.kind == "vertex" and endpoint.api_key is None:
                update["access_token"] = SecretStr(vertex_token)
            endpoints[name] = endpoint.model_copy(update=update)
        return self.model_copy(
            update={"base_url": base_url, "api_key": SecretStr(api_key), "endpoints": endpoints}
        )

    def override_for(self, key: str) -> ModelOverride | None:
        """The capability overrides of a chain entry: those given for the pair, over
        those given for its bare model name (which apply on every endpoint)."""
        exact = self.model_overrides.get(key)
        bare = self.model_overrides.get(pairs.model_of(key))
        if exact is None or bare is None or exact is bare:
            return exact or bare
        merged = {**bare.model_dump(exclude_none=True), **exact.model_dump(exclude_none=True)}
        return ModelOverride(**merged)

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
        import tomllib  # only for a config file (start-up reads none by default)

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
        raise ConfigError(describe_error(exc)) from None
    except SettingsError as exc:  # a variable that should hold JSON does not
        raise ConfigError(_describe_settings_error(exc)) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def env_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ENV_PREFIX + "__".join(str(p) for p in loc).upper()


def describe_error(exc: ValidationError) -> str:
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
    "model_aliases": '{"pro": "gemini-2.5-pro", "flash": "gemini-2.5-flash"}',
    "retry": '{"max_attempts_per_model": 3}',
    "breaker": '{"break_seconds": 15}',
    "rate_limit": '{"spill_fraction": 0}',
    "concurrency": '{"per_model": 64}',
    "inputs": '{"inline_max_bytes": 4194304}',
    "endpoints": '{"vertex": {"kind": "vertex", "project": "my-project", '
    '"location": "us-central1"}}',
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
        elif name in ("model_overrides", "endpoints"):
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
        import difflib  # only for a variable that is not a setting

        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{raw} is not a setting and is ignored{hint}")
    return warnings


__all__ = [
    "ENV_PREFIX",
    "REDIS_SCHEMES",
    "BreakerSettings",
    "ConcurrencySettings",
    "ConfigError",
    "ContinuationPolicy",
    "ConversationSettings",
    "EndpointSettings",
    "HttpSettings",
    "InputSettings",
    "ModelOverride",
    "OutlierSettings",
    "RateLimitSettings",
    "RetrySettings",
    "Settings",
    "describe_error",
    "env_name",
    "load_settings",
    "unknown_variables",
]
