"""Originate for the callback dialer: bytes out, the recorded OriginateResponse in.

Correlated by ActionID; never re-sent; failures that say which side they are on. A
scripted PBX on StringTransports and a MemoryReactorClock: no socket, no sleep.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from cti_bridge.ami.client import (
    OriginateNotSent,
    OriginateOutcomeUnknown,
    OriginateRefused,
    OriginateRequest,
    OriginateResult,
)
from cti_bridge.ami.originate import ORIGINATE_REASONS
from tests.support.ami_link import FULLY_BOOTED, PBXSide, Setup, bring_up, finish_resync, make
from tests.support.paths import TRACES

QUEUED = "Message: Originate successfully queued\r\n\r\n"


def callback(**overrides: Any) -> OriginateRequest:
    """The request behind trace 07-callback-originate-answered-channelid (agreement 48)."""
    fields: dict[str, Any] = {
        "channel": "Local/1001@agents",
        "context": "callback",
        "exten": "0470123456",
        "caller_id": '"Terugbelverzoek 48" <0470123456>',
        "variables": {"CTI_AGREEMENT_ID": "48", "CTI_ATTEMPT_ID": "7"},
        "ring_seconds": 20,
        "action_id": "callback-48",
        "channel_id": "cti-callback-48",
    }
    fields.update(overrides)
    return OriginateRequest(**fields)


def trace_messages(name: str) -> list[bytes]:
    """A recorded trace as its messages (banner dropped), each with its blank line."""
    data = (TRACES / name).read_bytes()
    data = data.split(b"\r\n", 1)[1]  # the banner
    return [chunk + b"\r\n\r\n" for chunk in data.split(b"\r\n\r\n") if chunk]


class Outcome:
    def __init__(self, d: Deferred[OriginateResult]) -> None:
        self.results: list[OriginateResult] = []
        self.failures: list[Failure] = []
        d.addCallbacks(self.results.append, self.failures.append)

    @property
    def called(self) -> bool:
        return bool(self.results or self.failures)

    def error(self) -> BaseException:
        (failure,) = self.failures
        assert failure.value is not None
        return failure.value


def up() -> tuple[Setup, PBXSide]:
    s = make(ping_interval=3600.0)  # no keep-alive drop while the clock jumps
    return s, bring_up(s)


def originated(pbx: PBXSide) -> list[str]:
    return [a["Action"] or "" for a in pbx.actions()]


# -- the action ------------------------------------------------------------------------


def test_the_originate_bytes_exactly() -> None:
    s, pbx = up()
    s.client.originate(callback())
    assert pbx.transport.value() == (
        b"Action: Originate\r\n"
        b"Channel: Local/1001@agents\r\n"
        b"Context: callback\r\n"
        b"Exten: 0470123456\r\n"
        b"Priority: 1\r\n"
        b"Timeout: 20000\r\n"
        b'CallerID: "Terugbelverzoek 48" <0470123456>\r\n'
        b"Variable: CTI_AGREEMENT_ID=48\r\n"
        b"Variable: CTI_ATTEMPT_ID=7\r\n"
        b"ChannelId: cti-callback-48\r\n"
        b"OtherChannelId: cti-callback-48-2\r\n"
        b"Async: true\r\n"
        b"ActionID: callback-48\r\n"
        b"\r\n"
    )


def test_an_application_instead_of_an_extension() -> None:
    request = OriginateRequest("PJSIP/1001", application="Playback", data="hello-world")
    headers = request.headers()
    assert (headers["Application"], headers["Data"]) == ("Playback", "hello-world")
    assert "Context" not in headers and "Exten" not in headers


def test_fresh_ids_for_every_request() -> None:
    a, b = (
        OriginateRequest("PJSIP/1001", application="Echo"),
        OriginateRequest("PJSIP/1001", application="Echo"),
    )
    assert a.action_id != b.action_id and a.channel_id != b.channel_id
    assert a.action_id.startswith("cti-originate-") and a.channel_id.startswith("cti-")
    assert a.other_channel_id == f"{a.channel_id}-2"
    assert len(a.channel_id) < 150, "Asterisk's limit for a Uniqueid"


@pytest.mark.parametrize(
    "bad",
    [
        {"caller_id": '"Piet"\r\nAction: Hangup'},
        {"variables": {"A=B": "1"}},
        {"context": None},
        {"application": "Echo"},
    ],
)
def test_a_bad_request_is_refused_before_anything_is_sent(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        callback(**bad)


# -- the recorded outcome ----------------------------------------------------------------------


def test_the_recorded_answered_callback_fires_on_its_originate_response() -> None:
    s, pbx = up()
    outcome = Outcome(s.client.originate(callback()))
    messages = trace_messages("07-callback-originate-answered-channelid.ami")
    assert messages[0].startswith(b"Response: Success\r\nActionID: login")
    response_at = next(i for i, m in enumerate(messages) if b"Event: OriginateResponse" in m)
    for message in messages[2:response_at]:  # from the "queued" answer on
        pbx.send(message)
    assert not outcome.called, "'successfully queued' is not the outcome"
    pbx.send(messages[response_at])
    (result,) = outcome.results
    assert result.success and result.reason == 4 and result.reason_text == "answered"
    assert result.channel == "Local/1001@agents-00000001;1"
    assert result.uniqueid == "cti-callback-48", "the ChannelId became the Uniqueid"
    assert result.request.channel_id == "cti-callback-48"
    assert result.event["CallerIDName"] == "Terugbelverzoek 48"
    # Listeners see the OriginateResponse like any event, before the Deferred fires.
    assert s.listener.kinds()[-1] == "event:OriginateResponse"
    for message in messages[response_at + 1 :]:
        pbx.send(message)
    assert len(outcome.results) == 1
    assert s.client.state == "connected"
    assert originated(pbx) == ["Originate"], "sent once"


def test_the_recorded_busy_customer_is_a_failure_with_reason_5() -> None:
    s, pbx = up()
    request = OriginateRequest(
        "Local/0478554433@pstn-out/n",
        context="cti-connect",
        exten="1001",
        action_id="callback-busy-49",
        channel_id="cti-callback-49",
    )
    outcome = Outcome(s.client.originate(request))
    for message in trace_messages("08-callback-originate-failed-busy-channelid.ami")[2:]:
        pbx.send(message)
    (result,) = outcome.results
    assert not result.success
    assert (result.reason, result.reason_text) == (5, "busy")
    assert result.uniqueid == "cti-callback-49"
    assert ORIGINATE_REASONS[3] == "no answer" and ORIGINATE_REASONS[8] == "congestion"


def test_an_operator_who_never_answers_has_no_uniqueid() -> None:
    s, pbx = up()
    outcome = Outcome(s.client.originate(callback(action_id="callback-op-noanswer")))
    for message in trace_messages("08-callback-originate-failed-operator-noanswer.ami")[2:]:
        pbx.send(message)
    (result,) = outcome.results
    assert (result.success, result.reason, result.uniqueid) == (False, 3, None)


def test_an_originate_response_before_the_queued_answer_counts() -> None:
    s, pbx = up()
    outcome = Outcome(s.client.originate(callback(action_id="fast")))
    pbx.send(
        "Event: OriginateResponse\r\nActionID: fast\r\nResponse: Failure\r\n"
        "Channel: PJSIP/0470123456@trunk\r\nReason: 0\r\nUniqueid: <unknown>\r\n\r\n"
        "Response: Success\r\nActionID: fast\r\n" + QUEUED
    )
    (result,) = outcome.results
    assert (result.success, result.reason, result.uniqueid) == (False, 0, None)


# -- the failures, each on its side --------------------------------------------------------------


def test_not_sent_while_the_link_is_down_or_not_resynced() -> None:
    s = make()
    outcome = Outcome(s.client.originate(callback()))
    error = outcome.error()
    assert isinstance(error, OriginateNotSent) and error.state == "stopped"
    assert "was not sent" in str(error) and "main (127.0.0.1:5038)" in str(error)
    s.client.start()
    pbx = s.endpoint.accept()
    (login,) = pbx.actions()
    pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    assert s.client.state == "resyncing"
    outcome = Outcome(s.client.originate(callback()))
    assert isinstance(outcome.error(), OriginateNotSent), "not before the snapshot"
    finish_resync(pbx)
    pbx.close()
    outcome = Outcome(s.client.originate(callback()))
    error = outcome.error()
    assert isinstance(error, OriginateNotSent) and error.state == "disconnected"
    assert pbx.actions() == []


def test_a_link_lost_after_sending_is_outcome_unknown_and_never_resent() -> None:
    s, pbx = up()
    queued_first = Outcome(s.client.originate(callback(action_id="a", channel_id="cti-a")))
    pbx.send("Response: Success\r\nActionID: a\r\n" + QUEUED)
    unanswered = Outcome(s.client.originate(callback(action_id="b", channel_id="cti-b")))
    assert originated(pbx) == ["Originate", "Originate"]
    pbx.close("connection reset")
    for outcome in (queued_first, unanswered):
        error = outcome.error()
        assert isinstance(error, OriginateOutcomeUnknown)
        assert "the link dropped" in error.why and "connection reset" in error.why
        assert "was not re-sent" in str(error)
    assert queued_first.error().request.channel_id == "cti-a"  # type: ignore[attr-defined]
    # The next link comes up; nothing is sent again on it.
    s.reactor.advance(1.0)
    second = s.endpoint.accept()
    (login,) = second.actions()
    second.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    finish_resync(second)
    assert s.client.state == "connected"
    s.reactor.advance(120.0)
    assert all(a["Action"] == "Ping" for a in second.actions()), "no Originate again"


def test_no_originate_response_in_time_is_outcome_unknown_and_never_resent() -> None:
    s, pbx = up()
    outcome = Outcome(s.client.originate(callback(ring_seconds=20)))
    pbx.send("Response: Success\r\nActionID: callback-48\r\n" + QUEUED)
    s.reactor.advance(49.9)
    assert not outcome.called
    s.reactor.advance(0.1)  # ring time 20 s + 30 s
    error = outcome.error()
    assert isinstance(error, OriginateOutcomeUnknown)
    assert error.why == "no OriginateResponse within 50 s"
    assert "cti-callback-48" in str(error), "names the ChannelId to look for on the PBX"
    # A late OriginateResponse is an event like any other; the Deferred fired once.
    pbx.send(
        "Event: OriginateResponse\r\nActionID: callback-48\r\nResponse: Success\r\n"
        "Reason: 4\r\nUniqueid: cti-callback-48\r\n\r\n"
    )
    assert s.listener.kinds()[-1] == "event:OriginateResponse"
    assert len(outcome.failures) == 1 and not outcome.results
    assert [a for a in originated(pbx) if a == "Originate"] == ["Originate"]
    assert s.client.state == "connected", "the link is fine"


def test_no_queued_answer_either_still_waits_for_the_outcome() -> None:
    s, _pbx = up()
    outcome = Outcome(s.client.originate(callback(), outcome_timeout=15.0))
    s.reactor.advance(10.0)  # the action's own timeout: not the outcome
    assert not outcome.called
    s.reactor.advance(5.0)
    assert isinstance(outcome.error(), OriginateOutcomeUnknown)


def test_a_refused_originate_is_its_own_failure() -> None:
    s, pbx = up()
    outcome = Outcome(s.client.originate(callback()))
    pbx.send("Response: Error\r\nActionID: callback-48\r\nMessage: Permission denied\r\n\r\n")
    error = outcome.error()
    assert isinstance(error, OriginateRefused) and error.message == "Permission denied"
    s.reactor.advance(3600.0)
    assert len(outcome.failures) == 1, "no later timeout on top"


def test_an_action_id_in_use_is_refused_without_sending() -> None:
    s, pbx = up()
    Outcome(s.client.originate(callback()))
    pbx.actions()
    again = Outcome(s.client.originate(callback(channel_id="cti-other")))
    assert isinstance(again.error(), ValueError)
    assert pbx.actions() == []
