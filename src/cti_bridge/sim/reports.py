"""Snapshots of the PBX for the list actions and the two CLI commands we answer.

``QueueStatus``, ``QueueSummary``, ``CoreShowChannels`` and ``Status`` list items, and
the text of ``core show channels`` / ``queue show <q>``, in the exact shape of trace
09: list items without ``Privilege`` (except ``Status``: ``Privilege: Call``), the
``ActionID`` last (queue lists, ``Status``) or second (``CoreShowChannel``),
``Holdtime`` in QueueParams but ``HoldTime`` in QueueSummary, ``BridgeId`` vs
``BridgeID``. The server adds the framing (``EventList: start`` ... ``Complete``).
"""

from __future__ import annotations

from .channels import Channel, Headers
from .pbx import PBX
from .queues import Queue, QueueEngine

__all__ = ["Reports"]

DEVICE_TEXT = {
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
}


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Reports:
    def __init__(self, pbx: PBX, queues: QueueEngine) -> None:
        self.pbx = pbx
        self.queues = queues

    def _channels(self) -> list[Channel]:
        return list(self.pbx.channels.values())  # in creation order, as Asterisk lists them

    # -- channel lists ----------------------------------------------------------

    def core_show_channels(self) -> list[Headers]:
        now = self.pbx.now()
        items = []
        for c in self._channels():
            items.append(
                [
                    *c.snapshot(),
                    ("Application", c.application),
                    ("ApplicationData", c.app_data),
                    ("Duration", _duration(now - c.created_at)),
                    ("BridgeId", c.bridge.uniqueid if c.bridge else ""),
                ]
            )
        return items

    def status(self, channel: str | None = None) -> list[Headers] | None:
        """``Status`` items; ``None`` when the one channel asked for does not exist."""
        chans = self._channels()
        if channel:
            chans = [c for c in chans if c.name == channel]
            if not chans:
                return None
        now = self.pbx.now()
        return [
            [
                *c.snapshot(),
                ("Type", "PJSIP" if c.name.startswith("PJSIP/") else "Local"),
                ("DNID", c.dnid),
                ("EffectiveConnectedLineNum", c.connected_num),
                ("EffectiveConnectedLineName", c.connected_name),
                ("TimeToHangup", "0"),
                ("BridgeID", c.bridge.uniqueid if c.bridge else ""),
                ("Application", c.application),
                ("Data", c.app_data),
                ("Nativeformats", "(ulaw)"),
                ("Readformat", "ulaw"),
                ("Readtrans", ""),
                ("Writeformat", "ulaw"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(now - c.created_at))),
            ]
            for c in chans
        ]

    # -- queue lists ------------------------------------------------------------

    def _selected(self, queue: str | None) -> list[Queue]:
        return [q for q in self.queues.queues.values() if not queue or q.name == queue]

    def queue_status(self, queue: str | None = None, member: str | None = None) -> list[Headers]:
        items: list[Headers] = []
        for q in self._selected(queue):
            sl = 100.0 * q.completed_in_sl / q.completed if q.completed else 0.0
            done = q.completed + q.abandoned
            sl2 = 100.0 * q.completed_in_sl / done if done else 0.0
            items.append(
                [
                    ("Queue", q.name),
                    ("Max", "0"),
                    ("Strategy", q.config.strategy),
                    ("Calls", str(len(q.waiting))),
                    ("Holdtime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("Completed", str(q.completed)),
                    ("Abandoned", str(q.abandoned)),
                    ("ServiceLevel", str(q.config.service_level)),
                    ("ServicelevelPerf", f"{sl:.1f}"),
                    ("ServicelevelPerf2", f"{sl2:.1f}"),
                    ("Weight", "0"),
                ]
            )
            for m in q.members:
                if member and member not in (m.interface, m.name):
                    continue
                items.append(
                    [
                        ("Queue", q.name),
                        ("Name", m.name),
                        ("Location", m.interface),
                        ("StateInterface", m.interface),
                        ("Membership", m.membership),
                        ("Penalty", str(m.penalty)),
                        ("CallsTaken", str(m.calls_taken)),
                        ("LastCall", str(m.last_call)),
                        ("LastPause", str(m.last_pause)),
                        ("LoginTime", str(m.login_time)),
                        ("InCall", str(int(m.in_call))),
                        ("Status", str(self.queues.status(m))),
                        ("Paused", str(int(m.paused))),
                        ("PausedReason", m.paused_reason),
                        ("Wrapuptime", "0"),
                    ]
                )
            for position, w in enumerate(q.waiting, 1):
                items.append(self.queues.entry_headers(w, position))
        return items

    def queue_summary(self, queue: str | None = None) -> list[Headers]:
        now = self.pbx.now()
        items: list[Headers] = []
        for q in self._selected(queue):
            available = sum(1 for m in q.members if self.queues.is_free(m))
            logged_in = sum(1 for m in q.members if self.queues.status(m) not in (4, 5))
            longest = max((int(now - w.joined_at) for w in q.waiting), default=0)
            items.append(
                [
                    ("Queue", q.name),
                    ("LoggedIn", str(logged_in)),
                    ("Available", str(available)),
                    ("Callers", str(len(q.waiting))),
                    ("HoldTime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("LongestHoldTime", str(longest)),
                ]
            )
        return items

    # -- CLI --------------------------------------------------------------------

    def cli(self, command: str) -> tuple[bool, list[str]]:
        """The output lines of a CLI command and whether Asterisk counts it a success."""
        words = command.split()
        if words[:3] == ["core", "show", "channels"]:
            return True, self._cli_channels()
        if words[:2] == ["queue", "show"]:
            return self._cli_queues(words[2] if len(words) > 2 else None)
        if words[:3] == ["core", "show", "version"]:
            return True, ["Asterisk 22.10.1 (cti-bridge simulator)"]
        if words[:3] == ["core", "show", "uptime"]:
            up = int(self.pbx.now() - self.pbx.booted_at)
            return True, [f"System uptime: {up} seconds", f"Last reload: {up} seconds"]
        shown = " ".join(words)
        return False, [
            f"No such command '{shown}' (type 'core show help {shown}' for other possible commands)"
        ]

    def _cli_channels(self) -> list[str]:
        row = "%-64.64s %-32.32s %-7.7s %-30.30s"
        lines = [row % ("Channel", "Location", "State", "Application(Data)")]
        chans = self._channels()
        for c in chans:
            location = f"{c.exten}@{c.context}:{c.priority}"
            app = f"{c.application}({c.app_data})" if c.application else "(None)"
            lines.append(row % (c.name, location, c.state_desc, app))
        calls = len({c.linkedid for c in chans})
        lines += [
            f"{len(chans)} active channel{'s' if len(chans) != 1 else ''}",
            f"{calls} active call{'s' if calls != 1 else ''}",
            f"{self.pbx.calls_processed} calls processed",
        ]
        return lines

    def _cli_queues(self, name: str | None) -> tuple[bool, list[str]]:
        queues = self._selected(name)
        if name and not queues:
            return False, [f"No such queue: {name}."]
        now = self.pbx.now()
        lines: list[str] = []
        for q in queues:
            done = q.completed + q.abandoned
            sl = 100.0 * q.completed_in_sl / q.completed if q.completed else 0.0
            sl2 = 100.0 * q.completed_in_sl / done if done else 0.0
            lines.append(
                f"{q.name} has {len(q.waiting)} calls (max unlimited) in '{q.config.strategy}' "
                f"strategy ({q.holdtime}s holdtime, {q.talktime}s talktime), W:0, "
                f"C:{q.completed}, A:{q.abandoned}, SL:{sl:.1f}%, SL2:{sl2:.1f}% "
                f"within {q.config.service_level}s"
            )
            lines.append("   Members: ")
            for m in q.members:
                state = self.pbx.device_states.get(m.interface, "NOT_INUSE")
                text = f"      {m.name} ({m.interface}) (ringinuse disabled)"
                if m.in_call:
                    text += " (in call)"
                if m.paused:
                    ago = int(now) - m.last_pause
                    reason = f":{m.paused_reason}" if m.paused_reason else ""
                    text += f" (paused{reason} was {ago} secs ago)"
                text += f" ({DEVICE_TEXT.get(state, 'Unknown')})"
                if m.calls_taken:
                    ago = int(now) - m.last_call
                    text += f" has taken {m.calls_taken} calls (last was {ago} secs ago)"
                else:
                    text += " has taken no calls yet"
                text += f" (login was {int(now) - m.login_time} secs ago)"
                lines.append(text)
            if q.waiting:
                lines.append("   Callers: ")
                for position, w in enumerate(q.waiting, 1):
                    wait = int(now - w.joined_at)
                    clock = f"{wait // 60}:{wait % 60:02d}"
                    lines.append(f"      {position}. {w.caller.name} (wait: {clock}, prio: 0)")
            else:
                lines.append("   No Callers")
            lines += ["", ""]
        return True, lines
