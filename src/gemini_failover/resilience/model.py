"""One model's live state in a chain: its circuit breaker, cool-downs, profile, adaptive
admission limit (``slots``) and the gate that releases waiters after a rate limit.
Owned and changed by its :class:`~.chain.Chain`; read by the route, the attempt
bracket and the status report."""

from __future__ import annotations

from dataclasses import replace

from gemini_failover.config import Settings
from gemini_failover.protocol import ModelInfo
from gemini_failover.resilience.admission import AdaptiveLimit
from gemini_failover.resilience.breaker import CircuitBreaker, Transition
from gemini_failover.resilience.capabilities import ModelProfile, pair_profile
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.outlier import OutlierDetector
from gemini_failover.resilience.release import ReleaseGate
from gemini_failover.state import CooldownKind

ROLES = ("primary", "secondary", "tertiary", "quaternary")


def role_of(position: int) -> str:
    """Role of the model at 0-based *position* in a chain: primary, secondary,
    tertiary, quaternary, then fallback-N with N the 1-based position. The health
    document and the metrics' ``role`` label both use it."""
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")
    return ROLES[position] if position < len(ROLES) else f"fallback-{position + 1}"


class ModelState:
    __slots__ = (
        "breaker",
        "cooldowns",
        "gate",
        "gate_waiters",
        "index",
        "info",
        "learned_input_limit",
        "name",
        "outlier",
        "profile",
        "role",
        "slots",
        "waiting",
    )

    def __init__(
        self,
        name: str,
        index: int,
        settings: Settings,
        clock: Clock,
        on_transition: Transition | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.role = role_of(index)
        self.breaker = CircuitBreaker(name, settings.breaker, clock, on_transition=on_transition)
        self.outlier = OutlierDetector(settings.outlier, clock)
        #: wall-clock time each cool-down ends
        self.cooldowns: dict[CooldownKind, float] = {}
        #: what models.get said (None until a fetch succeeded); ``profile`` merges it
        #: with the configuration overrides
        self.info: ModelInfo | None = None
        self.profile: ModelProfile = pair_profile(settings, name, None)
        #: an input token limit learned from the model's own 400 (None: none learned)
        self.learned_input_limit: int | None = None
        self.slots = AdaptiveLimit(settings.concurrency)
        rl = settings.rate_limit
        self.gate = ReleaseGate(rl.release_min_rate, rl.release_max_rate)
        self.waiting = 0  # requests queued for a slot
        self.gate_waiters = 0  # requests waiting at the release gate

    def set_profile(self, profile: ModelProfile) -> None:
        """Adopt ``profile``, capped by an input token limit the model itself stated."""
        learned = self.learned_input_limit
        if learned is not None and (
            profile.input_token_limit is None or profile.input_token_limit > learned
        ):
            profile = replace(profile, input_token_limit=learned, source="learned")
        self.profile = profile

    def cooldown_left(self, kind: CooldownKind, now: float) -> float:
        until = self.cooldowns.get(kind, 0.0)
        return until - now if until > now else 0.0
