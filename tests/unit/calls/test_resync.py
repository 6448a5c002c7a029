"""Reconnect: ``link_lost`` then ``resync`` with CoreShowChannels items; PBX shutdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cti_bridge.calls import CallModel
from cti_bridge.calls.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    OperatorRinging,
    RingEnded,
)
from tests.support.calls_facts import HOSTILE, LONG_NAME_START, Replay, messages


def core_show_channels(trace: str) -> tuple[int, Sequence[Mapping[str, str]]]:
    """The trace's CoreShowChannel items and the index of the message after the list."""
    msgs = messages(trace)
    items = [m for m in msgs if m.get("Event") == "CoreShowChannel"]
    done = next(i for i, m in enumerate(msgs) if m.get("Event") == "CoreShowChannelsComplete")
    return done + 1, items


def kinds(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_resync_09_known_calls_continue_without_duplicates() -> None:
    after, items = core_show_channels("09-queue-status.ami")
    msgs = messages("09-queue-status.ami")
    run = Replay(CallModel("main")).feed(msgs[:after])
    assert sorted(c.linkedid for c in run.model.live_calls) == ["1795735605.396", "1795735608.400"]
    assert run.model.link_lost(2000.0) == []
    assert run.model.suspect
    assert run.model.resync(items, 2001.0) == []  # same calls, same channels: nothing new
    assert not run.model.suspect
    run.feed(msgs[after:], start=3000.0)
    assert len(run.started()) == 2 and sorted(run.started()) == sorted(run.ended())
    ended = run.ended()
    assert ended["1795735605.396"].answered_by == "Local/1001@agents"
    assert ended["1795735605.396"].complete is False  # the link was lost during the call
    assert ended["1795735608.400"].outcome == "abandoned"


def test_resync_09_into_a_fresh_model_rebuilds_both_calls() -> None:
    after, items = core_show_channels("09-queue-status.ami")
    model = CallModel("main")
    events = model.resync(items, 5000.0)
    assert kinds(events) == ["CallStarted", "CallAnswered", "CallStarted"]
    answered, waiting = events[1].call, events[2].call
    assert answered.linkedid == "1795735605.396" and waiting.linkedid == "1795735608.400"
    assert answered.answered_by == "Local/1001@agents"
    assert answered.answered_at == 5000.0 - 6  # Duration 00:00:06 of the operator leg
    assert answered.caller_number_raw == "+32478123456"
    assert answered.caller_name == "Annelies Goossens"
    assert answered.current_devices == ("Local/1001@agents",)
    assert (waiting.queue, waiting.answered_at, waiting.direction) == ("support", None, "inbound")
    assert waiting.dialled == "3200"
    assert all(not e.call.complete for e in events)
    # The rest of the trace then ends both calls, once, through the adopted channels.
    run = Replay(model).feed(messages("09-queue-status.ami")[after:], start=6000.0)
    ended = run.ended()
    assert run.started() == []
    assert ended["1795735608.400"].outcome == "abandoned"
    assert ended["1795735605.396"].outcome == "answered"
    assert ended["1795735605.396"].hung_up_by == "caller"
    assert model.state_sizes()["calls"] == 0


def test_resync_13_hostile_names_are_unescaped_and_withheld_flagged() -> None:
    _, items = core_show_channels("13-hostile-callerid.ami")
    events = CallModel("main").resync(items, 100.0)
    started = {e.call.linkedid: e.call for e in events if isinstance(e, CallStarted)}
    assert len(started) == 8
    for linkedid, number, name, withheld, _ in HOSTILE:
        call = started[linkedid]
        assert call.caller_number_raw == number
        assert call.caller_withheld is withheld
        if name is None and number != "<unknown>":
            assert call.caller_name is not None and call.caller_name.startswith(LONG_NAME_START)
        else:
            assert call.caller_name == name
        assert call.queue == "support" and call.answered_at is None


def first_channels(trace: str, upto: int) -> list[dict[str, str]]:
    """CoreShowChannel-like items for the channels created in the first messages."""
    items = []
    for msg in messages(trace)[:upto]:
        if msg.get("Event") == "Newchannel":
            item = dict(msg, Event="CoreShowChannel", ChannelState="6", Duration="00:00:10")
            item["BridgeId"] = "b1" if msg["Channel"].endswith(";1") else ""
            items.append(item)
    return items


def test_synthetic_mid_call_reconnect() -> None:
    msgs = messages("01-queue-answered.ami")
    run = Replay(CallModel("main")).feed(msgs[:104])  # talking to 1001 (bridge #97/#103)
    run.model.link_lost(1104.5)
    live = [i for i in first_channels("01-queue-answered.ami", 104) if "1002@" not in i["Channel"]]
    assert run.model.resync(live, 1110.0) == []
    run.feed(msgs[104:], start=1111.0)
    (call,) = run.ended().values()
    assert (call.outcome, call.answered_by, call.complete) == (
        "answered",
        "Local/1001@agents",
        False,
    )
    assert call.ended_at_approximate is False  # its hang-up came over the link
    assert len(run.started()) == 1


def test_resync_closes_calls_gone_during_the_outage() -> None:
    msgs = messages("01-queue-answered.ami")
    run = Replay(CallModel("main")).feed(msgs[:104])
    run.model.link_lost(1104.5)
    events = run.model.resync([], 1200.0)
    assert kinds(events) == ["CallEnded"]
    call = events[0].call
    assert call.ended_at == 1104.5  # when we lost sight of it, not when we came back
    assert call.ended_at_approximate is True  # and it says so: the hang-up was not seen
    assert (call.complete, call.hung_up_by, call.outcome) == (False, "system", "answered")


def test_resync_mixed_leg_gone_and_new_call() -> None:
    msgs = messages("01-queue-answered.ami")
    run = Replay(CallModel("main")).feed(msgs[:60])  # both operators ringing
    run.model.link_lost(1060.5)
    items = [i for i in first_channels("01-queue-answered.ami", 60) if "1002@" not in i["Channel"]]
    for item in items:
        if "1001@" in item["Channel"]:
            item["ChannelState"] = "5"
            item["BridgeId"] = ""
    stranger = {
        "Event": "CoreShowChannel",
        "Channel": "PJSIP/pstn-000000ff",
        "Uniqueid": "77.1",
        "Linkedid": "77.1",
        "ChannelState": "4",
        "Context": "from-pstn-sip",
        "Exten": "3200",
        "CallerIDNum": "0470000000",
        "CallerIDName": 'New \\"Caller\\"',
        "Application": "Queue",
        "ApplicationData": "support-sip,t,,,60",
        "Duration": "00:00:04",
        "BridgeId": "",
    }
    events = run.model.resync([*items, stranger], 1070.0)
    assert kinds(events) == ["RingEnded", "CallStarted"]
    assert isinstance(events[0], RingEnded)
    assert events[0].ring.device == "Local/1002@agents"  # 1002's leg vanished meanwhile
    new = events[1].call
    assert (new.linkedid, new.caller_name, new.queue) == ("77.1", 'New "Caller"', "support-sip")
    assert new.started_at == 1066.0 and new.complete is False
    assert {c.linkedid for c in run.model.live_calls} == {"1795735383.330", "77.1"}


def test_resync_starts_a_ringing_leg_of_an_unknown_call() -> None:
    items = [
        {
            "Channel": "PJSIP/pstn-00000001",
            "Uniqueid": "5.1",
            "Linkedid": "5.1",
            "ChannelState": "4",
            "Context": "from-pstn-sip",
            "Exten": "1002",
            "Duration": "00:00:03",
        },
        {
            "Channel": "PJSIP/1002-00000002",
            "Uniqueid": "5.2",
            "Linkedid": "5.1",
            "ChannelState": "5",
            "Context": "agents-pjsip",
            "Duration": "00:00:02",
        },
    ]
    events = CallModel("main").resync(items, 50.0)
    assert kinds(events) == ["CallStarted", "OperatorRinging"]
    ringing = events[1]
    assert isinstance(ringing, OperatorRinging)
    assert (ringing.ring.device, ringing.ring.started_at) == ("PJSIP/1002", 48.0)


def test_shutdown_closes_every_call_once() -> None:
    msgs = messages("11-restart-shutdown.ami")
    run = Replay(CallModel("main")).feed(msgs[:170])
    assert len(run.model.live_calls) == 2
    events = run.model.shutdown(2000.0)
    run.events.extend(events)
    ended = [e.call for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 2
    assert all(c.hung_up_by == "system" and c.complete is False for c in ended)
    # The PBX announced its shutdown: the calls end then, a time seen, not estimated.
    assert not any(c.ended_at_approximate for c in ended)
    assert {c.outcome for c in ended} == {"answered", "abandoned"}
    assert run.model.shutdown(2001.0) == []
    run.feed(msgs[170:], start=3000.0)  # the PBX's own hang-ups arrive late: ignored
    assert len(run.ended()) == 2


def test_shutdown_event_closes_calls() -> None:
    msgs = messages("11-restart-shutdown.ami")
    run = Replay(CallModel("main")).feed(msgs[:170])
    out = run.model.feed({"Event": "Shutdown", "Shutdown": "Cleanly", "Restart": "True"}, 9.0)
    assert kinds(out).count("CallEnded") == 2
    assert any(isinstance(e, CallAnswered) for e in run.events)
    assert run.model.live_calls == []
