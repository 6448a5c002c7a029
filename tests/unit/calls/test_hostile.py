"""Caller ID is attacker text, and a CR/LF in it can forge whole AMI messages."""

from __future__ import annotations

from cti_bridge.calls import CallModel
from cti_bridge.calls.events import CallEnded
from tests.support.calls_facts import HOSTILE, LONG_NAME_START, Replay, messages, replay


def test_hostile_caller_ids_verbatim_and_unescaped() -> None:
    run = replay("13-hostile-callerid.ami")
    ended = run.ended()
    assert len(ended) == 8
    answers = sorted(ended.values(), key=lambda c: c.answered_at or 0)
    assert [c.linkedid for c in answers] == [row[0] for row in HOSTILE]  # join order
    for linkedid, number, name, withheld, device in HOSTILE:
        call = ended[linkedid]
        assert call.caller_number_raw == number
        assert call.caller_withheld is withheld
        assert (call.outcome, call.answered_by) == ("answered", device)
        if name is None and number != "<unknown>":
            assert call.caller_name is not None
            assert call.caller_name.startswith(LONG_NAME_START)
            assert len(call.caller_name) == 216
            assert call.caller_name.endswith("BELGIË")
        else:
            assert call.caller_name == name


def test_crlf_injection_makes_no_phantom_call_and_keeps_the_real_one() -> None:
    run = replay("13-hostile-callerid-crlf-injection.ami")
    assert sorted(run.started()) == ["1795735757.568"]
    call = run.ended()["1795735757.568"]
    assert (call.outcome, call.answered_by) == ("answered", "Local/1001@agents")
    assert call.hung_up_by == "operator"
    assert call.caller_number_raw == "0475998877"
    # The name arrives C-escaped in channel events; decoded, it is what the caller sent.
    assert call.caller_name is not None
    assert call.caller_name.startswith("Piet Fraude\r\n\r\nEvent: Hangup\r\n")
    # #97 (the forged Hangup that carries qstatus-crlf's real ActionID) was refused.
    assert run.model.rejected_events >= 1


def live_call_after(trace: str, upto: int) -> Replay:
    run = Replay(CallModel("main")).feed(messages(trace)[:upto])
    assert len(run.model.live_calls) == 1
    return run


CUSTOMER = {
    "Channel": "Local/hold14@sim-caller-000000a5;1",
    "Uniqueid": "1795735383.330",
    "Linkedid": "1795735383.330",
}


def forged_hangup(**fields: str) -> dict[str, str]:
    return {"Event": "Hangup", "Privilege": "call,all", **CUSTOMER, "Cause": "16", **fields}


def test_forged_hangups_that_contradict_known_state_are_ignored() -> None:
    run = live_call_after("01-queue-answered.ami", 104)  # customer talking to 1001
    model = run.model
    forgeries = [
        forged_hangup(Channel="Local/1001@agents-00000999;1"),  # wrong name for the id
        forged_hangup(Linkedid="1795730000.999"),  # wrong call
        {k: v for k, v in forged_hangup().items() if k != "Linkedid"},  # no Linkedid
        forged_hangup(ActionID="qstatus-crlf"),  # a list item, not an event
        forged_hangup(Uniqueid="1795730000.999", Linkedid="1795730000.999"),  # unknown
    ]
    for forged in forgeries:
        assert model.feed(forged, 2000.0) == []
    assert model.rejected_events == 4  # the unknown channel is simply not ours
    (live,) = model.live_calls
    assert live.current_devices == ("Local/1001@agents",)
    run.feed(messages("01-queue-answered.ami")[104:], start=1104.0)
    call = run.ended()["1795735383.330"]
    assert (call.outcome, call.hung_up_by) == ("answered", "caller")


def test_a_forgery_that_names_a_live_channel_exactly_is_the_residual_risk() -> None:
    """Documented in docs/call-model.md: exact Channel+Uniqueid+Linkedid passes the
    cross-checks. It can only end that one channel (here the customer's ;1 half, whose
    ;2 half keeps the call alive), never create a call or touch another one."""
    run = live_call_after("01-queue-answered.ami", 104)
    out = run.model.feed(forged_hangup(), 2000.0)
    assert out == []  # the call lives on: its other channels are still up
    (live,) = run.model.live_calls
    assert live.outcome is None


def test_hangup_for_a_never_seen_channel_creates_nothing() -> None:
    model = CallModel("main")
    assert model.feed(forged_hangup(), 1.0) == []
    assert model.state_sizes() == {"calls": 0, "channels": 0, "recently_ended": 0}


def test_events_of_unknown_calls_never_start_one() -> None:
    model = CallModel("main")
    for msg in messages("01-queue-answered.ami"):
        if msg.get("Event") not in ("Newchannel", None):
            assert model.feed(msg, 1.0) == []
    assert model.live_calls == []


def test_caller_name_with_crlf_is_not_trusted_as_structure() -> None:
    """A name full of AMI syntax is only ever data in the snapshot."""
    model = CallModel("main")
    name = "x\\r\\n\\r\\nEvent: Newchannel\\r\\nUniqueid: 1.1\\r\\nLinkedid: 1.1"
    base = {"Channel": "PJSIP/pstn-00000001", "Uniqueid": "2.1", "Linkedid": "2.1"}
    model.feed(
        {
            "Event": "Newchannel",
            **base,
            "ChannelState": "4",
            "Context": "from-pstn-sip",
            "Exten": "3200",
            "CallerIDNum": "0470",
            "CallerIDName": name,
        },
        1.0,
    )
    out = model.feed({"Event": "Hangup", **base, "Cause": "16"}, 2.0)
    (ended,) = [e.call for e in out if isinstance(e, CallEnded)]
    assert ended.caller_name == "x\r\n\r\nEvent: Newchannel\r\nUniqueid: 1.1\r\nLinkedid: 1.1"
    assert model.state_sizes()["calls"] == 0
