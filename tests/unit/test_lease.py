"""The lease keeper's decisions (``cti_bridge/lease.py``), on plain numbers: no bus, no
clock but the instants handed in."""

from __future__ import annotations

import pytest

from cti_bridge.lease import (
    GRANTED,
    OWNER,
    STANDBY,
    STOPPED,
    CheckFence,
    Grant,
    LeaseKeeper,
    Lost,
    Owned,
    RaiseFence,
    Release,
    Renew,
    Timing,
)

TIMING = Timing(ttl=6.0)  # renew every 2 s, stop acting 1.2 s before the lease could end


def owner(token: int = 7, at: float = 0.0) -> LeaseKeeper:
    keeper = LeaseKeeper(TIMING)
    assert keeper.start(at) == [Grant(at)]
    assert keeper.granted(at, token, at + 0.01) == [RaiseFence(token)]
    assert keeper.state == GRANTED and keeper.owns(at + 0.01) is None  # not before the fence
    assert keeper.fence_raised(token, at + 0.02) == [Owned(token)]
    return keeper


def test_timing_defaults_and_refusal() -> None:
    assert (TIMING.renew, TIMING.safety, TIMING.retry) == (2.0, 1.2, 1.2)
    with pytest.raises(ValueError, match="shorter"):
        Timing(ttl=1.0, renew_every=0.9, margin=0.2)


def test_a_grant_makes_an_owner_once_the_fence_is_raised() -> None:
    keeper = owner()
    assert keeper.state == OWNER
    assert keeper.owns(1.0) == 7
    assert keeper.valid_until == pytest.approx(4.8)  # from the grant's sending: 0 + 6 - 1.2


def test_a_standby_asks_again_every_retry() -> None:
    keeper = LeaseKeeper(TIMING)
    keeper.start(0.0)
    assert keeper.granted(0.0, None, 0.01) == []  # somebody holds it
    assert keeper.state == STANDBY and keeper.wake_at() == pytest.approx(1.21)
    assert keeper.tick(1.0) == []
    assert keeper.tick(1.21) == [Grant(1.21)]
    assert keeper.tick(1.5) == []  # one request at a time


def test_renewal_well_before_expiry_moves_the_deadline_from_its_sending() -> None:
    keeper = owner()
    assert keeper.wake_at() == pytest.approx(2.0)
    assert keeper.tick(2.0) == [Renew(2.0)]
    assert keeper.tick(2.5) == []  # in flight
    assert keeper.renewed(2.0, True, 3.9) == []  # a slow answer: counted from 2.0
    assert keeper.valid_until == pytest.approx(6.8)
    assert keeper.owns(6.79) == 7 and keeper.owns(6.8) is None


def test_no_answer_in_time_stops_the_owner_before_the_lease_could_end() -> None:
    keeper = owner()
    assert keeper.tick(2.0) == [Renew(2.0)]
    assert keeper.wake_at() == pytest.approx(4.8)
    assert keeper.owns(4.79) == 7
    assert keeper.tick(4.8) == [Lost(7, keeper.last_reason or ""), Release()]
    assert keeper.state == STANDBY and keeper.owns(4.8) is None
    # The renewal's answer after all: the lease may still be ours, given back at once.
    assert keeper.renewed(2.0, True, 5.0) == [Release()]
    assert keeper.tick(5.0) == [Grant(5.0)]


def test_a_paused_holder_is_not_the_owner_when_it_wakes_whatever_its_timers() -> None:
    """No reactor turn for longer than the lease: ``owns`` reads the time it is given,
    so the first write after the pause is refused before any timer has run."""
    keeper = owner()
    assert keeper.owns(20.0) is None
    outputs = keeper.tick(20.0)  # then the late timer: give up, give back, ask again
    assert isinstance(outputs[0], Lost) and outputs[1:] == [Release(), Grant(20.0)]
    assert keeper.tick(20.0) == []


def test_a_renewal_answered_after_the_deadline_is_not_acted_on() -> None:
    keeper = owner()
    keeper.tick(2.0)
    outputs = keeper.renewed(2.0, True, 9.0)  # the answer and the timer after a pause
    assert outputs == [Lost(7, "the renewal came too late to act on"), Release()]
    assert keeper.owns(9.0) is None


def test_a_refused_renewal_loses_at_once() -> None:
    keeper = owner()
    keeper.tick(2.0)
    outputs = keeper.renewed(2.0, False, 2.1)
    assert outputs == [Lost(7, "another node holds the lease"), Release()]
    assert keeper.owns(2.1) is None


def test_a_failed_renewal_asks_the_database_and_with_no_answer_either_loses_at_the_deadline() -> (
    None
):
    keeper = owner()
    keeper.tick(2.0)
    assert keeper.failed(2.0, 2.1) == [CheckFence(7, 2.1)]  # the bus is unreachable
    assert keeper.failed(2.1, 2.2) == []  # and so is the database
    assert keeper.owns(2.2) == 7  # still within the lease of the grant
    wake = keeper.wake_at() or 0.0
    assert wake == pytest.approx(3.4)  # a retry period later
    assert keeper.tick(wake) == [Renew(wake)]
    assert keeper.failed(wake, 3.5) == [CheckFence(7, 3.5)]
    assert keeper.failed(3.5, 3.6) == []
    assert keeper.wake_at() == pytest.approx(4.8)
    outputs = keeper.tick(4.8)  # the grant's deadline: the failures cost the lease
    assert isinstance(outputs[0], Lost)


