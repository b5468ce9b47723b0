"""Model state shared across instances through Redis, split along its seams:

* ``store``: :class:`RedisStateStore`, the :class:`~gemini_failover.state.StateStore`
  that composes the rest;
* ``scripts``: the Lua scripts that arbitrate writes atomically;
* ``codec``: the key layout, snapshots <-> hashes, the JSON events;
* ``reconcile``: the reconciliation rules, as pure functions;
* ``batch``: write-behind queues of what the hot path published;
* ``handover``: what the sink holds, and handing other instances' state to it;
* ``listener``: the pub/sub listener;
* ``connection``: the client, and the supervision loop that reconnects with backoff;
* ``health``: the health shown, and degraded/recovered told once per transition;
* ``conversations``: :class:`RedisConversationStore`, conversation threads.
"""

from gemini_failover.state.redis.conversations import RedisConversationStore
from gemini_failover.state.redis.stats import RedisStoreStats
from gemini_failover.state.redis.store import RedisStateStore
from gemini_failover.state.urls import redact_url

__all__ = ["RedisConversationStore", "RedisStateStore", "RedisStoreStats", "redact_url"]
