"""``LiveCalls``: the one state holder the handlers and the resync work on, by its interface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cti_bridge.calls import Topology
from cti_bridge.calls import live as live_module
from cti_bridge.calls.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Direction,
    HungUpBy,
    Ring,
    RingEnded,
    RingResult,
    TransferKind,
)
from cti_bridge.calls.live import DEST, LiveCalls, Out
from cti_bridge.calls.state import CallState

CALLS = Path(live_module.__file__).parent
CALLER = {"Uniqueid": "1.1", "Channel": "PJSIP/pstn-00000001", "Linkedid": "1.1"}


def live_call(live: LiveCalls, *, pbx_clock: bool = False, context: str = "from-pstn") -> CallState:
    call = live.new_call("1.1", 100.0, pbx_clock=pbx_clock, complete=True)
    msg = {**CALLER, "Context": context, "CallerIDNum": "0470", "CallerIDName": "Luc"}
    live.register_channel(call, "1.1", "PJSIP/pstn-00000001", msg, origin=True)
    return call


def kinds(out: Out) -> list[str]:
    return [type(e).__name__ for e in out]


def test_a_new_call_and_its_channels() -> None:
    live = LiveCalls("main", Topology())
    call = live_call(live)
    assert live.calls == {"1.1": call}
    assert (call.direction, call.caller_number_raw, call.caller_name) == (
        Direction.INBOUND,
        "0470",
        "Luc",
    )
    agent = live.register_channel(
        call, "1.2", "PJSIP/1001-00000002", {"Context": "x"}, origin=False
    )
    assert set(live.channels) == set(call.channels) == {"1.1", "1.2"}
    assert (agent.device, agent.call, call.alive) == ("PJSIP/1001", call, 2)
    assert live.sizes() == {"calls": 1, "channels": 2, "recently_ended": 0}


def test_known_names_a_channel_only_exactly() -> None:
    live = LiveCalls("main", Topology())
    call = live_call(live)
    assert live.known(CALLER) is call.channels["1.1"]
    assert live.known({**CALLER, "Uniqueid": "9.9"}) is None
    assert live.known({"Channel": "PJSIP/pstn-00000001"}) is None
    assert live.rejected_events == 0  # not ours: not a contradiction
    assert live.known({**CALLER, "Linkedid": "2.2"}) is None
    assert live.known({**CALLER, "Channel": "PJSIP/pstn-00000099"}) is None
    assert live.rejected_events == 2
    dest = {"DestUniqueid": "1.1", "DestChannel": "PJSIP/pstn-00000001", "DestLinkedid": "1.1"}
    assert live.known(dest, DEST) is call.channels["1.1"]


def test_one_clock_per_call() -> None:
    live = LiveCalls("main", Topology())
    assert (live.clock_known, live.clock_offset) == (False, 0.0)
    local = live_call(live)
    assert live.event_time(local, {"Timestamp": "5000.5"}, 10.0) == 10.0
    assert live.local_to_call(local, 10.0) == 10.0
    live.pbx_clock_seen(5000.0, 10.0)
    assert (live.clock_known, live.clock_offset) == (True, 4990.0)
    pbx = live.new_call("2.2", 5000.0, pbx_clock=True, complete=True)
    assert live.event_time(pbx, {"Timestamp": "5003.0"}, 11.0) == 5003.0
    assert live.clock_offset == 4992.0  # the last Timestamp seen
    assert live.event_time(pbx, {}, 12.0) == 12.0 + 4992.0
    assert live.event_time(pbx, {"Timestamp": "garbage"}, 12.0) == 12.0 + 4992.0
    assert live.local_to_call(pbx, 13.0) == 13.0 + 4992.0


def test_start_answer_and_transfer_tell_once_each() -> None:
    live = LiveCalls("main", Topology())
    call = live_call(live)
    out: Out = []
    live.start(call, out)
    live.start(call, out)
    agent = live.register_channel(call, "1.2", "PJSIP/1001-00000002", {}, origin=False)
    segment = call.open_segment(agent, 110.0)
    live.answer(call, 110.0, "PJSIP/1001", segment, out)
    live.answer(call, 111.0, "PJSIP/1002", segment, out)  # the same segment: told once
    assert kinds(out) == ["CallStarted", "CallAnswered"]
    assert isinstance(out[0], CallStarted) and isinstance(out[1], CallAnswered)
    assert (call.answered_at, call.answered_by) == (110.0, "PJSIP/1001")
    call.side = HungUpBy.CALLER
    live.transfer(call, TransferKind.BLIND, at=120.0, from_device="PJSIP/1001", to="2000", out=out)
    assert isinstance(out[-1], CallTransferred)
    assert out[-1].transfer.to == "2000" and call.wants_target and call.side is None


def test_close_leg_ends_its_ring_with_the_hangup_cause() -> None:
    live = LiveCalls("main", Topology())
    call = live_call(live)
    for uid, name in (("1.2", "PJSIP/1001-00000002"), ("1.3", "PJSIP/pstn-00000003")):
        channel = live.register_channel(call, uid, name, {}, origin=False)
        call.add_ring(Ring(channel.device, name, uid, 105.0))
    out: Out = []
    live.close_leg(call, "1.2", 108.0, 17, out)
    live.close_leg(call, "1.3", 108.0, 17, out)  # a trunk leg: in the snapshot only
    assert kinds(out) == ["RingEnded"]
    assert isinstance(out[0], RingEnded) and out[0].ring.result is RingResult.BUSY
    assert [r.result for r in call.rings] == [RingResult.BUSY, RingResult.BUSY]


def test_end_releases_the_call_and_remembers_its_id() -> None:
    live = LiveCalls("main", Topology(), ended_memory=2)
    out: Out = []
    for n in range(3):
        call = live.new_call(f"{n}.0", 100.0, pbx_clock=False, complete=True)
        live.register_channel(call, f"{n}.0", f"PJSIP/100{n}-0000000{n}", {}, origin=True)
        live.end(call, 200.0, out)
    assert kinds(out) == ["CallStarted", "CallEnded"] * 3
    assert live.calls == {} and live.channels == {}
    assert list(live.recently_ended) == ["1.0", "2.0"]  # the memory is bounded
    assert live.sizes() == {"calls": 0, "channels": 0, "recently_ended": 2}


def test_end_all_ends_every_call_by_the_system() -> None:
    live = LiveCalls("main", Topology())
    live.pbx_clock_seen(1000.0, 10.0)
    live_call(live, pbx_clock=True)
    out: Out = []
    live.end_all(20.0, out)
    ended = [e.call for e in out if isinstance(e, CallEnded)]
    assert len(ended) == 1 and live.calls == {}
    assert (ended[0].ended_at, ended[0].hung_up_by, ended[0].complete) == (1010.0, "system", False)


def test_suspect_from_the_first_loss_until_trusted() -> None:
    live = LiveCalls("main", Topology())
    assert live.trusted() is None
    live.link_lost(5.0)
    live.link_lost(7.0)
    assert live.suspect_since == 5.0
    assert live.trusted() == 5.0
    assert live.trusted() is None  # trusted again: no longer suspect
    live.link_lost(9.0)
    assert live.trusted() == 9.0


# -- only the public interface --------------------------------------------------------


def private_uses(path: Path) -> list[str]:
    """Another object's ``x._name`` and ``from m import _name`` in one module (``self._x``
    is the object's own business)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            own = isinstance(node.value, ast.Name) and node.value.id == "self"
            if not own and not (node.attr.startswith("__") and node.attr.endswith("__")):
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            found += [
                f"{path.name}:{node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


MODULES = ["resync.py", "model.py", "pipeline.py"] + [
    f"handlers/{p.name}" for p in sorted((CALLS / "handlers").glob("*.py"))
]


@pytest.mark.parametrize("module", MODULES)
def test_the_resync_and_the_handlers_use_only_public_names(module: str) -> None:
    assert private_uses(CALLS / module) == []


def test_the_private_use_check_can_fail(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from x import _y\n\ndef f(model):\n    return model._calls, model.__dict__, self._z\n"
    )
    assert private_uses(source) == ["m.py:1: import _y", "m.py:4: ._calls"]
