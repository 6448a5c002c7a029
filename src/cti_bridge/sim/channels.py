"""Channels and bridges as Asterisk 22 describes them on AMI.

A channel's *snapshot* is the block of fourteen headers that every channel event
carries (``Channel`` ... ``Linkedid``), in the order Asterisk writes them; dial and
transfer events repeat it with a prefix (``Dest``, ``Transferee``, ...). Keeping the
snapshot code in one place is what makes every simulated event carry the same header
names, in the same order, as the recorded traces in ``tests/fixtures/ami-traces/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CAUSE_TEXT",
    "DOWN",
    "RING",
    "RINGING",
    "STATE_DESC",
    "UP",
    "Bridge",
    "Channel",
    "Headers",
    "escape",
    "raw_line",
]

#: One AMI message: ordered ``(name, value)`` pairs, ``Event``/``Response`` first.
Headers = list[tuple[str, str]]

DOWN, RING, RINGING, UP = 0, 4, 5, 6
STATE_DESC = {DOWN: "Down", RING: "Ring", RINGING: "Ringing", UP: "Up"}

#: Q.850 causes the simulator uses, with Asterisk's ``Cause-txt`` spelling.
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    34: "Circuit/channel congestion",
}

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "'": "\\'", "\r": "\\r", "\n": "\\n"})


def escape(text: str) -> str:
    """C-escape text as Asterisk does in channel snapshots (trace 13: ``O\\'Brien``).

    Besides matching the recordings, it keeps a caller name with CR/LF from ever
    splitting an AMI message in two.
    """
    return text.translate(_ESCAPES)


def raw_line(text: str) -> str:
    """Unescaped text for the fields Asterisk writes raw (``QueueEntry``), minus CR/LF.

    Real Asterisk lets CR/LF through there (trace 13-crlf); a demo PBX must not hand
    out forged messages, so line breaks become their two-character escapes.
    """
    return text.replace("\r", "\\r").replace("\n", "\\n")


@dataclass(eq=False)
class Channel:
    """One leg of a call: a customer on the trunk, an operator's phone ringing, ..."""

    name: str
    uniqueid: str
    linkedid: str
    device: str  # the channel name without its counter: PJSIP/1001, PJSIP/pstn, Local/...
    state: int
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: int = 1
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    language: str = "en"
    account: str = ""
    created_at: float = 0.0
    answered_at: float | None = None
    application: str = ""
    app_data: str = ""
    bridge: Bridge | None = None
    dnid: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    hung_up: bool = False

    @property
    def state_desc(self) -> str:
        return STATE_DESC[self.state]

    def snapshot(self, prefix: str = "") -> Headers:
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", self.state_desc),
            (f"{prefix}CallerIDNum", escape(self.caller_num)),
            (f"{prefix}CallerIDName", escape(self.caller_name)),
            (f"{prefix}ConnectedLineNum", escape(self.connected_num)),
            (f"{prefix}ConnectedLineName", escape(self.connected_name)),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.account),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


@dataclass(eq=False)
class Bridge:
    """A basic bridge. ``technology`` may change silently (pjsip quirk 10)."""

    uniqueid: str
    technology: str = "simple_bridge"
    channels: list[Channel] = field(default_factory=list)

    def snapshot(self, prefix: str = "") -> Headers:
        return [
            (f"{prefix}BridgeUniqueid", self.uniqueid),
            (f"{prefix}BridgeType", "basic"),
            (f"{prefix}BridgeTechnology", self.technology),
            (f"{prefix}BridgeCreator", "<unknown>"),
            (f"{prefix}BridgeName", "<unknown>"),
            (f"{prefix}BridgeNumChannels", str(len(self.channels))),
            (f"{prefix}BridgeVideoSourceMode", "none"),
        ]
