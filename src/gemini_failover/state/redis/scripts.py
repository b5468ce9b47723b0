"""The Lua scripts that arbitrate writes atomically in Redis, how they are queued on a
pipeline, and what their replies mean.

* breaker: accepts a snapshot only if its epoch is higher than the stored one (a stale
  instance cannot overwrite a newer state) and publishes the accepted snapshot. A
  rejected writer adopts the stored winner. Two instances that both went from epoch N
  to N+1 at once tie: the first write wins and the second re-writes the winner's state
  at N+2, which every instance (the loser included, whose own epoch is N+1) then
  adopts, so all of them end on one identical snapshot.
* cool-down: keeps the later ``until`` and publishes it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.state.interface import CooldownKind
from gemini_failover.state.redis.codec import (
    KeySpace,
    encode_cooldown_event,
    encode_float,
    parse_snapshot,
    snapshot_fields,
)

__all__ = [
    "BREAKER_LUA",
    "COOLDOWN_LUA",
    "BreakerReply",
    "Scripts",
    "Verdict",
    "later_stored_until",
]

# Breaker transition, atomically.
# KEYS[1]  the breaker hash
# ARGV     epoch, state, since, open_until, trips, reason, instance, model, ttl_ms, channel
# Returns  {1}                  accepted (written and published)
#          {0}                  the stored snapshot is this very one: nothing to do
#          {2, epoch, state, since, open_until, trips, reason}
#                               rejected: adopt this snapshot. Either the stored one
#                               (its epoch is higher), or, on an equal epoch with other
#                               content (another instance got there first), the stored
#                               one re-written at epoch + 1 and published, so that
#                               every instance, including this one, adopts it.
BREAKER_LUA = """
local key = KEYS[1]
local epoch = tonumber(ARGV[1])
local cur = redis.call('HMGET', key, 'epoch', 'state', 'since', 'open_until', 'trips', 'reason')
local snap = {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]}
local status = 1
if cur[1] and cur[2] and cur[3] and cur[4] and cur[5] and cur[6] then
  local stored = tonumber(cur[1])
  if stored > epoch then
    return {2, cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]}
  end
  if stored == epoch then
    if cur[2] == ARGV[2] and cur[3] == ARGV[3] and cur[4] == ARGV[4]
        and cur[5] == ARGV[5] and cur[6] == ARGV[6] then
      return {0}
    end
    snap = {string.format('%d', stored + 1), cur[2], cur[3], cur[4], cur[5], cur[6]}
    status = 2
  end
end
redis.call('HSET', key, 'epoch', snap[1], 'state', snap[2], 'since', snap[3],
  'open_until', snap[4], 'trips', snap[5], 'reason', snap[6], 'owner', ARGV[7])
redis.call('PEXPIRE', key, ARGV[9])
redis.call('PUBLISH', ARGV[10], cjson.encode({i = ARGV[7], k = 'b', m = ARGV[8], s = snap}))
if status == 2 then
  return {2, snap[1], snap[2], snap[3], snap[4], snap[5], snap[6]}
end
return {1}
"""

# Cool-down: keep the later ``until``.
# KEYS[1]  the cool-down key;  ARGV  until, ttl_ms, channel, message
# Returns  {1} written and published, or {0, stored_until} when the stored one is later.
COOLDOWN_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) and tonumber(cur) >= tonumber(ARGV[1]) then
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {1}
"""


class Verdict(enum.IntEnum):
    """The breaker script's first reply element."""

    SAME = 0  # Redis already held this very snapshot
    ACCEPTED = 1  # written and published
    REJECTED = 2  # adopt the winner that came with the reply


@dataclass(frozen=True, slots=True)
class BreakerReply:
    verdict: Verdict
    winner: BreakerSnapshot | None = None  # with REJECTED

    @classmethod
    def decode(cls, reply: Any) -> BreakerReply:
        """Raises ValueError on an unreadable reply."""
        try:
            verdict = Verdict(int(reply[0]))
            if verdict is Verdict.REJECTED:
                return cls(verdict, parse_snapshot(reply[1:7]))
        except (IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable breaker script reply: {type(exc).__name__}") from exc
        return cls(verdict)


def later_stored_until(reply: Any) -> float | None:
    """The cool-down script's reply: the stored ``until`` when it was later than the
    one offered (None when the offered one was written, or on junk)."""
    if int(reply[0]) != 0 or len(reply) < 2:
        return None
    try:
        return float(reply[1])
    except (TypeError, ValueError):
        return None


class Scripts:
    """Queues the scripts on a pipeline, on behalf of one instance."""

    def __init__(self, keys: KeySpace, instance_id: str, breaker_ttl_ms: int) -> None:
        self.keys = keys
        self.instance_id = instance_id
        self.breaker_ttl_ms = breaker_ttl_ms

    def queue_breaker(self, pipe: Any, model: str, snap: BreakerSnapshot) -> None:
        pipe.eval(
            BREAKER_LUA,
            1,
            self.keys.breaker(model),
            *snapshot_fields(snap),
            self.instance_id,
            model,
            self.breaker_ttl_ms,
            self.keys.channel,
        )

    def queue_cooldown(
        self, pipe: Any, model: str, kind: CooldownKind, until: float, now: float
    ) -> None:
        ttl_ms = max(1, math.ceil((until - now) * 1000))
        pipe.eval(
            COOLDOWN_LUA,
            1,
            self.keys.cooldown(model, kind),
            encode_float(until),
            ttl_ms,
            self.keys.channel,
            encode_cooldown_event(self.instance_id, model, kind, until),
        )
