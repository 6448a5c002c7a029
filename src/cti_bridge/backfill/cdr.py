"""Calls from the PBX's own CDR rows (pure): for calls no AMI link saw.

Asterisk writes one CDR row per party A / party B pairing (``cdr_pgsql``), every row of a
call carrying its ``linkedid``. The channel that made the linkedid (``uniqueid ==
linkedid``) is where the call began: its row gives the caller, the number dialled and
the context; its rows with a ``dstchannel`` are the devices it rang (a queue's members,
a ``Dial``), ``disposition`` saying which answered. What a CDR cannot tell (who hung up,
the hang-up cause, a transfer's steps, the wait in the queue apart from the ring) stays
empty, and the call is marked ``complete = False``: a record of what the PBX says
happened, not of what was watched.

Times are seconds since the epoch (the reader converts the columns).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cti_bridge.calls.devices import Topology, device_of_channel
from cti_bridge.calls.events import (
    Call,
    CallEnded,
    Direction,
    DomainEvent,
    Outcome,
    QueueResult,
    Ring,
    RingResult,
    Segment,
)

__all__ = ["calls_from_cdr", "ended_events"]

#: ``"Jan Peeters" <0470123456>``: Asterisk's callerid text (quotes escaped by ``\\``).
_CLID = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*<[^>]*>\s*$', re.DOTALL)

_RESULTS = {
    "ANSWERED": RingResult.ANSWERED,
    "NO ANSWER": RingResult.NO_ANSWER,
    "BUSY": RingResult.BUSY,
    "CONGESTION": RingResult.UNAVAILABLE,
    "FAILED": RingResult.FAILED,
}


def _name(clid: str | None) -> str | None:
    if not clid:
        return None
    found = _CLID.match(clid)
    if found is None:
        return None
    name = re.sub(r"\\(.)", r"\1", found.group(1))
    return name or None


def _float(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(value)


def _answer(rows: Sequence[Mapping[str, Any]], ring: Mapping[str, Any]) -> float | None:
    """When the rung party answered. A row's ``answer`` is its party A's (a queue's caller
    was answered by the dialplan before the members rang): a Local channel's other half
    (``;2``) has a row of its own whose answer is the member's; else the row's own."""
    channel = str(ring.get("dstchannel") or "")
    if channel.endswith(";1"):
        other = channel[:-1] + "2"
        for row in rows:
            if row.get("channel") == other and (at := _float(row, "answer")) is not None:
                return at
    return _float(ring, "answer")


def _call(pbx: str, linkedid: str, rows: Sequence[Mapping[str, Any]], topology: Topology) -> Call:
    rows = sorted(rows, key=lambda r: (r.get("sequence") or 0, _float(r, "start") or 0.0))
    origin_rows = [r for r in rows if r.get("uniqueid") == linkedid] or rows[:1]
    origin = origin_rows[0]
    origin_device = device_of_channel(str(origin.get("channel") or ""))
    context = str(origin.get("dcontext") or "")
    inbound = topology.is_inbound_context(context) or topology.is_trunk(origin_device)
    queue = next(
        (
            str(r.get("lastdata") or "").split(",")[0] or None
            for r in origin_rows
            if r.get("lastapp") == "Queue"
        ),
        None,
    )
    started = min(v for r in rows if (v := _float(r, "start")) is not None)
    ended = max(v for r in rows if (v := _float(r, "end")) is not None)
    rings: list[Ring] = []
    answered: tuple[float, str, str] | None = None
    for row in origin_rows:
        channel = row.get("dstchannel")
        start = _float(row, "start")
        if not channel or start is None:
            continue
        device = device_of_channel(str(channel))
        result = _RESULTS.get(str(row.get("disposition") or "").upper(), RingResult.FAILED)
        rings.append(
            Ring(
                device=device,
                channel=str(channel),
                uniqueid=str(channel),  # not in the row: the channel name is as unique
                started_at=start,
                queue=queue,
                ended_at=_float(row, "end"),
                result=result,
                outside=topology.is_trunk(device),
            )
        )
        answer = _answer(rows, row)
        if result is RingResult.ANSWERED and answer is not None and answered is None:
            answered = (answer, device, str(channel))
    segments: tuple[Segment, ...] = ()
    if answered is not None:
        at, device, channel = answered
        segments = (Segment(device=device, channel=channel, started_at=at, ended_at=ended),)
    if answered is not None:
        outcome = Outcome.ANSWERED
    elif queue is not None:
        outcome = Outcome.ABANDONED
    elif inbound and rings:
        outcome = Outcome.MISSED
    else:
        outcome = Outcome.FAILED
    direction = Direction.INBOUND if inbound else Direction.INTERNAL
    if not inbound and any(r.outside for r in rings):
        direction = Direction.OUTBOUND  # an operator dialling out through a trunk
    queue_result = None
    if queue is not None:
        queue_result = QueueResult.ANSWERED if answered is not None else QueueResult.ABANDONED
    return Call(
        pbx=pbx,
        linkedid=linkedid,
        direction=direction,
        started_at=started,
        caller_number_raw=str(origin.get("src") or "") or None,
        caller_name=_name(origin.get("clid")),
        dialled=str(origin.get("dst") or "") or None,
        queue=queue,
        queues=(queue,) if queue is not None else (),
        answered_at=None if answered is None else answered[0],
        answered_by=None if answered is None else answered[1],
        ended_at=ended,
        rings=tuple(rings),
        segments=segments,
        hung_up_by=None,  # a CDR does not say
        outcome=outcome,
        complete=False,
        queue_result=queue_result,
    )


def calls_from_cdr(
    pbx: str,
    rows: Iterable[Mapping[str, Any]],
    topology: Topology,
    *,
    ended_before: float,
    skip: Iterable[str] = (),
) -> list[Call]:
    """The calls of ``rows`` (any order, several calls) that had ended before
    ``ended_before`` (the resync: the link saw what came after), ``skip`` (linkedids that
    are live or already have a record) left out; oldest first."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        linkedid = row.get("linkedid")
        if linkedid and _float(row, "start") is not None and _float(row, "end") is not None:
            grouped.setdefault(str(linkedid), []).append(row)
    for linkedid in set(skip):
        grouped.pop(linkedid, None)
    calls = [_call(pbx, linkedid, found, topology) for linkedid, found in grouped.items()]
    calls = [c for c in calls if c.ended_at is not None and c.ended_at < ended_before]
    return sorted(calls, key=lambda c: (c.started_at, c.linkedid))


def ended_events(calls: Iterable[Call]) -> list[DomainEvent]:
    return [CallEnded(call) for call in calls]
