"""configure_logging / redaction / EventLogger: secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
import sys
import typing
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog

from gemini_failover.observability.logging import (
    REDACTED,
    SDK_LOGGERS,
    EventLogger,
    configure_logging,
    is_sensitive_key,
    redact_text,
    register_secret,
)
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.events import (
    ActiveModelChanged,
    AdmissionChanged,
    AttemptFinished,
    AuthFailure,
    BreakerTransition,
    CapabilityRequested,
    ContinuationEvent,
    Event,
    EventBus,
    FailoverEvent,
    GateWaiters,
    ModelSkipped,
    ModelUnavailable,
    QuotaExhausted,
    RateLimitWait,
    RequestFinished,
    RequestShed,
    RetryBudgetExhausted,
    RetryScheduled,
    SemanticFailure,
    StateBackendHealth,
)

#: Registered once: the set is process-wide by design.
CANARY = "canary-" + uuid.uuid4().hex
assert register_secret(CANARY)

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
GOOGLE_KEY = "AIza" + "SyB3xAmPlEkEy0123456789abcdefghijkl"  # 39 chars, key-shaped, unregistered
assert len(GOOGLE_KEY) == 39

Configure = Callable[..., io.StringIO]


class TTYStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging into a StringIO; restores the root logger afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_sdk = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    saved_structlog = structlog.get_config()

    def _configure(
        level: str = "debug", fmt: Any = "json", stream: io.StringIO | None = None
    ) -> io.StringIO:
        out = stream if stream is not None else io.StringIO()
        configure_logging(level, fmt, out)
        return out

    yield _configure
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved_sdk.items():
        logging.getLogger(name).setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.configure(**saved_structlog)


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


class Opaque:
    def __repr__(self) -> str:
        return f"Opaque(token={CANARY})"


def emit_everywhere() -> None:
    """Put the canary (and unregistered key-shaped secrets) everywhere a log can carry."""
    log = structlog.get_logger("gemini_failover.test")
    structlog.contextvars.bind_contextvars(session_note=f"ctx {CANARY}")
    log.info(f"message with {CANARY}", model=PRO, max_tokens=512)
    log.info("positional %s", CANARY, model=PRO)
    log.warning(
        "fields",
        model=PRO,
        note=CANARY,
        api_key="unregistered-api-key-value",
        headers={"Authorization": "Bearer unregistered-bearer-tok", "x-goog-api-key": GOOGLE_KEY},
        nested={"a": [1, {"b": f"deep {CANARY}"}], "t": (CANARY,), CANARY: "as a key"},
        url=f"https://generativelanguage.googleapis.com/v1beta/models?key={GOOGLE_KEY}",
        redis_url="redis://default:unregistered-redis-pw@cache:6379/0",
        raw=CANARY.encode(),
        obj=Opaque(),
        err=ValueError(f"bad value {CANARY}"),
    )
    try:
        try:
            raise KeyError(CANARY)
        except KeyError as inner:
            raise RuntimeError(f"wrapped {CANARY}") from inner
    except RuntimeError:
        log.exception("structlog exception", model=PRO)
        logging.getLogger("some.library").error("stdlib %s", CANARY, exc_info=True)
    logging.getLogger("uvicorn.error").warning(f"stdlib message {CANARY}")
    logging.getLogger("google_genai").warning("sdk says key=%s", GOOGLE_KEY)
    logging.getLogger("httpx").warning(
        "HTTP Request: POST https://x/v1beta/models/m:generateContent?key=%s", CANARY
    )
    EventLogger().handle(AuthFailure(PRO, "401", f"API key {CANARY} not valid"))


# -- redaction end to end -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_canary_never_reaches_the_output(configure: Configure, fmt: str) -> None:
    out = configure("debug", fmt)
    emit_everywhere()
    text = out.getvalue()
    for secret in (
        CANARY,
        GOOGLE_KEY,
        "unregistered-api-key-value",
        "unregistered-bearer-tok",
        "unregistered-redis-pw",
    ):
        assert secret not in text, f"{secret!r} leaked in {fmt} output"
    assert REDACTED in text
    # what is not secret survives
    for visible in (PRO, "512", "cache:6379", "generativelanguage.googleapis.com", "auth_failure"):
        assert visible in text
    assert "Traceback" in text
    assert "RuntimeError" in text


def test_json_output_is_one_json_object_per_line(configure: Configure) -> None:
    out = configure("debug", "json")
    emit_everywhere()
    records = json_lines(out)
    assert len(records) == 9
    for record in records:
        assert {"event", "level", "timestamp", "logger"} <= record.keys()
        assert CANARY not in json.dumps(record)
    fields = next(r for r in records if r["event"] == "fields")
    assert fields["model"] == PRO
    assert fields["api_key"] == REDACTED
    assert fields["note"] == REDACTED
    assert fields["headers"] == {"Authorization": REDACTED, "x-goog-api-key": REDACTED}
    assert fields["nested"]["a"] == [1, {"b": f"deep {REDACTED}"}]
    assert fields["redis_url"] == f"redis://default:{REDACTED}@cache:6379/0"
    assert fields["session_note"] == f"ctx {REDACTED}"
    first = records[0]
    assert first["max_tokens"] == 512
    assert first["event"] == f"message with {REDACTED}"
    stdlib = next(r for r in records if r["logger"] == "some.library")
    assert stdlib["level"] == "error"
    assert stdlib["event"] == f"stdlib {REDACTED}"
    assert "wrapped" in stdlib["exception"]
    assert "KeyError" in stdlib["exception"]


def test_timestamps_are_iso_utc(configure: Configure) -> None:
    from datetime import datetime

    out = configure("info", "json")
    structlog.get_logger("t").info("one")
    logging.getLogger("t.stdlib").warning("two")
    records = json_lines(out)
    assert len(records) == 2
    for record in records:
        stamp = datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() == timedelta(0)


# -- format choice, stream, levels, idempotence --------------------------------------------


def test_auto_renders_json_when_not_a_tty(configure: Configure) -> None:
    out = configure("info", "auto")
    structlog.get_logger("t").info("hello", model=PRO)
    assert json_lines(out)[0]["event"] == "hello"


def test_auto_renders_for_humans_on_a_tty(configure: Configure) -> None:
    out = configure("info", "auto", TTYStringIO())
    structlog.get_logger("t").info("hello", model=PRO)
    text = out.getvalue()
    assert "hello" in text
    assert PRO in text
    assert "\x1b[" in text  # colours on a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_json_forced_on_a_tty(configure: Configure) -> None:
    out = configure("info", "json", TTYStringIO())
    structlog.get_logger("t").info("hello")
    assert json_lines(out)[0]["event"] == "hello"


def test_console_forced_off_a_tty_has_no_colours(configure: Configure) -> None:
    out = configure("info", "console")
    structlog.get_logger("t").info("hello", model=PRO)
    text = out.getvalue()
    assert "hello" in text
    assert "\x1b[" not in text


def test_default_stream_is_stderr_and_stdout_stays_clean(
    configure: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")  # no stream: stderr
    structlog.get_logger("t").warning("to stderr", model=PRO)
    logging.getLogger("mcp.server").warning("stdlib to stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "to stderr" in captured.err
    assert "stdlib to stderr" in captured.err


def test_stdout_is_refused(configure: Configure) -> None:
    with pytest.raises(ValueError, match="stdout"):
        configure_logging("info", "json", sys.stdout)


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "xml")])
def test_bad_arguments_are_rejected(configure: Configure, level: str, fmt: Any) -> None:
    with pytest.raises(ValueError, match="unknown"):
        configure_logging(level, fmt, io.StringIO())


def test_level_filters_structlog_and_stdlib(configure: Configure) -> None:
    out = configure("warning", "json")
    log = structlog.get_logger("t")
    log.info("hidden info")
    log.debug("hidden debug")
    log.warning("shown warning")
    logging.getLogger("uvicorn.error").info("hidden stdlib info")
    logging.getLogger("uvicorn.error").error("shown stdlib error")
    assert [r["event"] for r in json_lines(out)] == ["shown warning", "shown stdlib error"]


def test_sdk_loggers_stay_at_warning_even_in_debug(configure: Configure) -> None:
    out = configure("debug", "json")
    for name in ("google_genai", "httpx", "mcp"):
        logging.getLogger(f"{name}.inner").info("chatty %s", name)
        logging.getLogger(name).warning("important %s", name)
    logging.getLogger("uvicorn.error").info("app info passes")
    events = [r["event"] for r in json_lines(out)]
    assert events == [
        "important google_genai",
        "important httpx",
        "important mcp",
        "app info passes",
    ]


def test_configuring_twice_does_not_duplicate_output(configure: Configure) -> None:
    before = len(logging.getLogger().handlers)
    configure("info", "json")
    out = configure("info", "json")
    assert len(logging.getLogger().handlers) == before + 1
    structlog.get_logger("t").info("once")
    logging.getLogger("x").warning("once too")
    assert [r["event"] for r in json_lines(out)] == ["once", "once too"]


def test_reconfiguring_moves_output_to_the_new_stream(configure: Configure) -> None:
    log = structlog.get_logger("t")
    first = configure("info", "json")
    log.info("first")
    second = configure("info", "json")
    log.info("second")
    assert [r["event"] for r in json_lines(first)] == ["first"]
    assert [r["event"] for r in json_lines(second)] == ["second"]


# -- redaction units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", "Authorization"),
        ("{'authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz", "authorization"),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9", "sent bearer"),
        ("x-goog-api-key: k-123456789", "k-123456789", "x-goog-api-key"),
        ('{"x-goog-api-key": "k-123456789"}', "k-123456789", "x-goog-api-key"),
        ("GET /v1beta/models?key=abcdef123&alt=sse", "abcdef123", "alt=sse"),
        ("POST /x?alt=sse&key=abcdef123", "abcdef123", "alt=sse"),
        ("token=t0ps3cret password=hunter22", "t0ps3cret", "token="),
        ("token=t0ps3cret password=hunter22", "hunter22", "password="),
        (f"the key {GOOGLE_KEY} leaked", GOOGLE_KEY, "leaked"),
        ("redis://:pw-only-9@h:6379/0", "pw-only-9", "h:6379/0"),
        ("rediss://user:p%40ss@redis.internal:6380", "p%40ss", "redis.internal:6380"),
        ("oauth ya29.a0AfH6SMBexampleexampleexample", "a0AfH6SMBexample", "oauth"),
    ],
)
def test_patterns_redact(text: str, gone: str, kept: str) -> None:
    redacted = redact_text(text)
    assert gone not in redacted
    assert kept in redacted
    assert REDACTED in redacted
    assert redact_text(redacted) == redacted  # idempotent: it runs twice per line


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=512 tokens=3 cache_key=abc",
        "missing bearer token",
        "http://localhost:8000/mcp",
        "http://host:8080/path@v1",
        "model gemini-2.5-pro answered in 1.2 s",
        "authorization failed for the request",
    ],
)
def test_patterns_leave_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apikey",
        "key",
        "token",
        "auth_token",
        "Authorization",
        "x-goog-api-key",
        "password",
        "redis_password",
        "client_secret",
        "secret",
        "refresh_token",
        "credentials",
        "cookie",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    ["max_tokens", "token_count", "tokens", "model", "keyword", "monkey", "redis_url", "event"],
)
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_register_secret_refuses_too_short_values() -> None:
    assert not register_secret("")
    assert not register_secret("ab ")
    assert redact_text("ab ab") == "ab ab"


def test_registered_secret_is_also_redacted_url_encoded() -> None:
    secret = f"p@ss/w0rd!{uuid.uuid4().hex[:8]}"
    assert register_secret(secret)
    assert register_secret(secret)  # twice is fine
    from urllib.parse import quote

    assert secret not in redact_text(f"plain {secret} text")
    assert quote(secret, safe="") not in redact_text(f"/x?q={quote(secret, safe='')}&a=1")


def test_longer_secret_wins_over_its_prefix() -> None:
    short = "prefix-" + uuid.uuid4().hex[:6]
    long = short + "-and-more"
    register_secret(short)
    register_secret(long)
    assert redact_text(f"[{long}]") == f"[{REDACTED}]"


# -- EventLogger ----------------------------------------------------------------------------


class FakeLogger:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str) -> Callable[..., None]:
        def log(event: str, **kw: Any) -> None:
            self.calls.append((level, event, kw))

        return log

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level in ("debug", "info", "warning", "error"):
            return self._record(level)
        raise AttributeError(level)


EVENT_LOG_CASES: list[tuple[Event, str, str, dict[str, Any]]] = [
    (
        FailoverEvent("r1", PRO, FLASH, "transient"),
        "warning",
        "failover",
        {"request_id": "r1", "from_model": PRO, "to_model": FLASH, "reason": "transient"},
    ),
    (
        BreakerTransition(PRO, "closed", "open", "5 failures", 1),
        "warning",
        "circuit_breaker_transition",
        {"model": PRO, "to_state": "open", "reason": "5 failures"},
    ),
    (
        BreakerTransition(PRO, "open", "half_open", "break over", 1),
        "info",
        "circuit_breaker_transition",
        {"model": PRO, "from_state": "open", "to_state": "half_open"},
    ),
    (
        BreakerTransition(PRO, "half_open", "closed", "probes ok", 1, remote=True),
        "info",
        "circuit_breaker_transition",
        {"to_state": "closed", "remote": True},
    ),
    (
        RequestShed("r2", PRO, "deadline", 12.5),
        "warning",
        "request_shed",
        {"request_id": "r2", "model": PRO, "reason": "deadline", "retry_after_s": 12.5},
    ),
    (
        AuthFailure(PRO, "403", "permission denied"),
        "error",
        "auth_failure",
        {
            "model": PRO,
            "status": "403",
            "category": "auth",
            "upstream_message": "permission denied",
        },
    ),
    (QuotaExhausted(PRO, 0.0), "warning", "quota_exhausted", {"model": PRO}),
    (ModelUnavailable(FLASH, 0.0), "warning", "model_unavailable", {"model": FLASH}),
    (
        ContinuationEvent("r3", PRO, FLASH, 420, "transient", 12),
        "info",
        "stream_continued",
        {"request_id": "r3", "at_char": 420, "overlap_trimmed": 12, "to_model": FLASH},
    ),
    (
        StateBackendHealth("redis", False, "connection refused"),
        "warning",
        "state_backend_health",
        {"backend": "redis", "healthy": False, "detail": "connection refused"},
    ),
    (
        RateLimitWait("r4", PRO, 3.25),
        "debug",
        "rate_limit_wait",
        {"request_id": "r4", "model": PRO, "wait_s": 3.25},
    ),
    (
        AdmissionChanged(PRO, 8, 8, 3),
        "debug",
        "admission_changed",
        {"model": PRO, "limit": 8, "in_flight": 8, "queued": 3},
    ),
    (
        GateWaiters(PRO, 5),
        "debug",
        "gate_waiters",
        {"model": PRO, "waiters": 5},
    ),
    (
        RetryScheduled("r5", PRO, Category.TIMEOUT, 0.4),
        "debug",
        "retry_scheduled",
        {"model": PRO, "category": "timeout", "wait_s": 0.4},
    ),
    (
        CapabilityRequested("r6", "google_search", FLASH, "ok"),
        "debug",
        "capability_requested",
        {"request_id": "r6", "capability": "google_search", "served_by": FLASH, "outcome": "ok"},
    ),
    (
        RequestFinished("r6", "generate", FLASH, "ok", 2.5, 1),
        "debug",
        "request_finished",
        {"request_id": "r6", "served_by": FLASH, "outcome": "ok", "failovers": 1},
    ),
    (
        AttemptFinished("r7", PRO, "503", Category.TRANSIENT, 0.25, "stream"),
        "debug",
        "attempt_finished",
        {"model": PRO, "status": "503", "category": "transient", "operation": "stream"},
    ),
    (
        RetryBudgetExhausted("r8", PRO),
        "warning",
        "retry_budget_exhausted",
        {"request_id": "r8", "model": PRO},
    ),
    (
        ModelSkipped("r9", PRO, "breaker_open"),
        "debug",
        "model_skipped",
        {"model": PRO, "reason": "breaker_open"},
    ),
    (
        SemanticFailure("r10", FLASH, "schema"),
        "info",
        "semantic_failure",
        {"model": FLASH, "kind": "schema"},
    ),
    (
        ActiveModelChanged(FLASH, PRO),
        "info",
        "active_model_changed",
        {"model": FLASH, "previous": PRO},
    ),
]


def test_event_log_cases_cover_every_event_type() -> None:
    assert {type(case[0]) for case in EVENT_LOG_CASES} == set(typing.get_args(Event))


@pytest.mark.parametrize(
    ("event", "level", "name", "fields"),
    EVENT_LOG_CASES,
    ids=[f"{type(case[0]).__name__}-{case[1]}" for case in EVENT_LOG_CASES],
)
def test_each_event_logs_its_name_level_and_fields(
    event: Event, level: str, name: str, fields: dict[str, Any]
) -> None:
    fake = FakeLogger()
    EventLogger(fake).handle(event)
    assert len(fake.calls) == 1
    got_level, got_name, got_fields = fake.calls[0]
    assert (got_level, got_name) == (level, name)
    assert fields.items() <= got_fields.items()


def test_auth_failure_tells_the_operator_what_to_do() -> None:
    fake = FakeLogger()
    EventLogger(fake).handle(AuthFailure(PRO, "401", "API key not valid"))
    action = fake.calls[0][2]["action"]
    assert "credentials" in action
    assert "GEMINI_API_KEY" in action


def test_quota_reset_time_is_readable() -> None:
    fake = FakeLogger()
    EventLogger(fake).handle(QuotaExhausted(PRO, 1_767_225_600.0))
    assert fake.calls[0][2]["until"] == "2026-01-01T00:00:00+00:00"


def test_backend_health_logs_changes_only() -> None:
    fake = FakeLogger()
    events = EventLogger(fake)
    events.handle(StateBackendHealth("redis", True, "ok"))
    events.handle(StateBackendHealth("redis", True, "ok"))
    events.handle(StateBackendHealth("redis", False, "timeout"))
    events.handle(StateBackendHealth("redis", False, "timeout"))
    events.handle(StateBackendHealth("redis", True, "reconnected"))
    levels = [(level, kw["healthy"]) for level, _, kw in fake.calls]
    assert levels == [("info", True), ("warning", False), ("info", True)]


def test_unknown_events_are_ignored() -> None:
    fake = FakeLogger()
    EventLogger(fake).handle(object())  # type: ignore[arg-type]  # deliberately not an event
    assert fake.calls == []


def test_event_logger_through_real_logging(configure: Configure) -> None:
    out = configure("info", "json")
    bus = EventBus()
    bus.subscribe(EventLogger().handle)
    bus.publish(AttemptFinished("r1", PRO, "ok", None, 0.5, "generate"))  # debug: filtered
    bus.publish(RetryScheduled("r1", PRO, Category.TRANSIENT, 0.2))  # debug: filtered
    bus.publish(FailoverEvent("r1", PRO, FLASH, "transient"))
    bus.publish(AuthFailure(FLASH, "401", f"key {CANARY} rejected"))
    records = json_lines(out)
    assert [(r["event"], r["level"]) for r in records] == [
        ("failover", "warning"),
        ("auth_failure", "error"),
    ]
    assert records[0]["request_id"] == "r1"
    assert records[0]["logger"] == "gemini_failover.events"
    assert records[1]["upstream_message"] == f"key {REDACTED} rejected"
    assert CANARY not in out.getvalue()
