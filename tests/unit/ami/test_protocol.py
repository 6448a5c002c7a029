"""AMIProtocol: bytes in, bytes out, over a StringTransport with an injected Clock."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import (
    ActionResult,
    AMIActionError,
    AMIConnectionLost,
    AMIProtocol,
    AMIProtocolFactory,
    AMITimeout,
    CommandOutput,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


@dataclass
class Link:
    proto: AMIProtocol
    transport: StringTransport
    clock: Clock
    events: list[tuple[Message, float]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def receive(self, data: bytes | str) -> None:
        self.proto.dataReceived(data.encode() if isinstance(data, str) else data)

    def sent(self) -> bytes:
        value: bytes = self.transport.value()
        self.transport.clear()
        return value

    def close(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone("closed by the PBX")))

    @property
    def event_names(self) -> list[str | None]:
        return [m.event for m, _ in self.events]


def connect(banner: bytes = BANNER, **kwargs: object) -> Link:
    clock = Clock()
    clock.advance(1000.0)
    proto = AMIProtocolFactory(clock, **kwargs).buildProtocol(None)  # type: ignore[arg-type]
    transport = StringTransport()
    link = Link(proto, transport, clock)
    proto.on_event = lambda msg, at: link.events.append((msg, at))
    proto.on_lost = link.lost.append
    proto.makeConnection(transport)
    if banner:
        link.receive(banner)
    return link


def result_of(d: object) -> object:
    out: list[object] = []
    d.addBoth(out.append)  # type: ignore[attr-defined]
    assert out, "the Deferred has not fired"
    return out[0]


def failure_of(d: object, kind: type[Exception]) -> Exception:
    result = result_of(d)
    assert isinstance(result, Failure), result
    assert isinstance(result.value, kind), result.value
    return result.value


def test_action_bytes_and_response() -> None:
    link = connect()
    d = link.proto.send_action("Ping")
    assert link.sent() == b"Action: Ping\r\nActionID: cti-1\r\n\r\n"
    link.receive("Response: Success\r\nActionID: cti-1\r\nPing: Pong\r\n\r\n")
    result = result_of(d)
    assert isinstance(result, ActionResult)
    assert result.action == "Ping"
    assert result.response["Ping"] == "Pong"
    assert result.items == ()
    assert link.events == []
    assert link.clock.getDelayedCalls() == []  # the timeout is cancelled


def test_action_ids_are_unique_and_answers_correlate_out_of_order() -> None:
    link = connect()
    first = link.proto.send_action("QueuePause", {"Interface": "PJSIP/1001", "Paused": "true"})
    second = link.proto.send_action("Ping", action_id="mine-7")
    third = link.proto.send_action("Ping")
    assert link.sent() == (
        b"Action: QueuePause\r\nInterface: PJSIP/1001\r\nPaused: true\r\nActionID: cti-1\r\n\r\n"
        b"Action: Ping\r\nActionID: mine-7\r\n\r\n"
        b"Action: Ping\r\nActionID: cti-2\r\n\r\n"
    )
    link.receive("Response: Success\r\nActionID: cti-2\r\nPing: Pong\r\n\r\n")
    link.receive("Response: Success\r\nActionID: mine-7\r\nPing: Pong\r\n\r\n")
    link.receive("Response: Success\r\nActionID: cti-1\r\nMessage: Interface paused\r\n\r\n")
    assert result_of(third).response.action_id == "cti-2"  # type: ignore[attr-defined]
    assert result_of(second).response.action_id == "mine-7"  # type: ignore[attr-defined]
    assert result_of(first).response["Message"] == "Interface paused"  # type: ignore[attr-defined]


def test_duplicate_action_id_is_refused() -> None:
    link = connect()
    link.proto.send_action("Originate", {"Channel": "PJSIP/1001"}, action_id="callback-42")
    link.sent()
    with pytest.raises(ValueError, match="callback-42"):
        link.proto.send_action("Originate", {"Channel": "PJSIP/1001"}, action_id="callback-42")
    assert link.sent() == b""


def test_line_breaks_in_values_are_refused_and_nothing_is_sent() -> None:
    link = connect()
    with pytest.raises(ValueError):
        link.proto.send_action("Originate", {"CallerID": "Piet\r\nAction: Hangup"})
    assert link.sent() == b""
    assert link.clock.getDelayedCalls() == []


def test_error_response_errbacks_with_the_message() -> None:
    link = connect()
    d = link.proto.send_action("QueueRemove", {"Queue": "support", "Interface": "x"})
    link.receive(
        "Response: Error\r\nActionID: cti-1\r\n"
        "Message: Unable to remove interface: Not there\r\n\r\n"
    )
    err = failure_of(d, AMIActionError)
    assert isinstance(err, AMIActionError)
    assert err.action == "QueueRemove"
    assert err.message == "Unable to remove interface: Not there"
    assert err.response is not None and err.response["Response"] == "Error"
    assert "QueueRemove" in str(err)


def test_timeout_errbacks_and_the_late_answer_is_dropped() -> None:
    link = connect(action_timeout=10.0)
    d = link.proto.send_action("Ping")
    link.clock.advance(9.9)
    assert not d.called
    link.clock.advance(0.1)
    err = failure_of(d, AMITimeout)
    assert "Ping" in str(err) and "10 s" in str(err)
    link.receive("Response: Success\r\nActionID: cti-1\r\nPing: Pong\r\n\r\n")
    assert link.events == []
    assert link.lost == []


def test_per_action_timeout() -> None:
    link = connect()
    d = link.proto.send_action("Originate", {"Channel": "PJSIP/1001"}, timeout=30.0)
    link.clock.advance(29.0)
    assert not d.called
    link.clock.advance(1.0)
    assert failure_of(d, AMITimeout).timeout == 30.0  # type: ignore[attr-defined]


def test_events_carry_their_arrival_time() -> None:
    link = connect()
    link.receive("Event: Newchannel\r\nChannel: PJSIP/1001-1\r\n\r\n")
    link.clock.advance(2.5)
    link.receive("Event: Hangup\r\nChannel: PJSIP/1001-1\r\n\r\n")
    assert [(m.event, at) for m, at in link.events] == [("Newchannel", 1000.0), ("Hangup", 1002.5)]


QUEUE_STATUS = (
    "Response: Success\r\nActionID: cti-1\r\nEventList: start\r\n"
    "Message: Queue status will follow\r\n\r\n"
    "Event: QueueParams\r\nQueue: support\r\nCalls: 1\r\nActionID: cti-1\r\n\r\n"
    "Event: Newchannel\r\nChannel: PJSIP/pstn-1\r\n\r\n"  # a live event in between
    "Event: QueueMember\r\nQueue: support\r\nName: Anna\r\nActionID: cti-1\r\n\r\n"
    "Event: QueueEntry\r\nQueue: support\r\nPosition: 1\r\nActionID: cti-1\r\n\r\n"
    "Event: QueueStatusComplete\r\nActionID: cti-1\r\nEventList: Complete\r\nListItems: 3\r\n\r\n"
)


def test_event_list_is_collected_until_complete() -> None:
    link = connect()
    d = link.proto.send_action("QueueStatus")
    data = QUEUE_STATUS.encode()
    cut = data.index(b"Event: QueueStatusComplete")
    link.receive(data[:cut])
    assert not d.called
    link.receive(data[cut:])
    result = result_of(d)
    assert isinstance(result, ActionResult)
    assert result.response["Message"] == "Queue status will follow"
    assert [m.event for m in result.items] == ["QueueParams", "QueueMember", "QueueEntry"]
    assert result.complete is not None and result.complete["ListItems"] == "3"
    assert link.event_names == ["Newchannel"]  # items never reach the live stream


def test_unknown_list_action_is_collected_by_its_eventlist_header() -> None:
    link = connect()
    d = link.proto.send_action("PJSIPShowRegistrationsInbound")
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nEventList: start\r\n\r\n"
        "Event: InboundRegistrationDetail\r\nActionID: cti-1\r\nObjectName: 1001\r\n\r\n"
        "Event: Hangup\r\nActionID: cti-1\r\nChannel: PJSIP/1001-9\r\n\r\n"
        "Event: InboundRegistrationDetailComplete\r\nActionID: cti-1\r\n"
        "EventList: Complete\r\nListItems: 1\r\n\r\n"
    )
    result = result_of(d)
    assert isinstance(result, ActionResult)
    assert [m.event for m in result.items] == ["InboundRegistrationDetail"]
    assert result.complete is not None
    assert link.events == []  # the Hangup with the list's ActionID is dropped


def test_forged_list_item_with_the_real_action_id_is_dropped() -> None:
    """Trace 13-crlf: a caller name with CR/LF splits a QueueEntry in two."""
    link = connect()
    d = link.proto.send_action("QueueStatus", {"Queue": "support"}, action_id="qstatus-crlf")
    link.receive(
        "Response: Success\r\nActionID: qstatus-crlf\r\nEventList: start\r\n\r\n"
        "Event: QueueParams\r\nQueue: support\r\nActionID: qstatus-crlf\r\n\r\n"
        "Event: QueueEntry\r\nQueue: support\r\nPosition: 1\r\nCallerIDName: Piet Fraude\r\n\r\n"
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: Local/1001@agents-00000999;1\r\n"
        "Uniqueid: 1795730000.999\r\nCause: 16\r\nWait: 1\r\nActionID: qstatus-crlf\r\n\r\n"
        "Event: QueueStatusComplete\r\nActionID: qstatus-crlf\r\nEventList: Complete\r\n"
        "ListItems: 2\r\n\r\n"
    )
    result = result_of(d)
    assert isinstance(result, ActionResult)
    assert [m.event for m in result.items] == ["QueueParams"]
    assert link.events == [], "neither half of the forged message may look like a live event"


def test_forged_list_end_does_not_end_the_list() -> None:
    link = connect()
    d = link.proto.send_action("CoreShowChannels")
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nEventList: start\r\n\r\n"
        "Event: Hangup\r\nActionID: cti-1\r\nEventList: Complete\r\n\r\n"
    )
    assert not d.called
    link.receive(
        "Event: CoreShowChannel\r\nActionID: cti-1\r\nChannel: PJSIP/1001-1\r\n\r\n"
        "Event: CoreShowChannelsComplete\r\nActionID: cti-1\r\nEventList: Complete\r\n"
        "ListItems: 1\r\n\r\n"
    )
    result = result_of(d)
    assert isinstance(result, ActionResult)
    assert [m["Channel"] for m in result.items] == ["PJSIP/1001-1"]


def test_late_list_items_after_a_timeout_are_not_live_events() -> None:
    link = connect()
    d = link.proto.send_action("PJSIPShowContacts", timeout=1.0)
    link.clock.advance(1.0)
    failure_of(d, AMITimeout)
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nEventList: start\r\n\r\n"
        "Event: ContactList\r\nActionID: cti-1\r\n\r\n"
        "Event: ContactListComplete\r\nActionID: cti-1\r\nEventList: Complete\r\n\r\n"
        "Event: QueueMember\r\nQueue: support\r\n\r\n"  # list-only name, no list waiting
    )
    assert link.events == []


def test_an_event_with_the_action_id_of_a_plain_action_is_live() -> None:
    """Async Originate: the response comes first, OriginateResponse later, same ActionID."""
    link = connect()
    d = link.proto.send_action("Originate", {"Channel": "PJSIP/1001", "Async": "true"})
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nMessage: Originate successfully queued\r\n\r\n"
        "Event: OriginateResponse\r\nActionID: cti-1\r\nResponse: Failure\r\nReason: 3\r\n\r\n"
    )
    assert result_of(d).response["Message"] == "Originate successfully queued"  # type: ignore[attr-defined]
    # "Response:" inside an event does not make it a response.
    assert link.event_names == ["OriginateResponse"]


def test_a_late_originate_response_after_a_timeout_is_still_delivered() -> None:
    """The dialer needs the outcome even when the Originate answer itself came late."""
    link = connect()
    d = link.proto.send_action("Originate", {"Channel": "PJSIP/1001"}, timeout=5.0)
    link.clock.advance(5.0)
    failure_of(d, AMITimeout)
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nMessage: Originate successfully queued\r\n\r\n"
        "Event: OriginateResponse\r\nActionID: cti-1\r\nResponse: Success\r\nReason: 4\r\n\r\n"
    )
    assert link.event_names == ["OriginateResponse"]


def test_command_output_current_form() -> None:
    link = connect()
    d = link.proto.command("core show channels count")
    assert link.sent() == (
        b"Action: Command\r\nCommand: core show channels count\r\nActionID: cti-1\r\n\r\n"
    )
    link.receive(
        "Response: Success\r\nActionID: cti-1\r\nMessage: Command output follows\r\n"
        "Output: 0 active channels\r\nOutput: \r\nOutput: 0 calls processed  \r\n\r\n"
    )
    out = result_of(d)
    assert isinstance(out, CommandOutput)
    assert out.lines == ("0 active channels", "", "0 calls processed  ")
    assert out.text == "0 active channels\n\n0 calls processed  "


def test_command_output_legacy_follows_form() -> None:
    link = connect(banner=b"Asterisk Call Manager/1.3\r\n")
    d = link.proto.command("core show version")
    link.receive(
        "Response: Follows\r\nPrivilege: Command\r\nActionID: cti-1\r\n"
        "Asterisk 11.25.3 built by root\r\n--END COMMAND--\r\n\r\n"
    )
    out = result_of(d)
    assert isinstance(out, CommandOutput)
    assert out.lines == ("Asterisk 11.25.3 built by root",)


def test_command_error_carries_the_output() -> None:
    link = connect()
    d = link.proto.command("no such thing")
    link.receive(
        "Response: Error\r\nActionID: cti-1\r\nMessage: Command output follows\r\n"
        "Output: No such command 'no such thing' (type 'core show help no' for help)\r\n\r\n"
    )
    err = failure_of(d, AMIActionError)
    assert "No such command" in str(err)


def test_connection_lost_fails_every_action_in_flight_by_name() -> None:
    link = connect()
    originate = link.proto.send_action("Originate", {"Channel": "PJSIP/1001"})
    status = link.proto.send_action("QueueStatus")
    link.receive("Response: Success\r\nActionID: cti-2\r\nEventList: start\r\n\r\n")
    link.sent()
    link.close()
    errors = [failure_of(originate, AMIConnectionLost), failure_of(status, AMIConnectionLost)]
    assert [e.action for e in errors] == ["Originate", "QueueStatus"]  # type: ignore[attr-defined]
    assert "not re-sent" in str(errors[0])
    assert "closed by the PBX" in str(errors[0])
    assert link.lost == ["ConnectionDone: Connection was closed cleanly: closed by the PBX."]
    assert link.clock.getDelayedCalls() == []
    later = link.proto.send_action("Ping")
    failure_of(later, AMIConnectionLost)
    assert link.sent() == b"", "nothing is written (or re-sent) after the link is gone"


def test_keepalive_pings_and_keeps_pinging_while_answered() -> None:
    link = connect()
    link.proto.start_keepalive(20.0, 5.0)
    link.clock.advance(19.9)
    assert link.sent() == b""
    link.clock.advance(0.1)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-1\r\n\r\n"
    link.receive("Response: Success\r\nActionID: cti-1\r\nPing: Pong\r\n\r\n")
    link.clock.advance(20.0)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-2\r\n\r\n"
    # An error answer (e.g. before login: "Permission denied") proves the link is alive.
    link.receive("Response: Error\r\nActionID: cti-2\r\nMessage: Permission denied\r\n\r\n")
    link.clock.advance(20.0)
    assert b"Action: Ping" in link.sent()
    assert not link.transport.disconnecting


def test_keepalive_timeout_drops_the_link() -> None:
    link = connect()
    pending = link.proto.send_action("Originate", {"Channel": "PJSIP/1001"}, timeout=60.0)
    link.proto.start_keepalive(20.0, 5.0)
    link.clock.advance(20.0)
    link.clock.advance(4.9)
    assert not link.transport.disconnecting
    link.clock.advance(0.1)
    assert link.transport.disconnecting and link.transport.disconnected  # aborted, not flushed
    link.close()
    assert link.lost == ["keep-alive: nothing received for 25 s (no answer to Ping within 5 s)"]
    err = failure_of(pending, AMIConnectionLost)
    assert "keep-alive" in str(err)
    assert link.clock.getDelayedCalls() == []


def test_keepalive_needs_no_ping_while_events_flow() -> None:
    link = connect()
    link.proto.start_keepalive(20.0, 5.0)
    for _ in range(30):  # an event every 15 s: never 20 s of silence
        link.clock.advance(15.0)
        link.receive("Event: Newexten\r\n\r\n")
    assert link.sent() == b""
    link.clock.advance(20.0)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-1\r\n\r\n"


def test_keepalive_a_pong_stuck_behind_a_flood_does_not_drop_the_link() -> None:
    link = connect()
    link.proto.start_keepalive(20.0, 5.0)
    link.clock.advance(20.0)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-1\r\n\r\n"
    # The PBX answers at once, but its Pong waits behind a minute of events we read
    # slowly: bytes keep coming, the Pong does not.
    for _ in range(600):
        link.clock.advance(0.1)
        link.receive("Event: VarSet\r\nVariable: BRIDGEPEER\r\n\r\n")
    assert not link.transport.disconnecting
    assert link.sent() == b"", "no second Ping while bytes flow"
    link.receive("Response: Success\r\nActionID: cti-1\r\nPing: Pong\r\n\r\n")  # late
    assert not link.transport.disconnecting
    assert len(link.events) == 600


def test_keepalive_drops_a_link_that_falls_silent_after_a_flood() -> None:
    link = connect()
    link.proto.start_keepalive(20.0, 5.0)
    for _ in range(100):
        link.clock.advance(0.5)
        link.receive("Event: Newexten\r\n\r\n")
    link.clock.advance(19.9)
    assert link.sent() == b""
    link.clock.advance(0.1)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-1\r\n\r\n"
    link.clock.advance(5.0)
    assert link.transport.disconnecting
    link.close()
    assert link.lost == ["keep-alive: nothing received for 25 s (no answer to Ping within 5 s)"]
    assert link.clock.getDelayedCalls() == []


def test_keepalive_any_bytes_after_the_ping_count_not_only_the_pong() -> None:
    link = connect()
    link.proto.start_keepalive(20.0, 5.0)
    link.clock.advance(20.0)
    link.sent()
    link.clock.advance(4.0)
    link.receive("Event: Hang")  # half an event is a sign of life too
    link.clock.advance(1.0)
    assert not link.transport.disconnecting
    link.clock.advance(18.9)
    assert link.sent() == b"", "20 s after the last byte, not after the Ping"
    link.clock.advance(0.1)
    assert link.sent() == b"Action: Ping\r\nActionID: cti-2\r\n\r\n"


def test_framing_error_drops_the_link() -> None:
    link = connect()
    link.proto.parser._max = 1000  # the default is 8 MiB; the check is the same
    link.receive("Event: Endless\r\nX: " + "y" * 2000)
    assert link.transport.disconnecting
    link.close()
    assert link.lost[0].startswith("framing error")


def test_a_failing_event_handler_does_not_stop_the_stream() -> None:
    link = connect()
    seen: list[str | None] = []

    def handler(msg: Message, at: float) -> None:
        seen.append(msg.event)
        if msg.event == "Bad":
            raise RuntimeError("listener bug")

    link.proto.on_event = handler
    link.receive("Event: Bad\r\n\r\nEvent: Good\r\n\r\n")
    assert seen == ["Bad", "Good"]
    assert not link.transport.disconnecting


def test_a_100_kb_event_does_not_drop_the_link() -> None:
    link = connect()
    headers = "".join(f"ChanVariable: V{i}={'x' * 95}\r\n" for i in range(1000))
    data = ("Event: VarSet\r\n" + headers + "\r\n").encode()
    for i in range(0, len(data), 1460):
        link.receive(data[i : i + 1460])
    assert link.event_names == ["VarSet"]
    assert len(link.events[0][0].getall("ChanVariable")) == 1000
    assert not link.transport.disconnecting


def test_messages_after_a_drop_in_the_same_read_are_not_delivered() -> None:
    link = connect()

    def handler(msg: Message, at: float) -> None:
        link.events.append((msg, at))
        if msg.event == "Shutdown":
            link.proto.drop("PBX shut down")

    link.proto.on_event = handler
    link.receive("Event: Shutdown\r\n\r\nEvent: Hangup\r\n\r\n")
    assert link.event_names == ["Shutdown"]


class RecordingSocket(socket.socket):
    """A real socket that remembers the options set on it."""

    def __init__(self, family: int) -> None:
        super().__init__(family, socket.SOCK_STREAM)
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        self.options.append((level, option, value))
        super().setsockopt(level, option, value, *rest)


class SocketTransport(StringTransport):
    def __init__(self, handle: socket.socket) -> None:
        super().__init__()
        self.handle = handle

    def getHandle(self) -> socket.socket:
        return self.handle


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_every_read_asks_tcp_to_acknowledge_the_next_segment_at_once() -> None:
    quickack = (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    with RecordingSocket(socket.AF_INET) as tcp:
        proto = AMIProtocolFactory(Clock()).buildProtocol(None)
        proto.makeConnection(SocketTransport(tcp))
        assert tcp.options == [quickack]
        proto.dataReceived(BANNER)
        proto.dataReceived(b"Event: FullyBooted\r\n\r\n")
        assert tcp.options == [quickack] * 3
    # Not TCP (a Unix socket): tried once, then left alone.
    with RecordingSocket(socket.AF_UNIX) as unix:
        proto = AMIProtocolFactory(Clock()).buildProtocol(None)
        proto.makeConnection(SocketTransport(unix))
        proto.dataReceived(BANNER)
        assert len(unix.options) == 1
