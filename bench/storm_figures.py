"""What bench/storm.py measures: one frozen dataclass of figures per scenario, with the
issue's targets as ``metrics()``. Plain data (``dataclasses.asdict`` round-trips), so
tests can assert on the fields and a run in another process can hand them over as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from bench.common import ok


@dataclass(frozen=True)
class Metric:
    name: str
    target: str
    shown: str
    passed: bool | None = None  # None: no target, shown for context

    def cell(self) -> str:
        return self.shown if self.passed is None else f"{self.shown} ({ok(self.passed)})"


class Figures(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every one is a dataclass

    @property
    def title(self) -> str: ...

    def metrics(self) -> list[Metric]: ...


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def failed(failures: dict[str, int]) -> Metric:
    shown = ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none"
    return Metric("failed calls, by category", "", shown)


@dataclass(frozen=True)
class TransientStorm:
    calls: int
    retry_after: float
    answered: int
    failures: dict[str, int]  # failed calls by RequestFailed.category (or unfinished)
    answered_by_primary: int
    fallback_calls: int
    injected_429s: int
    primary_requests: int
    waiters: int  # primary arrivals after the injected 429s (emulator log)
    peak_100ms: int  # the most of those arriving in any 100 ms window

    @property
    def title(self) -> str:
        return (
            f"transient 429 storm: {self.calls} concurrent, the primary's requests in the "
            f"first {self.retry_after:g} s (at most {self.calls}) 429 + Retry-After "
            f"{self.retry_after:g} s, deadline 90 s"
        )

    @property
    def extra_primary_per_call(self) -> float:
        return (self.primary_requests - self.injected_429s) / self.calls

    @property
    def peak_share(self) -> float:
        return share(self.peak_100ms, self.waiters)

    def metrics(self) -> list[Metric]:
        by_primary = share(self.answered_by_primary, self.calls)
        extra = self.extra_primary_per_call
        return [
            Metric("answered", "", f"{share(self.answered, self.calls):.0%}"),
            failed(self.failures),
            Metric("answered by the primary", ">= 99 %", f"{by_primary:.0%}", by_primary >= 0.99),
            Metric("fallback calls", "0", str(self.fallback_calls), self.fallback_calls == 0),
            Metric(
                "primary requests beyond the injected 429s, per call",
                "<= 1.3",
                f"{extra:.2f}",
                extra <= 1.3,
            ),
            Metric(
                "most of the waiters arriving at the primary in one 100 ms window "
                "after the cool-down",
                "<= 25 %",
                f"{self.peak_share:.0%} ({self.peak_100ms} of {self.waiters})",
                self.waiters > 0 and self.peak_share <= 0.25,
            ),
        ]


@dataclass(frozen=True)
class PersistentLimit:
    calls: int
    fallback_rpm: int
    deadline: float
    answered: int
    failures: dict[str, int]  # failed calls by RequestFailed.category (or unfinished)
    fallback_calls: int
    fallback_429s: int
    failed_with_retry_after: int

    @property
    def title(self) -> str:
        return (
            f"persistent 429 on the primary, fallback at {self.fallback_rpm} rpm: "
            f"{self.calls} concurrent, deadline {self.deadline:g} s"
        )

    @property
    def can_carry(self) -> int:
        """Requests the fallback's bucket can admit before the deadline: full at first
        use (``rpm`` tokens), then rpm/60 more per second."""
        return min(self.calls, self.fallback_rpm + int(self.fallback_rpm * self.deadline / 60))

    def metrics(self) -> list[Metric]:
        carried = share(self.answered, self.can_carry)
        rejected = share(self.fallback_429s, self.fallback_calls)
        return [
            Metric(
                f"answered, of what the fallback can carry ({self.can_carry})",
                ">= 90 %",
                f"{carried:.0%} ({self.answered})",
                carried >= 0.9,
            ),
            Metric(
                "fallback 429s, of its calls",
                "<= 5 %",
                f"{rejected:.0%} ({self.fallback_429s} of {self.fallback_calls})",
                rejected <= 0.05,
            ),
            failed(self.failures),
            Metric("failed calls that carry a retry_after", "", str(self.failed_with_retry_after)),
        ]


@dataclass(frozen=True)
class Flapping:
    calls: int
    per_second: float | None  # None: all at once
    answered: int
    failures: dict[str, int]  # failed calls by RequestFailed.category (or unfinished)
    switches: int  # changes of served_by across answered calls, in completion order
    primary_requests: int
    answered_by_primary: int

    @property
    def title(self) -> str:
        pace = f"{self.per_second:g} started per second" if self.per_second else "all at once"
        return f"50 % flapping primary (200/503 alternating): {self.calls} calls, {pace}"

    def metrics(self) -> list[Metric]:
        answered = share(self.answered, self.calls)
        return [
            Metric("answered", "100 %", f"{answered:.1%}", self.answered == self.calls),
            Metric(
                "switches of the serving model", "<= 10", str(self.switches), self.switches <= 10
            ),
            Metric(
                "primary requests", "<= 60", str(self.primary_requests), self.primary_requests <= 60
            ),
            Metric("answered by the primary", "", str(self.answered_by_primary)),
            failed(self.failures),
        ]


@dataclass(frozen=True)
class MinuteStorm:
    calls: int
    rpm: int
    deadline: float
    primary_requests: int
    answered: int
    failures: dict[str, int]  # failed calls by RequestFailed.category (or unfinished)
    answered_by_primary: int
    fallback_calls: int

    @property
    def title(self) -> str:
        return (
            f"per-minute storm: rpm {self.rpm} on the primary, {self.calls} concurrent, "
            f"deadline {self.deadline:g} s"
        )

    def metrics(self) -> list[Metric]:
        return [
            Metric(
                "primary requests", "<= 18", str(self.primary_requests), self.primary_requests <= 18
            ),
            Metric(
                "answered (by the primary)",
                "",
                f"{self.answered} of {self.calls} ({self.answered_by_primary})",
            ),
            Metric("fallback calls", "", str(self.fallback_calls)),
            failed(self.failures),
        ]


@dataclass(frozen=True)
class Oversized:
    prompt_tokens: int
    fallback_window: int
    fits: tuple[str, ...]  # the models whose window takes the prompt
    first: str  # who answered the first call, or "failed: <category>"
    second: str

    @property
    def title(self) -> str:
        return (
            f"first prompt ({self.prompt_tokens} tokens) bigger than the fallback's window "
            f"({self.fallback_window}), primary down, limits not fetched yet"
        )

    def metrics(self) -> list[Metric]:
        return [
            Metric(
                "first call answered by a model that fits",
                "yes",
                self.first,
                self.first in self.fits,
            ),
            Metric("second call", "", self.second),
        ]


@dataclass(frozen=True)
class Throughput:
    calls: int
    concurrency: int
    managed_per_s: float
    direct_per_s: float
    managed_failed: int
    #: the same with a small inline image per request (the manager's SDK path)
    sdk_managed_per_s: float | None = None
    sdk_direct_per_s: float | None = None

    @property
    def title(self) -> str:
        return f"no faults: {self.calls:,} calls at {self.concurrency} concurrent"

    @property
    def ratio(self) -> float:
        return self.managed_per_s / self.direct_per_s

    def metrics(self) -> list[Metric]:
        return [
            Metric(
                "throughput vs a direct google-genai client (same run, alternating)",
                ">= 0.95x",
                f"{self.ratio:.2f}x",
                self.ratio >= 0.95,
            ),
            Metric(
                "manager / direct", "", f"{self.managed_per_s:.0f} / {self.direct_per_s:.0f} req/s"
            ),
            *self._sdk_path(),
            Metric("failed manager calls", "0", str(self.managed_failed), self.managed_failed == 0),
        ]

    def _sdk_path(self) -> list[Metric]:
        if self.sdk_managed_per_s is None or self.sdk_direct_per_s is None:
            return []
        ratio = self.sdk_managed_per_s / self.sdk_direct_per_s
        return [
            Metric(
                "the same with an inline image per request (the manager's SDK path)",
                ">= 0.95x",
                f"{ratio:.2f}x",
                ratio >= 0.95,
            ),
            Metric(
                "manager / direct, with the image",
                "",
                f"{self.sdk_managed_per_s:.0f} / {self.sdk_direct_per_s:.0f} req/s",
            ),
        ]
