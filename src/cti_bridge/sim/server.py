"""The AMI server: Asterisk 22's manager protocol over TCP, one session per connection.

Bytes on the wire follow ``main/manager.c`` and the recorded traces: the banner
``Asterisk Call Manager/11.0.0`` with no blank line after it, CRLF everywhere,
``Response``/``ActionID``/``Message`` in that order, list actions framed by ``EventList:
start`` and a ``...Complete`` event, ``Command`` output as one ``Output:`` header per
line, responses written *before* the events the action causes (quirk 12), a failed
login answered after Asterisk's one-second ``sleep(1)`` (on the injected clock) and
then the connection closed. Incoming actions are framed with our own
:class:`~cti_bridge.ami.parser.AMIParser`: an action is an AMI message like any other.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

from ..ami.parser import AMIParser, FramingError, Message
from .channels import Headers
from .dialplan import Dialplan
from .originate import OriginateRequest, Originator
from .pbx import PBX
from .queues import QueueEngine
from .reports import Reports

__all__ = ["AMIServerFactory", "AMISession", "format_message"]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EVENT_CLASSES = frozenset(
    {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message"}
)  # fmt: skip
GOODBYE = "Thanks for all the fish."
SYNOPSES = {
    "Atxfer": ("Attended transfer.", "call,all"),
    "BlindTransfer": ("Blind transfer channel(s) to the given destination", "call,all"),
    "Challenge": ("Generate Challenge for MD5 Auth.", "<none>"),
    "Command": ("Execute Asterisk CLI Command.", "command,all"),
    "CoreShowChannels": ("List currently active channels.", "system,reporting,all"),
    "Events": ("Control Event Flow.", "<none>"),
    "Hangup": ("Hangup channel.", "system,call,all"),
    "ListCommands": ("List available manager commands.", "<none>"),
    "Login": ("Login Manager.", "<none>"),
    "Logoff": ("Logoff Manager.", "<none>"),
    "Originate": ("Originate a call.", "originate,all"),
    "Ping": ("Keepalive command.", "<none>"),
    "QueuePause": ("Makes a queue member temporarily unavailable.", "agent,all"),
    "QueueStatus": ("Show queue status.", "<none>"),
    "QueueSummary": ("Show queue summary.", "<none>"),
    "Redirect": ("Redirect (transfer) a call.", "call,all"),
    "Status": ("List channel status.", "system,call,reporting,all"),
}


def format_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """One AMI message. Text is UTF-8; a caller ID given with surrogate escapes
    (``"Caf\\udce9"``) goes out as those raw bytes, as Asterisk relays whatever bytes a
    SIP display name carried (invalid UTF-8 included)."""
    text = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return text.encode("utf-8", "surrogateescape")


def _event_classes(privilege: str) -> frozenset[str]:
    return frozenset(privilege.split(",")) - {"all"}


def _parse_mask(value: str) -> frozenset[str] | None:
    """``Events:`` / ``EventMask:``: None = leave as is, empty = off, else the classes."""
    text = value.strip().lower()
    if not text:
        return None
    if text in ("on", "yes", "true", "1", "y", "t", "all"):
        return EVENT_CLASSES
    if text in ("off", "no", "false", "0", "n", "f", "none"):
        return frozenset()
    return frozenset(w.strip() for w in text.split(",")) & EVENT_CLASSES or None


def _parse_callerid(text: str) -> tuple[str, str]:
    """``"Name" <number>`` as ``ast_callerid_parse`` splits it."""
    match = re.fullmatch(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<]*?))\s*<([^>]*)>\s*', text)
    if match:
        name = match.group(1) if match.group(1) is not None else (match.group(2) or "")
        return match.group(3).strip(), name.strip()
    stripped = text.strip()
    if re.fullmatch(r"[+0-9*#]+", stripped):
        return stripped, ""
    return "", stripped


class AMIServerFactory(ServerFactory["AMISession"]):
    """Shared state of every session: the PBX, the credentials, the broadcast."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        pbx: PBX,
        queues: QueueEngine,
        dialplan: Dialplan,
        originator: Originator,
        reports: Reports,
        username: str,
        secret: str,
        rng: random.Random,
        timestamp_events: bool = False,
        auth_failure_delay: float = 1.0,
    ) -> None:
        self.clock = clock
        self.pbx = pbx
        self.queues = queues
        self.dialplan = dialplan
        self.originator = originator
        self.reports = reports
        self.username = username
        self.secret = secret
        self.rng = rng
        self.timestamp_events = timestamp_events
        self.auth_failure_delay = auth_failure_delay
        self.sessions: set[AMISession] = set()
        pbx.listeners.append(self.broadcast)

    def buildProtocol(self, addr: object) -> AMISession | None:
        session = AMISession()
        session.factory = self
        return session

    def broadcast(self, message: Headers) -> None:
        """Send one event to every logged-in session whose event mask wants it."""
        if self.timestamp_events:
            message = [*message[:2], ("Timestamp", f"{self.pbx.now():.6f}"), *message[2:]]
        classes = _event_classes(message[1][1])
        data = format_message(message)
        for session in list(self.sessions):
            session.deliver(classes, data)

    def shutdown(self, restart: bool = False) -> None:
        """``Event: Shutdown`` to everybody, then close every connection (trace 11)."""
        self.broadcast(
            [
                ("Event", "Shutdown"),
                ("Privilege", "system,all"),
                ("Shutdown", "Cleanly"),
                ("Restart", "True" if restart else "False"),
            ]
        )
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.loseConnection()


