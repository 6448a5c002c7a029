"""One AMI connection: framing, actions and their Deferreds, event lists, keep-alive.

The protocol knows nothing about login, reconnecting or listeners (``client.py`` does);
it turns bytes into messages and back, like txtorcon's control protocol:

* Every action gets an ``ActionID`` (``cti-<n>`` unless the caller brings one) and a
  Deferred. AMI answers out of order and lets actions overlap, so nothing waits in a
  queue: the ActionID is the only correlation.
* When the link drops, every outstanding Deferred fails with :class:`AMIConnectionLost`
  naming its action. Nothing is ever re-sent: an Originate sent twice dials a customer
  twice, so only the caller may decide to try again.
* A response with ``EventList: start`` (and every action known to answer with a list)
  collects its items until the ``...Complete`` event. Items are matched by ActionID and
  never reach the live event stream. An item whose ``Event`` cannot belong to that list
  is dropped: trace 13-crlf shows a caller name with raw CR/LF forging an
  ``Event: Hangup`` that carries the real ActionID of a ``QueueStatus`` in progress.
* The parser is not a ``LineReceiver``: events with hundreds of headers must not hit a
  16 KiB line limit and drop the link. It builds only the events in :attr:`wanted`
  (the owner's choice; responses and anything with an ``ActionID`` always).
* Every read re-arms ``TCP_QUICKACK`` (Linux): what the PBX sends next is acknowledged at
  once. Asterisk does not turn Nagle's algorithm off on AMI sessions, so a small event
  written while the previous one is unacknowledged waits for our ACK - with the
  kernel's delayed ACK, a ring arriving 20 ms after the previous call's came 20 ms late.
* Keep-alive: any bytes from the PBX are a sign of life. A Ping goes out only after a
  quiet spell, and only a link that then stays silent is dropped: in a flood the Pong
  queues behind thousands of events, and a slow reader is not a dead link.
"""

from __future__ import annotations

import itertools
import socket
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from cti_bridge.ami.parser import AMIParser, EventFilter, FramingError, Message, format_action

__all__ = [
    "LIST_ACTIONS",
    "AMIActionError",
    "AMIConnectionLost",
    "AMIError",
    "AMIProtocol",
    "AMIProtocolFactory",
    "AMITimeout",
    "ActionResult",
    "CommandOutput",
]

log = structlog.stdlib.get_logger("cti_bridge.ami.protocol")

#: Linux's "acknowledge without delay" socket option; None where there is none.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

#: Seconds an action may take before its Deferred fails with :class:`AMITimeout`.
DEFAULT_ACTION_TIMEOUT = 10.0

#: Actions that answer with an event list: lower-case action -> (item events, end event).
#: Items of these lists are only accepted when their ``Event`` is one of these names.
LIST_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "queuestatus": (
        frozenset({"QueueParams", "QueueMember", "QueueEntry"}),
        "QueueStatusComplete",
    ),
    "queuesummary": (frozenset({"QueueSummary"}), "QueueSummaryComplete"),
    "coreshowchannels": (frozenset({"CoreShowChannel"}), "CoreShowChannelsComplete"),
    "status": (frozenset({"Status"}), "StatusComplete"),
    "agents": (frozenset({"Agents"}), "AgentsComplete"),
    "bridgelist": (frozenset({"BridgeListItem"}), "BridgeListComplete"),
    "devicestatelist": (frozenset({"DeviceStateChange"}), "DeviceStateListComplete"),
    "extensionstatelist": (frozenset({"ExtensionStatus"}), "ExtensionStateListComplete"),
    "pjsipshowcontacts": (frozenset({"ContactList"}), "ContactListComplete"),
    "pjsipshowendpoints": (frozenset({"EndpointList"}), "EndpointListComplete"),
    "sippeers": (frozenset({"PeerEntry"}), "PeerlistComplete"),
}

#: Events that only ever come as list items. Without a list waiting for them (a late
#: item after a timeout, or the headless half of a forged message) they are dropped
#: rather than passed off as live events.
LIST_ONLY_EVENTS = frozenset(
    {"QueueParams", "QueueMember", "QueueEntry", "QueueSummary", "CoreShowChannel", "Status"}
)

#: Live call events that no list of an unknown action is ever made of. Items of a
#: generic list with these names are the signature of injection, not of a list.
LIVE_ONLY_EVENTS = frozenset(
    {
        "AgentCalled",
        "AgentComplete",
        "AgentConnect",
        "AgentRingNoAnswer",
        "AttendedTransfer",
        "BlindTransfer",
        "BridgeCreate",
        "BridgeDestroy",
        "BridgeEnter",
        "BridgeLeave",
        "DialBegin",
        "DialEnd",
        "DialState",
        "FullyBooted",
        "Hangup",
        "HangupRequest",
        "Newchannel",
        "Newexten",
        "Newstate",
        "OriginateResponse",
        "QueueCallerAbandon",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "Shutdown",
        "SoftHangupRequest",
    }
)

