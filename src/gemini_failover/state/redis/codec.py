"""How state looks in Redis: the key layout, breaker snapshots as hashes and script
arguments, cool-downs as floats, and the JSON events on the pub/sub channel.

Layout, under a prefix:

* ``{prefix}:breaker:{model}``: a hash (``epoch``, ``state``, ``since``,
  ``open_until``, ``trips``, ``reason``, ``owner``);
* ``{prefix}:cooldown:{model}:{kind}``: ``until`` (wall time), expiring at ``until``;
* ``{prefix}:window:{model}:{second}``: a hash (``bad``, ``total``);
* ``{prefix}:events``: the channel. ``{"i": instance, "k": "b", "m": model,
  "s": [epoch, state, since, open_until, trips, reason]}`` for a breaker (written by
  the breaker script) and ``{"i", "k": "c", "m", "c": kind, "u": until}`` for a
  cool-down.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.state.interface import CooldownKind
from gemini_failover.state.redis.reconcile import Bucket, ModelReading

__all__ = [
    "SNAPSHOT_FIELDS",
    "BreakerEvent",
    "CooldownEvent",
    "KeySpace",
    "decode_event",
    "decode_reading",
    "encode_cooldown_event",
    "encode_float",
    "parse_snapshot",
    "parse_until",
    "queue_reading",
    "snapshot_fields",
    "snapshot_from_hash",
    "to_int",
]

log = structlog.get_logger(__name__)

#: The order of a snapshot's fields in script arguments, replies and events.
SNAPSHOT_FIELDS = ("epoch", "state", "since", "open_until", "trips", "reason")


@dataclass(frozen=True, slots=True)
class KeySpace:
    prefix: str

    @property
    def channel(self) -> str:
        return f"{self.prefix}:events"

    def breaker(self, model: str) -> str:
        return f"{self.prefix}:breaker:{model}"

    def cooldown(self, model: str, kind: CooldownKind) -> str:
        return f"{self.prefix}:cooldown:{model}:{kind.value}"

    def window(self, model: str, second: int) -> str:
        return f"{self.prefix}:window:{model}:{second}"


def encode_float(value: float) -> str:
    return repr(float(value))


def snapshot_fields(snap: BreakerSnapshot) -> list[str]:
    """The snapshot in :data:`SNAPSHOT_FIELDS` order, as strings."""
    return [
        str(snap.epoch),
        str(int(snap.state)),
        encode_float(snap.since),
        encode_float(snap.open_until),
        str(snap.trips),
        snap.reason,
    ]


def parse_snapshot(fields: Iterable[Any]) -> BreakerSnapshot:
    """From values in :data:`SNAPSHOT_FIELDS` order (script replies and events).
    Raises ValueError (or TypeError) on junk."""
    epoch, state, since, open_until, trips, reason = (_text(f) for f in fields)
    return BreakerSnapshot(
        state=BreakerState(int(state)),
        epoch=int(epoch),
        since=float(since),
        open_until=float(open_until),
        trips=int(trips),
        reason=reason,
    )


def snapshot_from_hash(fields: Any) -> BreakerSnapshot | None:
    """A breaker hash (HGETALL reply); None when there is none. Raises ValueError on
    an incomplete or unreadable one."""
    if not fields:
        return None
    try:
        return parse_snapshot(fields[name] for name in SNAPSHOT_FIELDS)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable breaker hash: {type(exc).__name__}") from exc


def parse_until(raw: Any) -> float:
    """A stored cool-down (GET reply): 0.0 when absent or unreadable."""
    if raw is None:
        return 0.0
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


def to_int(value: Any) -> int:
    """A window counter (HMGET reply): 0 when absent or unreadable."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def encode_cooldown_event(instance_id: str, model: str, kind: CooldownKind, until: float) -> str:
    return json.dumps(
        {"i": instance_id, "k": "c", "m": model, "c": kind.value, "u": until},
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    origin: str  # the instance that published it
    model: str
    snapshot: BreakerSnapshot


@dataclass(frozen=True, slots=True)
class CooldownEvent:
    origin: str
    model: str
    kind: CooldownKind
    until: float


def decode_event(data: Any) -> BreakerEvent | CooldownEvent | None:
    """One pub/sub message; None for an event kind this version does not know.
    Raises ValueError on junk."""
    try:
        message = json.loads(data)
        origin, kind, model = str(message["i"]), message["k"], str(message["m"])
        if kind == "b":
            return BreakerEvent(origin, model, parse_snapshot(message["s"]))
        if kind == "c":
            return CooldownEvent(origin, model, CooldownKind(message["c"]), float(message["u"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed state event: {type(exc).__name__}") from exc
    return None


def queue_reading(pipe: Any, keys: KeySpace, model: str, seconds: range) -> None:
    """Queue the reads of everything Redis holds for *model*: its breaker, its
    cool-downs (one per kind) and the window buckets of *seconds*."""
    pipe.hgetall(keys.breaker(model))
    for kind in CooldownKind:
        pipe.get(keys.cooldown(model, kind))
    for second in seconds:
        pipe.hmget(keys.window(model, second), "bad", "total")


def decode_reading(model: str, replies: Iterator[Any], seconds: range) -> ModelReading:
    """Consume the replies to one :func:`queue_reading`. An unreadable breaker hash is
    logged and read as none; unreadable numbers read as 0."""
    try:
        breaker = snapshot_from_hash(next(replies))
    except ValueError:
        log.warning("unreadable breaker snapshot in redis", model=model)
        breaker = None
    cooldowns = {kind: parse_until(next(replies)) for kind in CooldownKind}
    buckets: list[Bucket] = []
    for second in seconds:
        bad, total = next(replies)
        buckets.append((second, to_int(bad), to_int(total)))
    return ModelReading(breaker, cooldowns, buckets)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
