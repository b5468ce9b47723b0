"""The reconciliation rules, as pure functions: no Redis, no clock, no I/O.

What this instance's sink holds ("known") meets what Redis holds ("stored"):

* breakers: the newest epoch wins, in both directions. A newer stored snapshot is
  adopted; a newer local one is pushed. Equal epochs with different content are pushed
  too: the breaker script then arbitrates (the stored one wins, re-written at a higher
  epoch that everybody adopts).
* cool-downs: the later reset wins. A stored ``until`` later than the local one (and
  still in the future) is adopted; a later local one is pushed.
* the breaker window: the shared per-second buckets minus this instance's own
  contributions, summed over the window; a breaker that closed cleared its window at
  that second, so older buckets no longer count (or failures from before it closed
  could re-trip it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.state.interface import CooldownKind

__all__ = [
    "Bucket",
    "ModelPlan",
    "ModelReading",
    "Move",
    "fold_window",
    "is_later",
    "is_newer",
    "plan_model",
    "reconcile_breaker",
    "reconcile_cooldown",
    "window_floor",
]

Bucket = tuple[int, int, int]
"""One second of the shared breaker window: ``(second, bad, total)``."""


class Move(enum.Enum):
    """What to do with one breaker snapshot after comparing both sides."""

    KEEP = "keep"  # the same on both sides, or neither has one
    ADOPT = "adopt"  # Redis's is newer: hand it to the sink
    PUSH = "push"  # ours is newer (or differs at the same epoch): write it to Redis


def is_newer(incoming: BreakerSnapshot, known: BreakerSnapshot | None) -> bool:
    """The newest epoch wins: adopt *incoming* only over an older (or no) snapshot."""
    return known is None or incoming.epoch > known.epoch


def is_later(until: float, known_until: float, now: float) -> bool:
    """The later cool-down reset wins, and one already over is worth nothing."""
    return until > known_until and until > now


def reconcile_breaker(known: BreakerSnapshot | None, stored: BreakerSnapshot | None) -> Move:
    if stored is not None and is_newer(stored, known):
        return Move.ADOPT
    if known is not None and (stored is None or (known.epoch >= stored.epoch and known != stored)):
        return Move.PUSH
    return Move.KEEP


@dataclass(frozen=True, slots=True)
class CooldownMove:
    adopt: float | None = None  # Redis's ``until``, later than ours
    push: float | None = None  # ours, later than Redis's


def reconcile_cooldown(local_until: float, stored_until: float, now: float) -> CooldownMove:
    """*local_until* / *stored_until* are 0.0 when a side has none."""
    return CooldownMove(
        adopt=stored_until if is_later(stored_until, local_until, now) else None,
        push=local_until if is_later(local_until, stored_until, now) else None,
    )


def window_floor(snapshot: BreakerSnapshot | None) -> int | None:
    """The first second whose bucket still counts: when the breaker closed (it cleared
    its window then), or None (every bucket counts) when it is not closed."""
    if snapshot is not None and snapshot.state is BreakerState.CLOSED:
        return int(snapshot.since)
    return None


def fold_window(
    buckets: Sequence[Bucket], own: Mapping[int, tuple[int, int]], floor: int | None
) -> tuple[int, int]:
    """``(bad, total)`` that *other* instances recorded: the buckets from *floor* on,
    minus this instance's own ``(bad, total)`` per second. ``bad <= total`` always."""
    bad = total = 0
    for second, shared_bad, shared_total in buckets:
        if floor is not None and second < floor:
            continue
        own_bad, own_total = own.get(second, (0, 0))
        bad += max(0, shared_bad - own_bad)
        total += max(0, shared_total - own_total)
    return min(bad, total), total


@dataclass(frozen=True, slots=True)
class ModelReading:
    """What Redis holds for one model."""

    breaker: BreakerSnapshot | None
    cooldowns: Mapping[CooldownKind, float]  # stored ``until``; 0.0 when none
    buckets: Sequence[Bucket]  # the window, oldest second first


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """The outcome of reconciling one model: what to hand the sink, what to push."""

    model: str
    breaker: Move
    snapshot: BreakerSnapshot | None  # the one to adopt or push (None for KEEP)
    adopt_cooldowns: tuple[tuple[CooldownKind, float], ...]
    push_cooldowns: tuple[tuple[CooldownKind, float], ...]
    window: tuple[int, int]  # (bad, total) from other instances


def plan_model(
    model: str,
    reading: ModelReading,
    known: BreakerSnapshot | None,
    local_cooldowns: Mapping[CooldownKind, float],
    own: Mapping[int, tuple[int, int]],
    now: float,
) -> ModelPlan:
    """All three rules for one model. *local_cooldowns* and *own* hold what this
    instance knows and wrote (absent: none)."""
    move = reconcile_breaker(known, reading.breaker)
    snapshot = {Move.ADOPT: reading.breaker, Move.PUSH: known, Move.KEEP: None}[move]
    adopt: list[tuple[CooldownKind, float]] = []
    push: list[tuple[CooldownKind, float]] = []
    for kind, stored_until in reading.cooldowns.items():
        cooldown = reconcile_cooldown(local_cooldowns.get(kind, 0.0), stored_until, now)
        if cooldown.adopt is not None:
            adopt.append((kind, cooldown.adopt))
        if cooldown.push is not None:
            push.append((kind, cooldown.push))
    current = reading.breaker if move is Move.ADOPT else known
    window = fold_window(reading.buckets, own, window_floor(current))
    return ModelPlan(model, move, snapshot, tuple(adopt), tuple(push), window)