#: Timers may fire this early (float rounding): still "on time" for the keep-alive.
_TIMER_SLACK = 1e-6

#: Headers whose values never go into a log line.
_SECRET_HEADERS = frozenset({"secret", "key"})


class AMIError(Exception):
    """Base of every AMI link error."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``; ``message`` is its ``Message:``."""

    def __init__(self, action: str, message: str, response: Message | None = None):
        super().__init__(f"AMI action {action} failed: {message}")
        self.action = action
        self.message = message
        self.response = response


class AMIConnectionLost(AMIError):
    """The link dropped before this action was answered. It was not re-sent."""

    def __init__(self, action: str, reason: str):
        super().__init__(
            f"AMI link lost before {action} was answered ({reason}); it was not re-sent"
        )
        self.action = action
        self.reason = reason


class AMITimeout(AMIError):
    """No answer in time. A late answer is dropped; the action may still have happened."""

    def __init__(self, action: str, timeout: float):
        super().__init__(f"AMI action {action} got no answer within {timeout:g} s")
        self.action = action
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The answer to one action: its response and, for list actions, the items."""

    action: str
    response: Message
    items: tuple[Message, ...] = ()
    #: The ``...Complete`` event of a list action (``None`` for plain actions).
    complete: Message | None = None


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """CLI output of the ``Command`` action, one entry per line (both AMI dialects)."""

    response: Message
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(eq=False, slots=True)
class _Pending:
    action: str
    action_id: str
    deferred: Deferred[Any]
    timeout: float
    timer: IDelayedCall | None = None
    command: bool = False
    #: List item names this action accepts: ``None`` = any but live call events.
    item_events: frozenset[str] | None = None
    complete_event: str | None = None
    is_list: bool = False
    response: Message | None = None
    items: list[Message] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Expected:
    """An event awaited by ActionID (an Originate's ``OriginateResponse``)."""

    action: str
    event: str
    deferred: Deferred[Message]
    timeout: float
    timer: IDelayedCall | None = None


def _loggable(headers: Iterable[tuple[str, object]]) -> dict[str, object]:
    """Action headers fit for a log line: secrets replaced, whatever the caller logs."""
    return {k: "***" if k.lower() in _SECRET_HEADERS else v for k, v in headers}


class AMIProtocol(Protocol):
    """Bytes <-> messages for one connection; actions return Deferreds.

    The owner sets :attr:`on_event` (live events with their arrival time) and
    :attr:`on_lost` (called once, with a readable reason, when the link is gone).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        legacy_command_output: bool | None = None,
        wanted: EventFilter | None = None,
    ) -> None:
        self.clock = clock
        self.action_timeout = action_timeout
        self.parser = AMIParser(legacy_command_output=legacy_command_output, wanted=wanted)
        self.on_event: Callable[[Message, float], None] = lambda msg, at: None
        self.on_lost: Callable[[str], None] = lambda reason: None
        self.connected = False
        #: Arrival time (``clock.seconds()``) of the last bytes read.
        self.last_received_at: float | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        #: Events awaited by ActionID (see :meth:`expect_event`); empty nearly always.
        self._expected: dict[str, _Expected] = {}
        #: ActionIDs that timed out: their late answers are dropped quietly ...
        self._expired: deque[str] = deque(maxlen=256)
        #: ... and so are the late items of timed-out lists. Events with the ActionID of
        #: a timed-out plain action (a late OriginateResponse) are still live events.
        self._expired_lists: deque[str] = deque(maxlen=256)
        self._drop_reason: str | None = None
        self._quick_ack_off = False
        self._keepalive_call: IDelayedCall | None = None
        self._keepalive: tuple[float, float] = (0.0, 0.0)
        self._keepalive_since = 0.0
        #: When the keep-alive's outstanding Ping went out (``None``: none outstanding).
        self._ping_sent_at: float | None = None

    @property
    def can_send(self) -> bool:
        """Whether an action written now goes out on an open, trusted connection."""
        return bool(self.connected) and self.transport is not None and self._drop_reason is None

    @property
    def banner(self) -> str | None:
        return self.parser.banner

    @property
    def wanted(self) -> EventFilter | None:
        """The live events to parse and deliver (``None``: all); see ``EventFilter``."""
        return self.parser.wanted

    @wanted.setter
    def wanted(self, wanted: EventFilter | None) -> None:
        self.parser.wanted = wanted

    # -- Twisted protocol -------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        self._quick_ack()

    def dataReceived(self, data: bytes) -> None:
        self._quick_ack()
        received_at = self.clock.seconds()
        self.last_received_at = received_at
        try:
            messages = self.parser.feed(data)
        except FramingError as exc:
            log.error("ami_framing_error", error=str(exc))
            self.drop(f"framing error: {exc}")
            return
        if self.parser.has_dropped:  # rare: a message over the parser's bounds
            for reason, first in self.parser.take_dropped():
                log.warning("ami_message_dropped", reason=reason, first_line=first)
        for msg in messages:
            if self._drop_reason is not None:
                return  # dropped by a handler: the rest of this read is not trusted
            self._dispatch(msg, received_at)

    def _quick_ack(self) -> None:
        """Acknowledge the next segment at once (the kernel clears the flag as it goes)."""
        if _QUICKACK is None or self._quick_ack_off:
            return
        get_handle = getattr(self.transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if not isinstance(handle, socket.socket) or handle.type != socket.SOCK_STREAM:
            self._quick_ack_off = True  # not a TCP socket (a test transport, a pipe)
            return
        try:
            handle.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            self._quick_ack_off = True  # e.g. a Unix socket

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self._stop_keepalive()
        text = self._drop_reason or _reason_text(reason)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            p.deferred.errback(AMIConnectionLost(p.action, text))
        expected, self._expected = self._expected, {}
        for e in expected.values():
            if e.timer is not None and e.timer.active():
                e.timer.cancel()
            e.deferred.errback(AMIConnectionLost(e.action, text))
        self.on_lost(text)

    # -- actions ------------------------------------------------------------------

    def send_action(
        self,
        action: str,
        headers: Mapping[str, str | int | Sequence[str]] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        list_items: Iterable[str] | None = None,
    ) -> Deferred[ActionResult]:
        """Send one action; the Deferred fires with its :class:`ActionResult`.

        Fails with :class:`AMIActionError` on ``Response: Error``, :class:`AMITimeout`
        after ``timeout`` seconds and :class:`AMIConnectionLost` if the link drops
        first. ``list_items`` names the item events of a list action this module does
        not know, so that its items are checked like the known ones.
        """
        return self._send(action, headers, action_id, timeout, list_items, command=False)

    def command(self, cli: str, *, timeout: float | None = None) -> Deferred[CommandOutput]:
        """Run a CLI command through the ``Command`` action and return its output."""
        return self._send("Command", {"Command": cli}, None, timeout, None, command=True)

    def _send(
        self,
        action: str,
        headers: Mapping[str, str | int | Sequence[str]] | None,
        action_id: str | None,
        timeout: float | None,
        list_items: Iterable[str] | None,
        *,
        command: bool,
    ) -> Deferred[Any]:
        headers = dict(headers or {})
        if any(k.lower() == "actionid" for k in headers):
            raise ValueError("pass the ActionID as action_id=, not as a header")
        if action_id is None:
            action_id = f"cti-{next(self._ids)}"
            while action_id in self._pending or action_id in self._expected:
                action_id = f"cti-{next(self._ids)}"
        elif action_id in self._pending or action_id in self._expected:
            raise ValueError(f"ActionID {action_id!r} is already in use on this link")
        data = format_action(action, {**headers, "ActionID": action_id})
        d: Deferred[Any] = Deferred()
        if not self.connected or self.transport is None or self._drop_reason is not None:
            d.errback(AMIConnectionLost(action, self._drop_reason or "not connected"))
            return d
        known = LIST_ACTIONS.get(action.lower())
        pending = _Pending(
            action=action,
            action_id=action_id,
            deferred=d,
            timeout=self.action_timeout if timeout is None else timeout,
            command=command,
            item_events=frozenset(list_items) if list_items is not None else None,
        )
        if known is not None:
            pending.is_list = True
            pending.item_events, pending.complete_event = known
        self._pending[action_id] = pending
        pending.timer = self.clock.callLater(pending.timeout, self._expire, pending)
        log.debug(
            "ami_action_sent",
            action=action,
            action_id=action_id,
            headers=_loggable(headers.items()),
        )
        self.transport.write(data)
        return d

    def expect_event(
        self, action_id: str, event: str, *, action: str, timeout: float
    ) -> Deferred[Message]:
        """The next ``event`` that carries ``action_id``, e.g. an ``OriginateResponse``.

        The event still goes to :attr:`on_event` first, like any live event; then the
        Deferred fires with it. It fails with :class:`AMITimeout` after ``timeout``
        seconds and with :class:`AMIConnectionLost` when the link drops first.
        """
        if action_id in self._expected:
            raise ValueError(f"an event with ActionID {action_id!r} is already awaited")
        d: Deferred[Message] = Deferred()
        expected = _Expected(action, event, d, timeout)
        if not self.connected or self._drop_reason is not None:
            d.errback(AMIConnectionLost(action, self._drop_reason or "not connected"))
            return d
        self._expected[action_id] = expected
        expected.timer = self.clock.callLater(timeout, self._expected_timeout, action_id)
        return d

    def forget_expected(self, action_id: str) -> None:
        """Stop awaiting the event of ``action_id`` (its Deferred never fires)."""
        expected = self._expected.pop(action_id, None)
        if expected is not None and expected.timer is not None and expected.timer.active():
            expected.timer.cancel()

    def _expected_timeout(self, action_id: str) -> None:
        expected = self._expected.pop(action_id, None)
        if expected is None:
            return
        log.warning(
            "ami_event_timeout",
            action=expected.action,
            action_id=action_id,
            event_name=expected.event,
            timeout=expected.timeout,
        )
        expected.deferred.errback(AMITimeout(expected.action, expected.timeout))

    def _expect_met(self, msg: Message, action_id: str, event: str) -> None:
        expected = self._expected.get(action_id)
        if expected is None or expected.event != event:
            return
        del self._expected[action_id]
        if expected.timer is not None and expected.timer.active():
            expected.timer.cancel()
        expected.deferred.callback(msg)

    def _expire(self, pending: _Pending) -> None:
        if self._pending.pop(pending.action_id, None) is None:
            return
        self._expired.append(pending.action_id)
        if pending.is_list:
            self._expired_lists.append(pending.action_id)
        log.warning(
            "ami_action_timeout",
            action=pending.action,
            action_id=pending.action_id,
            timeout=pending.timeout,
        )
        pending.deferred.errback(AMITimeout(pending.action, pending.timeout))

    def _finish(self, pending: _Pending, result: object) -> None:
        del self._pending[pending.action_id]
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if isinstance(result, Exception):
            pending.deferred.errback(result)
        else:
            pending.deferred.callback(result)

    # -- incoming -----------------------------------------------------------------

    def _dispatch(self, msg: Message, received_at: float) -> None:
        action_id = msg.get("ActionID")
        event = msg.get("Event")
        if action_id is None and event is not None:  # the common case: a live event
            if event in LIST_ONLY_EVENTS or "EventList" in msg:
                log.warning(
                    "ami_orphan_list_item_dropped", event_name=event, action_id=None, msg=msg
                )
                return
            try:
                self.on_event(msg, received_at)
            except Exception:
                log.exception("ami_event_handler_failed", event_name=event)
            return
        if event is None:
            # OriginateResponse and others carry a Response: header too: Event decides.
            if "Response" in msg:
                self._on_response(msg, action_id)
            else:
                log.warning("ami_message_ignored", reason="neither Event nor Response", msg=msg)
            return
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is not None and pending.is_list:
            self._on_list_event(pending, msg, event)
            return
        if action_id is not None and action_id in self._expired_lists:
            log.info("ami_late_list_item_dropped", event_name=event, action_id=action_id)
            return
        if event in LIST_ONLY_EVENTS or "EventList" in msg:
            log.warning(
                "ami_orphan_list_item_dropped",
                event_name=event,
                action_id=action_id,
                msg=msg,
            )
            return
        try:
            self.on_event(msg, received_at)
        except Exception:
            log.exception("ami_event_handler_failed", event_name=event)
        if self._expected and action_id is not None:
            self._expect_met(msg, action_id, event)

    def _on_response(self, msg: Message, action_id: str | None) -> None:
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None:
            log.info(
                "ami_response_dropped",
                reason="late" if action_id in self._expired else "unknown ActionID",
                action_id=action_id,
                response=msg.get("Response"),
            )
            return
        if pending.response is not None:
            log.warning("ami_duplicate_response_dropped", action=pending.action, msg=msg)
            return
        kind = msg.get("Response", "").lower()
        if kind == "error":
            message = msg.get("Message", "error")
            if pending.command and msg.getall("Output"):
                message = f"{message}: {' / '.join(msg.getall('Output'))}"
            self._finish(pending, AMIActionError(pending.action, message, msg))
            return
        pending.response = msg
        if msg.get("EventList", "").lower() == "start":
            pending.is_list = True
        if pending.is_list:
            return  # wait for the list's Complete event
        if pending.command:
            self._finish(pending, CommandOutput(msg, tuple(msg.getall("Output"))))
        else:
            self._finish(pending, ActionResult(pending.action, msg))

    def _on_list_event(self, pending: _Pending, msg: Message, event: str) -> None:
        expected_end = pending.complete_event
        if msg.get("EventList", "").lower() == "complete" or event == expected_end:
            if expected_end is not None and event != expected_end:
                log.warning(
                    "ami_forged_list_end_dropped",
                    action=pending.action,
                    action_id=pending.action_id,
                    event_name=event,
                    msg=msg,
                )
                return
            self._complete_list(pending, msg)
            return
        allowed = pending.item_events
        plausible = event in allowed if allowed is not None else event not in LIVE_ONLY_EVENTS
        if not plausible:
            log.warning(
                "ami_implausible_list_item_dropped",
                action=pending.action,
                action_id=pending.action_id,
                event_name=event,
                msg=msg,
            )
            return
        pending.items.append(msg)

    def _complete_list(self, pending: _Pending, complete: Message) -> None:
        listed = complete.get("ListItems")
        if listed is not None and listed.isdigit() and int(listed) != len(pending.items):
            log.warning(
                "ami_list_count_mismatch",
                action=pending.action,
                action_id=pending.action_id,
                announced=int(listed),
                received=len(pending.items),
            )
        response = pending.response if pending.response is not None else Message()
        result = ActionResult(pending.action, response, tuple(pending.items), complete)
        self._finish(pending, result)

    # -- keep-alive and dropping ------------------------------------------------------

    def start_keepalive(self, interval: float, timeout: float) -> None:
        """Drop the link when the PBX falls silent: after ``interval`` s without a byte
        a Ping asks for one, and ``timeout`` s more without any byte drop the link.

        Any bytes count, not only the Pong (nor only a ``Success``: ``Permission denied``
        proves the PBX reads and writes this socket as well): while events flow, no Ping
        is needed, and a Pong held up behind a flood of events cannot drop a healthy link.
        """
        self._stop_keepalive()
        self._keepalive = (interval, timeout)
        self._keepalive_since = self.clock.seconds()
        self._ping_sent_at = None
        self._keepalive_call = self.clock.callLater(interval, self._keepalive_check)

    def _stop_keepalive(self) -> None:
        if self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.cancel()
        self._keepalive_call = None

    def _keepalive_check(self) -> None:
        self._keepalive_call = None
        if not self.connected or self._drop_reason is not None:
            return
        interval, timeout = self._keepalive
        now = self.clock.seconds()
        heard = self._keepalive_since
        if self.last_received_at is not None and self.last_received_at > heard:
            heard = self.last_received_at
        if self._ping_sent_at is not None:
            if heard < self._ping_sent_at:
                # Checked exactly ``timeout`` s after the Ping, and not a byte since.
                self.drop(
                    f"keep-alive: nothing received for {now - heard:g} s "
                    f"(no answer to Ping within {timeout:g} s)"
                )
                return
            self._ping_sent_at = None
        quiet = now - heard
        if quiet < interval - _TIMER_SLACK:
            self._keepalive_call = self.clock.callLater(interval - quiet, self._keepalive_check)
            return
        self._ping_sent_at = now
        # The answer itself does not matter (bytes do); its errors are not news either:
        # a timeout is judged above, a lost link is reported by connectionLost.
        self.send_action("Ping", timeout=timeout).addErrback(lambda _: None)
        self._keepalive_call = self.clock.callLater(timeout, self._keepalive_check)

    def drop(self, reason: str) -> None:
        """Close the link at once (no flush): it is not trusted any more."""
        if self._drop_reason is not None:
            return
        self._drop_reason = reason
        log.warning("ami_link_dropped", reason=reason)
        transport = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()


def _reason_text(reason: Failure) -> str:
    value = reason.value
    text = str(value) if value is not None else ""
    name = type(value).__name__ if value is not None else "unknown"
    return f"{name}: {text}" if text else name


class AMIProtocolFactory(Factory):
    """Builds an :class:`AMIProtocol` per connection and hands it to ``prepare``."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        legacy_command_output: bool | None = None,
        wanted: EventFilter | None = None,
    ) -> None:
        self.clock = clock
        self.action_timeout = action_timeout
        self.legacy_command_output = legacy_command_output
        #: The event filter of every new connection (``None``: all events).
        self.wanted = wanted

    def buildProtocol(self, addr: object) -> AMIProtocol:
        proto = AMIProtocol(
            self.clock,
            action_timeout=self.action_timeout,
            legacy_command_output=self.legacy_command_output,
            wanted=self.wanted,
        )
        proto.factory = self
        return proto
