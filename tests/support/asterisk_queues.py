"""What the real Asterisk itself says about its queues, read without cti-bridge: a fresh
``QueueStatus`` on the test's own AMI connection, the CLI's ``queue show``, and the
harness's callers (``Local/hold<N>@sim-caller``) to hang up. Blocking: call them in a
thread from a reactor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cti_bridge.testing.asterisk import AsteriskInstance

__all__ = [
    "QueueShow",
    "caller_channel",
    "customer_phone",
    "e164",
    "parse_queue_show",
    "queue_show",
    "queue_status",
    "waiting_numbers",
]


def queue_status(pbx: AsteriskInstance) -> list[dict[str, str]]:
    """Every item of one ``QueueStatus`` (``QueueParams``, ``QueueMember``, ``QueueEntry``)."""
    with pbx.ami(events="off") as ami:
        action_id = ami.send("QueueStatus")
        items: list[dict[str, str]] = []
        ami.wait_for(
            lambda m: m.get("ActionID") == action_id and m.get("Event") == "QueueStatusComplete",
            10,
            seen=items,
        )
    return [m for m in items if m.get("ActionID") == action_id and "Event" in m]


def e164(number: str) -> str | None:
    """The harness's callers have Belgian national numbers (``[phone] default_region``)."""
    return "+32" + number[1:] if re.fullmatch(r"0\d{8,9}", number) else None


def waiting_numbers(items: list[dict[str, str]], queue: str = "support") -> list[str]:
    return [
        m.get("CallerIDNum", "")
        for m in items
        if m.get("Event") == "QueueEntry" and m.get("Queue") == queue
    ]


def caller_channel(items: list[dict[str, str]], number: str) -> str:
    (channel,) = [
        m["Channel"]
        for m in items
        if m.get("Event") == "QueueEntry" and m.get("CallerIDNum") == number
    ]
    return channel


def customer_phone(channel: str) -> str:
    """The customer's half of a harness caller (``…;1`` waits in the queue, ``…;2`` is the
    phone): hanging it up is the customer hanging up."""
    assert channel.startswith("Local/") and channel.endswith(";1"), channel
    return channel[:-1] + "2"


#: ``queue show``'s device state words -> the board's member states (docs/queues.md).
_SHOW_STATES = {
    "Not in use": "available",
    "In use": "on_call",
    "Busy": "on_call",
    "On Hold": "on_call",
    "Ring+Inuse": "on_call",
    "Ringing": "ringing",
    "Unavailable": "unavailable",
    "Invalid": "unavailable",
    "Unknown": "unavailable",
}
_HEADER = re.compile(r"^(\S+) has (\d+) calls? ")
_MEMBER = re.compile(r"^\s+(.*?) \((\S+) from (\S+)\)(.*) has (?:taken|no calls)")
_CALLER = re.compile(r"^\s+(\d+)\. (\S+) \(wait: (\d+):(\d\d)")
_PAREN = re.compile(r"\(([^()]*)\)")


@dataclass
class QueueShow:
    """One queue as ``queue show <name>`` prints it."""

    name: str
    calls: int
    #: interface -> (state, paused reason or None; "" when paused without one), the state
    #: from the CLI's words as docs/queues.md maps device states (paused outweighs only
    #: available and unavailable; ``in call`` is on_call).
    members: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: (position, channel, wait seconds), in order.
    callers: list[tuple[int, str, int]] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for s, _ in self.members.values() if s == state)


def parse_queue_show(text: str) -> QueueShow:
    """The CLI's text; AssertionError on anything it does not recognise (a changed format
    must fail loudly, not compare nothing)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = _HEADER.match(lines[0]) if lines else None
    assert header is not None, f"not a queue show output: {text!r}"
    shown = QueueShow(header.group(1), int(header.group(2)))
    part = ""
    for line in lines[1:]:
        words = line.strip()
        if words in ("Members:", "Callers:", "No Members", "No Callers"):
            part = words
            continue
        if part == "Members:":
            member = _MEMBER.match(line)
            assert member is not None, f"a member line not understood: {line!r}"
            notes = _PAREN.findall(member.group(4))
            reason: str | None = None
            state = "unavailable"
            in_call = False
            for note in notes:
                if note.startswith("paused"):
                    reason = note.partition(":")[2].rpartition(" was ")[0]
                elif note == "in call":
                    in_call = True
                elif note in _SHOW_STATES:
                    state = _SHOW_STATES[note]
            if in_call:
                state = "on_call"
            elif reason is not None and state in ("available", "unavailable"):
                state = "paused"
            shown.members[member.group(2)] = (state, reason)
        elif part == "Callers:":
            caller = _CALLER.match(line)
            assert caller is not None, f"a caller line not understood: {line!r}"
            wait = int(caller.group(3)) * 60 + int(caller.group(4))
            shown.callers.append((int(caller.group(1)), caller.group(2), wait))
        else:
            raise AssertionError(f"a line outside members and callers: {line!r}")
    assert shown.calls == len(shown.callers), f"calls and callers disagree: {text!r}"
    return shown


def queue_show(pbx: AsteriskInstance, queue: str) -> QueueShow:
    """``asterisk -rx 'queue show <queue>'`` through the harness, parsed."""
    return parse_queue_show(pbx.cli(f"queue show {queue}"))
