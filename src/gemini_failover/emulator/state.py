"""The emulator's model settings: profiles and live faults per model, lock-guarded.

``"*"`` holds the defaults: its profile serves every model that is not configured, and
its faults apply to every model after the model's own faults.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .decisions import Decision, Delay
from .fault_kinds import RequestFacts
from .faults import ActiveFault
from .spec import Fault, Profile, Scenario, parse_fault
from .wire.requests import normalise_model

__all__ = ["STAR", "ModelTable", "as_scenario"]

STAR = "*"
_DEFAULT_PROFILE = Profile()


def as_scenario(scenario: Scenario | Mapping[str, Any] | None) -> Scenario:
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    return Scenario.model_validate(dict(scenario))


@dataclass(slots=True)
class _Live:
    profile: Profile
    faults: list[ActiveFault]


class ModelTable:
    """Profiles and faults per model name (without ``models/``); thread-safe."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._models: dict[str, _Live] = {}
        self._serve_unknown = True
        self.load(scenario)

    def load(self, scenario: Scenario) -> None:
        """Replace every setting with the scenario's (fresh counts and buckets)."""
        models = {
            normalise_model(name): _Live(
                settings.profile.model_copy(deep=True),
                [ActiveFault.of(f) for f in settings.faults],
            )
            for name, settings in scenario.models.items()
        }
        with self._lock:
            self._models = models
            self._serve_unknown = scenario.serve_unknown_models

    def configure(
        self,
        model: str,
        profile: Profile | Mapping[str, Any] | None = None,
        faults: Iterable[Fault | Mapping[str, Any]] | None = None,
    ) -> None:
        if isinstance(profile, Profile):
            prof = profile.model_copy(deep=True)
        else:
            prof = Profile.model_validate(dict(profile or {}))
        active = [ActiveFault.of(parse_fault(f)) for f in faults or ()]
        with self._lock:
            self._models[normalise_model(model)] = _Live(prof, active)

    def remove(self, model: str) -> bool:
        with self._lock:
            return self._models.pop(normalise_model(model), None) is not None

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {
                "serve_unknown_models": self._serve_unknown,
                "models": {
                    name: {
                        "profile": live.profile.model_dump(),
                        "faults": [f.to_dict() for f in live.faults],
                    }
                    for name, live in self._models.items()
                },
            }

    def profile_for(self, model: str) -> Profile | None:
        with self._lock:
            live = self._models.get(normalise_model(model))
            if live is not None:
                return live.profile
            if not self._serve_unknown:
                return None
            star = self._models.get(STAR)
            return star.profile if star is not None else _DEFAULT_PROFILE

    def listed(self) -> list[tuple[str, Profile]]:
        """The configured models (not ``"*"``) with their profiles, in order."""
        with self._lock:
            return [(n, live.profile) for n, live in self._models.items() if n != STAR]

    def faults_for(self, model: str) -> list[ActiveFault]:
        """A snapshot: the model's own faults, then those of ``"*"``."""
        with self._lock:
            own = self._models.get(model)
            star = self._models.get(STAR) if model != STAR else None
            own_faults = own.faults if own is not None else []
            star_faults = star.faults if star is not None else []
            return [*own_faults, *star_faults]

    def try_fault(self, fault: ActiveFault, facts: RequestFacts) -> Decision | Delay | None:
        """Consider one fault for a request: when it applies, use a count (dropping the
        fault once its counts are used) and fire it at the clock's time."""
        with self._lock:
            if not fault.applies(facts) or not fault.use_count():
                return None
            if fault.used_up:
                self._drop(fault)
            return fault.evaluate(facts, self._clock.monotonic(), self._clock.time())

    def _drop(self, fault: ActiveFault) -> None:
        for live in self._models.values():
            for i, other in enumerate(live.faults):
                if other is fault:
                    del live.faults[i]
                    return
