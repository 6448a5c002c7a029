"""Merging call snapshots into a call record, in plain Python values.

The rules are the ones ``records.py`` describes (earliest facts win, the end is final,
children match on natural keys, operators resolved at write time). They run here on
dicts holding the row's columns, not on ORM objects: a batch of hundreds of calls then
costs dict look-ups instead of instrumented attribute sets and a unit-of-work flush, and
that Python runs in a pool thread under the reactor's GIL. Nothing here touches the
database; ``records.py`` loads the rows, hands them in and writes what changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cti_bridge.calls.events import Call, Ring, Segment, Transfer

from .numbers import caller_number

__all__ = ["CALL_COLUMNS", "Lookups", "Record", "clean_text", "durations", "guess_outcome"]

Row = dict[str, Any]

#: The calls columns the call model owns (written on every change of a record);
#: notes, category and disposition belong to operators and are not among them.
CALL_COLUMNS = (
    "caller_number",
    "caller_number_raw",
    "caller_name",
    "caller_withheld",
    "dialled",
    "queue",
    "queues",
    "started_at",
    "queue_joined_at",
    "answered_at",
    "wait_ended_at",
    "ended_at",
    "ended_at_approximate",
    "wait_seconds",
    "talk_seconds",
    "answered_by_device",
    "answered_by_operator_id",
    "outcome",
    "queue_result",
    "hangup_cause",
    "hangup_cause_text",
    "hung_up_by",
    "agreement_ref",
    "agreement_id",
    "originate_action_id",
    "complete",
    "customer_id",
    "updated_at",
)
RING_CHANGES = ("started_at", "ended_at", "result", "queue", "member_name")
SEGMENT_CHANGES = ("started_at", "ended_at")
TRANSFER_CHANGES = ("from_device", "from_operator_id", "to_target", "to_operator_id")


def clean_text(value: str | None, limit: int) -> str | None:
    """Attacker text made storable everywhere: no NUL (PostgreSQL refuses it), no lone
    surrogates (not encodable), and no longer than its column."""
    if value is None:
        return None
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value[:limit]


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _earliest(current: datetime | None, incoming: datetime | None) -> datetime | None:
    if current is None:
        return incoming
    if incoming is None:
        return current
    return min(current, incoming)


def durations(values: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(wait, talk) with PRODUCT.md's definitions, from the merged row rather than any
    one snapshot: waiting from the queue (a direct call: its start) to the first answer,
    or to the end of the wait; talking from the first answer to the end."""
    start = values["queue_joined_at"] or values["started_at"]
    wait_end = values["answered_at"] or values["wait_ended_at"] or values["ended_at"]
    wait = None if wait_end is None else max(0.0, (wait_end - start).total_seconds())
    talk = None
    if values["answered_at"] is not None and values["ended_at"] is not None:
        talk = max(0.0, (values["ended_at"] - values["answered_at"]).total_seconds())
    return wait, talk


def guess_outcome(values: Mapping[str, Any], rang: bool) -> str:
    """The call model's rules, applied to what a record knows (for calls closed unseen)."""
    if values["answered_at"] is not None:
        return "answered"
    if values["queue"] is not None:
        return "abandoned"
    return "missed" if values["direction"] == "inbound" and rang else "failed"


def _agreement_number(ref: str | None) -> bool:
    return ref is not None and ref.isascii() and ref.isdigit() and len(ref) <= 18


@dataclass(frozen=True, slots=True)
class Lookups:
    """What a batch looked up once for all its calls."""

    region: str
    operators: Mapping[str, int | None]  # device -> operator
    customers: Mapping[str, int]  # E.164 -> customer
    agreements: Collection[int]  # agreement ids that exist

    def operator_of(self, device: str | None) -> int | None:
        return None if device is None else self.operators.get(device)

    def agreement(self, ref: str | None) -> int | None:
        if ref is None or not _agreement_number(ref):
            return None
        number = int(ref)
        return number if number in self.agreements else None