def test_the_bus_unreachable_the_owner_keeps_the_pbx_while_the_database_holds_its_token() -> None:
    """No other node can have acted as the owner while the database holds this node's
    token: the PBX is kept through the outage, each deadline from a check's sending."""
    keeper = owner()
    now = 2.0
    for _ in range(10):  # 20 s of outage, more than three leases
        assert keeper.tick(now) == [Renew(now)]
        assert keeper.failed(now, now + 0.1) == [CheckFence(7, now + 0.1)]
        assert keeper.fence_checked(now + 0.1, 7, now + 0.2) == []
        assert keeper.owns(now + 0.2) == 7
        assert keeper.kept_without_bus
        wake = keeper.wake_at() or 0.0
        assert wake == pytest.approx(now + 0.2 + TIMING.retry)  # to try the bus again
        assert keeper.valid_until == pytest.approx(now + 0.1 + 6.0 - 1.2)  # from the check
        now = wake
    assert keeper.state == OWNER and keeper.owns(now) == 7


def test_the_bus_unreachable_and_a_newer_token_in_the_database_the_pbx_is_lost() -> None:
    keeper = owner()
    keeper.tick(2.0)
    assert keeper.failed(2.0, 2.1) == [CheckFence(7, 2.1)]
    outputs = keeper.fence_checked(2.1, 8, 2.2)
    assert outputs == [Lost(7, "the database holds a newer fencing token"), Release()]
    assert keeper.owns(2.2) is None
    assert keeper.floor == 8


def test_the_bus_back_without_the_lease_the_kept_owner_takes_it_again_without_a_break() -> None:
    """A restarted Redis lost the lease (and perhaps the counter): the owner that kept
    the PBX meanwhile is granted it again above its own token, and never stops acting."""
    keeper = owner()
    keeper.tick(2.0)
    keeper.failed(2.0, 2.1)
    keeper.fence_checked(2.1, 7, 2.2)
    renew_at = keeper.wake_at() or 0.0
    assert keeper.tick(renew_at) == [Renew(renew_at)]
    assert keeper.renewed(renew_at, False, renew_at + 0.1) == [Grant(renew_at + 0.1, floor=7)]
    assert keeper.owns(renew_at + 0.1) == 7  # still the owner, on the old token
    assert keeper.granted(renew_at + 0.1, 8, renew_at + 0.2) == [RaiseFence(8)]
    assert keeper.owns(renew_at + 0.2) == 7  # until the database holds the new one
    assert keeper.fence_raised(8, renew_at + 0.3) == []  # no Owned: it never stopped
    assert keeper.owns(renew_at + 0.3) == 8
    assert not keeper.kept_without_bus and keeper.state == OWNER


def test_the_bus_back_with_the_lease_held_by_another_node_the_kept_owner_gives_up() -> None:
    keeper = owner()
    keeper.tick(2.0)
    keeper.failed(2.0, 2.1)
    keeper.fence_checked(2.1, 7, 2.2)
    at = keeper.wake_at() or 0.0
    keeper.tick(at)
    (grant,) = keeper.renewed(at, False, at + 0.1)
    assert isinstance(grant, Grant)
    assert keeper.granted(grant.sent_at, None, at + 0.2) == [
        Lost(7, "another node holds the lease"),
        Release(),
    ]


def test_a_bus_that_lost_its_counter_grants_again_above_the_database_at_once() -> None:
    keeper = LeaseKeeper(TIMING)
    keeper.start(0.0)
    assert keeper.granted(0.0, 1, 0.1) == [RaiseFence(1)]  # a restarted Redis counts from 1
    assert keeper.fenced(1, 0.2, current=41) == [Release()]  # the database saw 41
    assert keeper.wake_at() == pytest.approx(0.2)  # no waiting a retry period
    assert keeper.tick(0.2) == [Grant(0.2, floor=41)]
    assert keeper.granted(0.2, 42, 0.3) == [RaiseFence(42)]
    assert keeper.fence_raised(42, 0.4) == [Owned(42)]


def test_the_database_refusing_the_token_loses_ownership() -> None:
    keeper = owner()
    assert keeper.fenced(6, 1.0) == []  # not our token: nothing
    assert keeper.fenced(7, 1.0) == [Lost(7, "the database holds a newer fencing token"), Release()]
    assert keeper.owns(1.0) is None
    granted = LeaseKeeper(TIMING)
    granted.start(0.0)
    granted.granted(0.0, 3, 0.1)
    assert granted.fenced(3, 0.2) == [Release()]  # it never acted: no Lost to announce


def test_a_grant_answered_too_late_is_given_back() -> None:
    keeper = LeaseKeeper(TIMING)
    keeper.start(0.0)
    assert keeper.granted(0.0, 4, 5.0) == [Release()]
    assert keeper.state == STANDBY and keeper.tick(5.0) == [Grant(5.0)]


def test_a_fence_raised_after_the_deadline_does_not_make_an_owner() -> None:
    keeper = LeaseKeeper(TIMING)
    keeper.start(0.0)
    keeper.granted(0.0, 4, 0.1)
    assert keeper.fence_raised(4, 4.9) == [Release(), Grant(4.9)]
    assert keeper.owns(4.9) is None


def test_a_request_that_never_answers_is_given_up_after_a_lease() -> None:
    keeper = LeaseKeeper(TIMING)
    keeper.start(0.0)
    assert keeper.wake_at() == pytest.approx(6.0)
    assert keeper.tick(6.0) == [Grant(6.0)]
    assert keeper.granted(0.0, 9, 6.1) == [Release()]  # the lost answer, at last


def test_stop_gives_up_and_releases() -> None:
    keeper = owner()
    assert keeper.stop() == [Lost(7, "stopping"), Release()]
    assert keeper.state == STOPPED and keeper.wake_at() is None
    assert LeaseKeeper(TIMING).stop() == []
