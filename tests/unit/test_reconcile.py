"""The reconciliation rules of the Redis store, as pure functions: no Redis here."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.state import CooldownKind
from gemini_failover.state.redis.reconcile import (
    ModelReading,
    Move,
    fold_window,
    is_later,
    is_newer,
    plan_model,
    reconcile_breaker,
    reconcile_cooldown,
    window_floor,
)

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED
RATE, QUOTA = CooldownKind.RATE_LIMITED, CooldownKind.QUOTA_EXHAUSTED
NOW = 1_000_000.0


def snap(
    epoch: int, state: BreakerState = OPEN, reason: str = "r", since: float = NOW
) -> BreakerSnapshot:
    return BreakerSnapshot(state, epoch, since, since + 10 if state is OPEN else 0.0, 1, reason)


snapshots = st.builds(
    snap,
    epoch=st.integers(0, 6),
    state=st.sampled_from(list(BreakerState)),
    reason=st.sampled_from(["a", "b"]),
)


# -- breakers: the newest epoch wins, in both directions ---------------------------------


def test_newest_epoch_wins() -> None:
    assert is_newer(snap(2), None)
    assert is_newer(snap(3), snap(2))
    assert not is_newer(snap(2), snap(2))
    assert not is_newer(snap(1), snap(2))


def test_breaker_newer_in_redis_is_adopted() -> None:
    assert reconcile_breaker(known=snap(1), stored=snap(2)) is Move.ADOPT
    assert reconcile_breaker(known=None, stored=snap(1)) is Move.ADOPT


def test_breaker_newer_here_is_pushed() -> None:
    assert reconcile_breaker(known=snap(3), stored=snap(2)) is Move.PUSH
    assert reconcile_breaker(known=snap(1), stored=None) is Move.PUSH


def test_breaker_equal_epoch_other_content_is_pushed_for_the_script_to_arbitrate() -> None:
    assert (
        reconcile_breaker(known=snap(2, reason="here"), stored=snap(2, reason="there")) is Move.PUSH
    )


def test_breaker_identical_or_absent_is_kept() -> None:
    assert reconcile_breaker(known=snap(2), stored=snap(2)) is Move.KEEP
    assert reconcile_breaker(known=None, stored=None) is Move.KEEP


@given(known=st.none() | snapshots, stored=st.none() | snapshots)
def test_breaker_moves_are_symmetric_and_never_go_backwards(
    known: BreakerSnapshot | None, stored: BreakerSnapshot | None
) -> None:
    move = reconcile_breaker(known, stored)
    if move is Move.ADOPT:
        assert stored is not None and (known is None or stored.epoch > known.epoch)
    elif move is Move.PUSH:
        assert known is not None and (stored is None or known.epoch >= stored.epoch)
        assert known != stored
    else:
        assert known == stored
    # seen from the other side, adopting and pushing swap (ties go both ways: the
    # script arbitrates them)
    mirrored = reconcile_breaker(stored, known)
    if move is Move.ADOPT:
        assert mirrored is Move.PUSH


# -- cool-downs: the later reset wins ----------------------------------------------------


def test_later_cooldown_wins_and_an_expired_one_is_worthless() -> None:
    assert is_later(NOW + 10, NOW + 5, NOW)
    assert not is_later(NOW + 5, NOW + 10, NOW)
    assert not is_later(NOW + 5, NOW + 5, NOW)
    assert not is_later(NOW - 1, 0.0, NOW)  # already over


def test_cooldown_later_in_redis_is_adopted() -> None:
    move = reconcile_cooldown(local_until=NOW + 5, stored_until=NOW + 30, now=NOW)
    assert (move.adopt, move.push) == (NOW + 30, None)


def test_cooldown_later_here_is_pushed() -> None:
    move = reconcile_cooldown(local_until=NOW + 30, stored_until=0.0, now=NOW)
    assert (move.adopt, move.push) == (None, NOW + 30)


def test_cooldown_equal_or_expired_does_nothing() -> None:
    move = reconcile_cooldown(local_until=NOW + 5, stored_until=NOW + 5, now=NOW)
    assert (move.adopt, move.push) == (None, None)
    move = reconcile_cooldown(local_until=NOW - 5, stored_until=NOW - 1, now=NOW)
    assert (move.adopt, move.push) == (None, None)


@given(
    local=st.floats(NOW - 50, NOW + 50) | st.just(0.0),
    stored=st.floats(NOW - 50, NOW + 50) | st.just(0.0),
)
def test_cooldown_never_adopts_and_pushes_at_once(local: float, stored: float) -> None:
    move = reconcile_cooldown(local, stored, NOW)
    assert move.adopt is None or move.push is None
    after = max(local, move.adopt or 0.0)
    if max(local, stored) > NOW:
        assert after == max(local, stored)  # both sides end on the later one


# -- the window: fold the buckets, minus our own, from when the breaker closed -----------


def test_fold_subtracts_own_contributions() -> None:
    buckets = [(100, 3, 10), (101, 2, 4), (102, 0, 0)]
    own = {100: (1, 6), 101: (2, 4)}
    assert fold_window(buckets, own, floor=None) == (2, 4)


def test_fold_never_goes_negative_nor_bad_above_total() -> None:
    # Redis lost our increments (restart), or another writer's bad arrived first
    assert fold_window([(100, 0, 1)], {100: (3, 5)}, floor=None) == (0, 0)
    assert fold_window([(100, 4, 2)], {}, floor=None) == (2, 2)


def test_fold_drops_buckets_from_before_the_breaker_closed() -> None:
    buckets = [(100, 5, 5), (101, 5, 5), (102, 1, 3)]
    assert fold_window(buckets, {}, floor=102) == (1, 3)
    assert fold_window(buckets, {}, floor=None) == (11, 13)


def test_window_floor_is_the_second_a_closed_breaker_closed() -> None:
    assert window_floor(snap(3, CLOSED, since=1234.9)) == 1234
    assert window_floor(snap(3, OPEN)) is None
    assert window_floor(snap(3, HALF_OPEN)) is None
    assert window_floor(None) is None


@given(
    buckets=st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 50), st.integers(0, 50)), max_size=10
    ),
    floor=st.none() | st.integers(0, 20),
)
def test_fold_is_bounded_by_what_redis_holds(
    buckets: list[tuple[int, int, int]], floor: int | None
) -> None:
    bad, total = fold_window(buckets, {}, floor)
    assert 0 <= bad <= total <= sum(t for _, _, t in buckets)


# -- one model, all rules ----------------------------------------------------------------


def test_plan_adopts_a_newer_breaker_and_floors_the_window_on_it() -> None:
    closed = snap(5, CLOSED, since=101.5)
    reading = ModelReading(
        breaker=closed,
        cooldowns={RATE: NOW + 20, QUOTA: 0.0},
        buckets=[(100, 4, 4), (101, 1, 2), (102, 0, 3)],
    )
    plan = plan_model("m", reading, snap(4), {RATE: NOW + 5, QUOTA: NOW + 60}, {102: (0, 1)}, NOW)
    assert (plan.breaker, plan.snapshot) == (Move.ADOPT, closed)
    assert plan.adopt_cooldowns == ((RATE, NOW + 20),)
    assert plan.push_cooldowns == ((QUOTA, NOW + 60),)
    assert plan.window == (1, 4)  # from second 101 (the adopted breaker closed then)


def test_plan_pushes_a_newer_local_breaker_and_uses_its_floor() -> None:
    here = snap(7, CLOSED, since=102.0)
    reading = ModelReading(snap(6), {RATE: 0.0, QUOTA: 0.0}, [(101, 9, 9), (102, 1, 1)])
    plan = plan_model("m", reading, here, {}, {}, NOW)
    assert (plan.breaker, plan.snapshot) == (Move.PUSH, here)
    assert plan.adopt_cooldowns == () and plan.push_cooldowns == ()
    assert plan.window == (1, 1)


def test_plan_keeps_what_agrees() -> None:
    same = snap(2)
    reading = ModelReading(same, {RATE: NOW + 5}, [(100, 0, 0)])
    plan = plan_model("m", reading, same, {RATE: NOW + 5}, {}, NOW)
    assert (plan.breaker, plan.snapshot) == (Move.KEEP, None)
    assert plan.adopt_cooldowns == () and plan.push_cooldowns == ()
    assert plan.window == (0, 0)