class Record:
    """One call record during a batch: its row and children as loaded (or as a new row
    would be inserted), merged in memory; afterwards it says what to write."""

    __slots__ = ("_children", "_loaded", "id", "rings", "segments", "transfers", "values")

    def __init__(
        self,
        record_id: int | None,
        values: Row,
        rings: list[Row] | None = None,
        segments: list[Row] | None = None,
        transfers: list[Row] | None = None,
    ) -> None:
        self.id = record_id
        self.values = values
        self.rings = {ring["uniqueid"]: ring for ring in rings or ()}
        self.segments = list(segments or ())  # in (start, id) order: matching depends on it
        self.transfers = {(t["kind"], t["at"]): t for t in transfers or ()}
        self._loaded = dict(values)
        self._children = {
            id(child): dict(child)
            for children in (self.rings.values(), self.segments, self.transfers.values())
            for child in children
        }

    @classmethod
    def new(cls, call: Call, now: datetime) -> Record:
        """The row a call's first event creates: what the pop engine also inserts."""
        values: Row = dict.fromkeys(CALL_COLUMNS)
        values.update(
            pbx=call.pbx,
            linkedid=call.linkedid,
            direction=call.direction.value,
            caller_withheld=call.caller_withheld,
            queues=[],
            started_at=_time(call.started_at),
            complete=call.complete,
            ended_at_approximate=False,
            created_at=now,
            updated_at=now,
        )
        record = cls(None, values)
        record._loaded = {}  # everything about it is new
        return record

    # --- what to write -----------------------------------------------------------------

    def finish(self, now: datetime) -> bool:
        """Derive the durations; True (and a new ``updated_at``) if anything changed."""
        values = self.values
        values["wait_seconds"], values["talk_seconds"] = durations(values)
        changed = values != self._loaded or any(
            child.get("id") is None or self._children.get(id(child)) != child
            for children in (self.rings.values(), self.segments, self.transfers.values())
            for child in children
        )
        if changed and self.id is not None:
            values["updated_at"] = now
        return changed

    def row_changed(self) -> bool:
        return self.values != self._loaded

    def new_children(self, record_id: int) -> tuple[list[Row], list[Row], list[Row]]:
        """Rings, segments and transfers to insert, with their call's id."""
        out: tuple[list[Row], list[Row], list[Row]] = ([], [], [])
        for children, new in zip(
            (self.rings.values(), self.segments, self.transfers.values()), out, strict=True
        ):
            for child in children:
                if child.get("id") is None:
                    new.append({**child, "call_id": record_id})
        return out

    def changed_children(self) -> tuple[list[Row], list[Row], list[Row]]:
        """Loaded rings, segments and transfers that the merge changed."""
        out: tuple[list[Row], list[Row], list[Row]] = ([], [], [])
        for children, columns, changed in zip(
            (self.rings.values(), self.segments, self.transfers.values()),
            (RING_CHANGES, SEGMENT_CHANGES, TRANSFER_CHANGES),
            out,
            strict=True,
        ):
            for child in children:
                if child.get("id") is not None and self._children[id(child)] != child:
                    changed.append({"b_id": child["id"], **{c: child[c] for c in columns}})
        return out

    # --- merging -----------------------------------------------------------------------

    def merge(self, call: Call, lookups: Lookups) -> None:
        """One snapshot into the record (see the rules in ``records.py``)."""
        values = self.values
        ended = values["ended_at"] is not None
        started = _time(call.started_at)
        if started is not None and started < values["started_at"]:
            values["started_at"] = started
        if not ended:
            self._merge_caller(call, lookups)
        if values["dialled"] is None and call.dialled is not None:
            values["dialled"] = clean_text(call.dialled, 128)
        if values["queue"] is None and call.queue is not None:
            values["queue"] = clean_text(call.queue, 128)
        if call.queues:
            queues = values["queues"]
            for queue in call.queues:
                if (name := clean_text(queue, 128) or "") not in queues:
                    queues = [*queues, name]  # a new list: the loaded one is the "before"
            values["queues"] = queues
        if call.queue_joined_at is not None:
            values["queue_joined_at"] = _earliest(
                values["queue_joined_at"], _time(call.queue_joined_at)
            )
        if call.wait_ended_at is not None:
            values["wait_ended_at"] = _earliest(values["wait_ended_at"], _time(call.wait_ended_at))
        answered = _time(call.answered_at)
        if answered is not None and (
            values["answered_at"] is None or answered < values["answered_at"]
        ):
            values["answered_at"] = answered
            values["answered_by_device"] = clean_text(call.answered_by, 128)
            values["answered_by_operator_id"] = lookups.operator_of(call.answered_by)
        if values["agreement_ref"] is None and call.agreement_id is not None:
            values["agreement_ref"] = ref = clean_text(call.agreement_id, 64)
            values["agreement_id"] = lookups.agreement(ref)
        if values["originate_action_id"] is None and call.originate_action_id is not None:
            values["originate_action_id"] = clean_text(call.originate_action_id, 128)
        if not call.complete:
            values["complete"] = False
        # An end that was estimated (a resync closed the call unseen) gives way to one
        # that was not: the PBX's CDR read later, a spool replayed from the run that saw it.
        estimated = ended and values["ended_at_approximate"]
        if call.ended_at is not None and (
            not ended or (estimated and not call.ended_at_approximate)
        ):
            values["ended_at"] = _time(call.ended_at)
            values["ended_at_approximate"] = call.ended_at_approximate
            values["outcome"] = None if call.outcome is None else call.outcome.value
            values["hangup_cause"] = call.hangup_cause
            values["hangup_cause_text"] = clean_text(call.hangup_cause_text, 128)
            values["hung_up_by"] = None if call.hung_up_by is None else call.hung_up_by.value
        if call.queue_result is not None and (values["queue_result"] is None or not ended):
            values["queue_result"] = call.queue_result.value
        for ring in call.rings:
            self._merge_ring(ring, lookups)
        for segment in call.segments:
            self._merge_segment(segment, lookups)
        for transfer in call.transfers:
            self._merge_transfer(transfer, lookups)

    def _merge_caller(self, call: Call, lookups: Lookups) -> None:
        """Caller details follow the newest live snapshot (NewCallerid can change them),
        but a snapshot that knows less (a resync) never blanks what is known."""
        values = self.values
        raw = clean_text(call.caller_number_raw, 128)
        if raw is not None or call.caller_withheld:
            number = caller_number(raw, lookups.region, withheld=call.caller_withheld)
            values["caller_number_raw"] = raw
            values["caller_number"] = number.e164
            values["caller_withheld"] = number.withheld
            if number.e164 is not None and values["customer_id"] is None:
                values["customer_id"] = lookups.customers.get(number.e164)
        if call.caller_name is not None:
            values["caller_name"] = clean_text(call.caller_name, 512)

    def _merge_ring(self, ring: Ring, lookups: Lookups) -> None:
        uniqueid = clean_text(ring.uniqueid, 64) or ""
        started = _time(ring.started_at)
        existing = self.rings.get(uniqueid)
        if existing is None:
            self.rings[uniqueid] = {
                "uniqueid": uniqueid,
                "device": clean_text(ring.device, 128),
                "channel": clean_text(ring.channel, 128),
                "operator_id": lookups.operator_of(ring.device),
                "queue": clean_text(ring.queue, 128),
                "member_name": clean_text(ring.member_name, 128),
                "started_at": started,
                "ended_at": _time(ring.ended_at),
                "result": None if ring.result is None else ring.result.value,
                "outside": ring.outside,
            }
            return
        if started is not None and started < existing["started_at"]:
            existing["started_at"] = started
        if existing["ended_at"] is None and ring.ended_at is not None:
            existing["ended_at"] = _time(ring.ended_at)
        if existing["result"] is None and ring.result is not None:
            existing["result"] = ring.result.value
        if existing["queue"] is None and ring.queue is not None:
            existing["queue"] = clean_text(ring.queue, 128)
        if existing["member_name"] is None and ring.member_name is not None:
            existing["member_name"] = clean_text(ring.member_name, 128)

    def _merge_segment(self, segment: Segment, lookups: Lookups) -> None:
        channel = clean_text(segment.channel, 128) or ""
        started = _time(segment.started_at)
        ended = _time(segment.ended_at)
        same = [s for s in self.segments if s["channel"] == channel]
        match = next((s for s in same if s["started_at"] == started), None)
        if match is None:
            # The same talking part seen with another start (a resync estimates it).
            match = next(
                (
                    s
                    for s in same
                    if (s["ended_at"] is None or started <= s["ended_at"])
                    and (ended is None or ended >= s["started_at"])
                ),
                None,
            )
        if match is None:
            self.segments.append(
                {
                    "device": clean_text(segment.device, 128),
                    "channel": channel,
                    "operator_id": lookups.operator_of(segment.device),
                    "started_at": started,
                    "ended_at": ended,
                }
            )
            return
        if started is not None and started < match["started_at"]:
            match["started_at"] = started
        if match["ended_at"] is None and ended is not None:
            match["ended_at"] = ended

    def _merge_transfer(self, transfer: Transfer, lookups: Lookups) -> None:
        at = _time(transfer.at)
        target = clean_text(transfer.to, 128)
        existing = self.transfers.get((transfer.kind.value, at))
        if existing is None:
            self.transfers[(transfer.kind.value, at)] = {
                "kind": transfer.kind.value,
                "at": at,
                "from_device": clean_text(transfer.from_device, 128),
                "from_operator_id": lookups.operator_of(transfer.from_device),
                "to_target": target,
                "to_operator_id": lookups.operator_of(transfer.to),
            }
            return
        if existing["from_device"] is None and transfer.from_device is not None:
            existing["from_device"] = clean_text(transfer.from_device, 128)
            existing["from_operator_id"] = lookups.operator_of(transfer.from_device)
        # The target becomes a device once known; never go back to an extension.
        current = existing["to_target"]
        if target is not None and (current is None or ("/" in target and "/" not in current)):
            existing["to_target"] = target
            existing["to_operator_id"] = lookups.operator_of(transfer.to)