class AMISession(Protocol):
    factory: AMIServerFactory
    ANONYMOUS: ClassVar[frozenset[str]] = frozenset({"login", "challenge", "logoff"})

    def __init__(self) -> None:
        self.parser = AMIParser(expect_banner=False, legacy_command_output=False)
        self.authenticated = False
        self.closing = False
        self.events: frozenset[str] = EVENT_CLASSES
        self.challenge = ""
        self.session_id = ""

    # -- connection -------------------------------------------------------------

    @property
    def out(self) -> ITransport:
        assert self.transport is not None, "the session is not connected"
        return self.transport

    def connectionMade(self) -> None:
        self.factory.sessions.add(self)
        self.session_id = f"0x{self.factory.rng.getrandbits(44):x}"
        self.out.write(BANNER)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.sessions.discard(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except FramingError:
            self.out.loseConnection()
            return
        for message in messages:
            if self.closing:
                return
            self.handle(message)

    def deliver(self, classes: frozenset[str], data: bytes) -> None:
        if self.authenticated and not self.closing and classes & self.events:
            self.out.write(data)

    def write(self, headers: Iterable[tuple[str, str]]) -> None:
        self.out.write(format_message(headers))

    # -- responses --------------------------------------------------------------

    def respond(
        self,
        msg: Message,
        response: str = "Success",
        message: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        headers = [("Response", response)]
        if "ActionID" in msg:
            headers.append(("ActionID", msg["ActionID"]))
        if message is not None:
            headers.append(("Message", message))
        self.write([*headers, *extra])

    def error(self, msg: Message, message: str) -> None:
        self.respond(msg, "Error", message)

    def send_list(
        self,
        msg: Message,
        started: str,
        item_event: str,
        items: list[Headers],
        complete: str,
        *,
        action_id_second: bool = False,
        privilege: str | None = None,
        extra_complete: Sequence[tuple[str, str]] = (),
    ) -> None:
        """``EventList: start``, the items, then ``<complete>`` with ``ListItems``."""
        aid = [("ActionID", msg["ActionID"])] if "ActionID" in msg else []
        out = bytearray()
        start = [("Response", "Success"), *aid, ("EventList", "start"), ("Message", started)]
        out += format_message(start)
        for item in items:
            head = [("Event", item_event)]
            if privilege:
                head.append(("Privilege", privilege))
            body = [*aid, *item] if action_id_second else [*item, *aid]
            out += format_message([*head, *body])
        tail = [("EventList", "Complete"), ("ListItems", str(len(items))), *extra_complete]
        out += format_message([("Event", complete), *aid, *tail])
        self.out.write(bytes(out))

    # -- dispatch ---------------------------------------------------------------

    def handle(self, msg: Message) -> None:
        action = msg.get("Action", "").strip()
        if not action:
            self.error(msg, "Missing action in request")
            return
        key = action.lower()
        if not self.authenticated and key not in self.ANONYMOUS:
            self._security("RequestNotAllowed", "Error", [("RequestType", f"Action: {action}")])
            self.error(msg, "Permission denied")
            return
        handler = self.HANDLERS.get(key)
        if handler is None:
            self.error(
                msg,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
            return
        handler(self, msg)

    def _security(self, event: str, severity: str, tail: Headers, version: str = "1") -> None:
        peer = self.transport.getPeer() if self.transport is not None else None
        host = getattr(peer, "host", "127.0.0.1")
        port = getattr(peer, "port", 0)
        now = self.factory.pbx.now()
        tv = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}+0000"
        )
        head = [
            ("EventTV", tv),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", version),
            ("AccountID", self.factory.username if self.authenticated else ""),
            ("SessionID", self.session_id),
            ("LocalAddress", "IPV4/TCP/127.0.0.1/5038"),
            ("RemoteAddress", f"IPV4/TCP/{host}/{port}"),
        ]
        if event == "InvalidPassword":
            head[4] = ("AccountID", self.factory.username)
        session_tv = tv if self.authenticated else "1970-01-01T00:00:00.000+0000"
        self.factory.broadcast(
            [
                ("Event", event),
                ("Privilege", "security,all"),
                *head,
                *tail,
                ("SessionTV", session_tv),
            ]
        )

    # -- login ------------------------------------------------------------------

    def action_challenge(self, msg: Message) -> None:
        if msg.get("AuthType", "").lower() != "md5":
            self.error(msg, "Must specify AuthType")
            return
        if not self.challenge:
            self.challenge = str(self.factory.rng.randrange(100_000_000, 2_147_483_647))
        self.respond(msg, extra=[("Challenge", self.challenge)])

    def _credentials_ok(self, msg: Message) -> bool:
        factory = self.factory
        if not hmac.compare_digest(msg.get("Username", ""), factory.username):
            return False
        if msg.get("AuthType", "").lower() == "md5":
            if not self.challenge:
                return False
            expected = hashlib.md5(
                (self.challenge + factory.secret).encode(), usedforsecurity=False
            ).hexdigest()
            return hmac.compare_digest(msg.get("Key", "").lower(), expected)
        return hmac.compare_digest(msg.get("Secret", ""), factory.secret)

    def action_login(self, msg: Message) -> None:
        if self.authenticated:
            self.respond(msg, message="Already authenticated")
            return
        if not self._credentials_ok(msg):
            self.closing = True
            self._security("InvalidPassword", "Error", [], version="2")

            def fail() -> None:
                if self.transport is not None:
                    self.error(msg, "Authentication failed")
                    self.out.loseConnection()

            self.factory.clock.callLater(self.factory.auth_failure_delay, fail)
            return
        mask = _parse_mask(msg.get("Events", ""))
        if mask is not None:
            self.events = mask
        self.authenticated = True
        self.respond(msg, message="Authentication accepted")
        if "system" in self.events:
            up = int(self.factory.pbx.now() - self.factory.pbx.booted_at)
            self.write(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", str(up)),
                    ("LastReload", str(up)),
                    ("Status", "Fully Booted"),
                ]
            )
        using_password = "1" if "Secret" in msg else "0"
        self._security("SuccessfulAuth", "Informational", [("UsingPassword", using_password)])

    def action_logoff(self, msg: Message) -> None:
        self.respond(msg, "Goodbye", GOODBYE)
        self.closing = True
        self.out.loseConnection()

    def action_ping(self, msg: Message) -> None:
        self.respond(msg, extra=[("Ping", "Pong"), ("Timestamp", f"{self.factory.pbx.now():.6f}")])

    def action_events(self, msg: Message) -> None:
        mask = _parse_mask(msg.get("EventMask", ""))
        if mask is None:
            self.error(msg, "Invalid event mask")
            return
        self.events = mask
        aid = [("ActionID", msg["ActionID"])] if "ActionID" in msg else []
        self.write([("Response", "Success"), *aid, ("Events", "On" if mask else "Off")])

    def action_listcommands(self, msg: Message) -> None:
        lines = [(name, f"{text}  (Priv: {priv})") for name, (text, priv) in SYNOPSES.items()]
        self.respond(msg, extra=lines)

    # -- lists ------------------------------------------------------------------

    def action_coreshowchannels(self, msg: Message) -> None:
        items = self.factory.reports.core_show_channels()
        self.send_list(
            msg, "Channels will follow", "CoreShowChannel", items,
            "CoreShowChannelsComplete", action_id_second=True,
        )  # fmt: skip

    def action_status(self, msg: Message) -> None:
        items = self.factory.reports.status(msg.get("Channel") or None)
        if items is None:
            self.error(msg, "No such channel")
            return
        self.send_list(
            msg, "Channel status will follow", "Status", items, "StatusComplete",
            privilege="Call", extra_complete=[("Items", str(len(items)))],
        )  # fmt: skip

    def action_queuestatus(self, msg: Message) -> None:
        reports = self.factory.reports
        items = reports.queue_status(msg.get("Queue") or None, msg.get("Member") or None)
        typed = [(self._queue_item_type(item), item) for item in items]
        aid = [("ActionID", msg["ActionID"])] if "ActionID" in msg else []
        out = bytearray(
            format_message(
                [("Response", "Success"), *aid, ("EventList", "start"),
                 ("Message", "Queue status will follow")]
            )
        )  # fmt: skip
        for event, item in typed:
            out += format_message([("Event", event), *item, *aid])
        out += format_message(
            [("Event", "QueueStatusComplete"), *aid, ("EventList", "Complete"),
             ("ListItems", str(len(typed)))]
        )  # fmt: skip
        self.out.write(bytes(out))

    @staticmethod
    def _queue_item_type(item: Headers) -> str:
        names = {k for k, _ in item}
        if "Strategy" in names:
            return "QueueParams"
        if "Location" in names:
            return "QueueMember"
        return "QueueEntry"

    def action_queuesummary(self, msg: Message) -> None:
        items = self.factory.reports.queue_summary(msg.get("Queue") or None)
        self.send_list(
            msg, "Queue summary will follow", "QueueSummary", items, "QueueSummaryComplete"
        )

    def action_command(self, msg: Message) -> None:
        command = msg.get("Command", "").strip()
        if not command:
            self.error(msg, "No command provided")
            return
        ok, lines = self.factory.reports.cli(command)
        aid = [("ActionID", msg["ActionID"])] if "ActionID" in msg else []
        self.write(
            [("Response", "Success" if ok else "Error"), *aid,
             ("Message", "Command output follows"), *(("Output", line) for line in lines)]
        )  # fmt: skip

    # -- call control -----------------------------------------------------------

    def action_queuepause(self, msg: Message) -> None:
        interface, paused = msg.get("Interface", ""), msg.get("Paused", "")
        if not interface or not paused:
            self.error(msg, "Need 'Interface' and 'Paused' parameters.")
            return
        members = self.factory.queues.members_of(interface, msg.get("Queue") or None)
        if not members:
            self.error(msg, "Interface not found")
            return
        pause = paused.strip().lower() in ("yes", "true", "1", "on", "y", "t")
        word = "paused" if pause else "unpaused"
        self.respond(msg, message=f"Interface {word} successfully")
        self.factory.queues.pause(members, pause, msg.get("Reason", ""))

    def action_originate(self, msg: Message) -> None:
        channel = msg.get("Channel", "")
        if not channel:
            self.error(msg, "Channel not specified")
            return
        exten, context = msg.get("Exten", ""), msg.get("Context", "")
        if not exten or not context:
            self.error(msg, "Exten and Context must be specified")
            return
        try:
            timeout = float(msg.get("Timeout", "30000")) / 1000.0
        except ValueError:
            self.error(msg, "Invalid timeout")
            return
        variables = []
        for header in msg.getall("Variable"):
            for item in header.split(","):
                name, sep, value = item.partition("=")
                if sep and name.strip():
                    variables.append((name.strip(), value))
        request = OriginateRequest(
            channel=channel,
            context=context,
            exten=exten,
            priority=msg.get("Priority", "1"),
            timeout=timeout,
            caller_id=_parse_callerid(msg["CallerID"]) if msg.get("CallerID") else None,
            variables=tuple(variables),
            action_id=msg.get("ActionID"),
            channel_id=msg.get("ChannelId") or None,
            other_channel_id=msg.get("OtherChannelId") or None,
        )
        self.respond(msg, message="Originate successfully queued")
        self.factory.originator.originate(request)

    def action_hangup(self, msg: Message) -> None:
        name = msg.get("Channel", "")
        if not name:
            self.error(msg, "No channel specified")
            return
        if name not in self.factory.pbx.channels:
            self.error(msg, "No such channel")
            return
        try:
            cause = int(msg.get("Cause") or 16)
        except ValueError:
            cause = 16
        self.respond(msg, message="Channel Hungup")
        self.factory.dialplan.hangup_channel(name, cause)

    def _talk_of(self, msg: Message) -> tuple[str, str, str] | None:
        name, exten = msg.get("Channel", ""), msg.get("Exten", "")
        if not name:
            self.error(msg, "No channel specified")
            return None
        if not exten:
            self.error(msg, "No extension specified")
            return None
        if name not in self.factory.dialplan.talks:
            self.error(msg, "Channel specified does not exist")
            return None
        return name, exten, msg.get("Context", "") or "internal"

    def action_blindtransfer(self, msg: Message) -> None:
        found = self._talk_of(msg)
        if found is None:
            return
        name, exten, context = found
        dialplan = self.factory.dialplan
        if dialplan.pbx.endpoint_for_exten(exten) is None:
            self.error(msg, "Transfer failed")
            return
        self.respond(msg, message="Transfer succeeded")
        talk = dialplan.talks[name]
        dialplan.transfers.blind(talk, dialplan.pbx.channels[name], exten, context, via_ami=True)

    def action_atxfer(self, msg: Message) -> None:
        found = self._talk_of(msg)
        if found is None:
            return
        name, exten, context = found
        dialplan = self.factory.dialplan
        talk = dialplan.talks[name]
        if dialplan.pbx.endpoint_for_exten(exten) is None or talk.b.name != name:
            self.error(msg, "No attended transfer feature code found")
            return
        self.respond(msg, message="Atxfer successfully queued")
        dialplan.transfers.attended(talk, exten, context, via_ami=True)

    def action_redirect(self, msg: Message) -> None:
        found = self._talk_of(msg)
        if found is None:
            return
        name, exten, context = found
        dialplan = self.factory.dialplan
        chan = dialplan.pbx.channels[name]
        talk = dialplan.talks[name]
        if dialplan.pbx.endpoint_for_exten(exten) is None or chan is not talk.a:
            self.error(msg, "Redirect failed")
            return
        self.respond(msg, message="Redirect successful")
        dialplan.transfers.redirect(chan, exten, context)

    HANDLERS: ClassVar[dict[str, Callable[[AMISession, Message], None]]] = {
        "challenge": action_challenge,
        "login": action_login,
        "logoff": action_logoff,
        "ping": action_ping,
        "events": action_events,
        "listcommands": action_listcommands,
        "coreshowchannels": action_coreshowchannels,
        "status": action_status,
        "queuestatus": action_queuestatus,
        "queuesummary": action_queuesummary,
        "command": action_command,
        "queuepause": action_queuepause,
        "originate": action_originate,
        "hangup": action_hangup,
        "blindtransfer": action_blindtransfer,
        "atxfer": action_atxfer,
        "redirect": action_redirect,
    }
