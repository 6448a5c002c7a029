"""Which snapshots of a call a batch has to merge: usually only the newest.

Every domain event carries its call's whole snapshot (rings, segments and transfers so
far), so when a batch holds several events of one call, merging the last one alone gives
the record the earlier ones would have given - *when the last one knows everything the
earlier ones knew*. That is what ``supersedes`` checks, field by field, against the merge
rules of ``records.py`` (earliest start wins, the first answer and its device stand, the
end is final, a first queue is never replaced, children only gain facts). It is
deliberately strict: an event that arrived out of order, a reconnect's second
``CallStarted``, a caller ID that changed mid-call, all make it answer no, and the batch
then merges every snapshot in order, exactly as one event at a time would.

The proof obligation, for the tests: for every record state ``r`` with
``segments_fit(r, newer)``, merging ``older`` and then ``newer`` gives the same record
as merging ``newer`` alone, and the first merge keeps ``segments_fit`` true. By
induction the whole chain of a batch then collapses into its last snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallTransferred,
    DomainEvent,
    OperatorRinging,
    Ring,
    RingEnded,
    Segment,
    Transfer,
)

from .types import from_posix

__all__ = ["CallKey", "effective", "group", "newest_alone", "segments_fit", "supersedes"]

CallKey = tuple[str, str]

#: Column widths of the natural keys: longer values are cut, and two cut values could
#: meet, so compaction only trusts keys that are stored as they are.
_UNIQUEID_WIDTH = 64
_CHANNEL_WIDTH = 128


def effective(event: DomainEvent) -> Call:
    """The event's snapshot, with the event's own ring, segment or transfer added in case
    the snapshot lacks it (the model always includes it; the store does not rely on it)."""
    call = event.call
    if isinstance(event, OperatorRinging | RingEnded):
        if event.ring not in call.rings:
            return replace(call, rings=(*call.rings, event.ring))
    elif isinstance(event, CallAnswered):
        if event.segment not in call.segments:
            return replace(call, segments=(*call.segments, event.segment))
    elif isinstance(event, CallTransferred) and event.transfer not in call.transfers:
        return replace(call, transfers=(*call.transfers, event.transfer))
    return call


def group(events: Iterable[DomainEvent]) -> dict[CallKey, list[Call]]:
    """Each call's effective snapshots, in the order the events came."""
    calls: dict[CallKey, list[Call]] = {}
    for event in events:
        call = effective(event)
        if len(call.pbx) > 64 or len(call.linkedid) > 64:
            raise ValueError(f"call key too long: {call.pbx[:64]!r}/{call.linkedid[:64]!r}")
        key = (call.pbx, call.linkedid)
        if (known := calls.get(key)) is None:
            calls[key] = [call]
        else:
            known.append(call)
    return calls


def newest_alone(snapshots: Sequence[Call]) -> bool:
    """Whether the last snapshot may be merged alone (the record's segments permitting)."""
    last = snapshots[-1]
    return all(supersedes(last, older) for older in snapshots[:-1])


def _kept(old: object, new: object) -> bool:
    """A first-value-wins field: the newer snapshot keeps what the older one had."""
    return old is None or old == new


def _earlier(old: float | None, new: float | None) -> bool:
    """An earliest-wins time: the newer one is as early or earlier."""
    return old is None or (new is not None and new <= old)


def supersedes(newer: Call, older: Call) -> bool:
    """Merging ``older`` then ``newer`` into any record gives what ``newer`` alone gives."""
    if newer is older:
        return True
    if newer.direction != older.direction or not newer.started_at <= older.started_at:
        return False
    # Caller details follow the newest live snapshot, but only until the end: equal, so
    # the order never matters (a caller ID changed mid-call merges every snapshot).
    if (newer.caller_number_raw, newer.caller_withheld, newer.caller_name) != (
        older.caller_number_raw,
        older.caller_withheld,
        older.caller_name,
    ):
        return False
    if not (
        _kept(older.dialled, newer.dialled)
        and _kept(older.queue, newer.queue)
        and _kept(older.agreement_id, newer.agreement_id)
        and _kept(older.originate_action_id, newer.originate_action_id)
        and _kept(older.queue_result, newer.queue_result)
        and newer.queues[: len(older.queues)] == older.queues
        and _earlier(older.queue_joined_at, newer.queue_joined_at)
        and _earlier(older.wait_ended_at, newer.wait_ended_at)
        and (older.complete or not newer.complete)
    ):
        return False
    if older.answered_at is not None and (newer.answered_at, newer.answered_by) != (
        older.answered_at,
        older.answered_by,
    ):
        return False
    if older.ended_at is not None and (
        newer.ended_at,
        newer.outcome,
        newer.hangup_cause,
        newer.hangup_cause_text,
        newer.hung_up_by,
        newer.ended_at_approximate,
    ) != (
        older.ended_at,
        older.outcome,
        older.hangup_cause,
        older.hangup_cause_text,
        older.hung_up_by,
        older.ended_at_approximate,
    ):
        return False
    return (
        _rings_superseded(newer.rings, older.rings)
        and _segments_superseded(newer.segments, older.segments)
        and _transfers_superseded(newer.transfers, older.transfers)
    )


def _clean_key(value: str, width: int) -> bool:
    return len(value) <= width and value.isascii() and "\x00" not in value


def _rings_superseded(newer: tuple[Ring, ...], older: tuple[Ring, ...]) -> bool:
    """Rings match on Uniqueid: the older ones come first in the newer list (so rows are
    created in the same order), each with nothing the newer one lacks."""
    if len(older) > len(newer):
        return False
    ids = [ring.uniqueid for ring in newer]
    if len(set(ids)) != len(ids) or not all(_clean_key(i, _UNIQUEID_WIDTH) for i in ids):
        return False
    for old, new in zip(older, newer, strict=False):
        if old is new:
            continue
        if (old.uniqueid, old.device, old.channel, old.outside) != (
            new.uniqueid,
            new.device,
            new.channel,
            new.outside,
        ):
            return False
        if not (
            new.started_at <= old.started_at
            and _kept(old.ended_at, new.ended_at)
            and _kept(old.result, new.result)
            and _kept(old.queue, new.queue)
            and _kept(old.member_name, new.member_name)
        ):
            return False
    return True


def _segments_superseded(newer: tuple[Segment, ...], older: tuple[Segment, ...]) -> bool:
    """Segments match on channel and start, else on channel and overlap: one segment per
    channel, the older ones first, same start, an end only ever added."""
    if len(older) > len(newer):
        return False
    channels = [segment.channel for segment in newer]
    if len(set(channels)) != len(channels):
        return False
    for segment in newer:
        if not _clean_key(segment.channel, _CHANNEL_WIDTH):
            return False
        if segment.ended_at is not None and segment.ended_at < segment.started_at:
            return False
    for old, new in zip(older, newer, strict=False):
        if old is new:
            continue
        if (old.channel, old.device, old.started_at) != (new.channel, new.device, new.started_at):
            return False
        if not _kept(old.ended_at, new.ended_at):
            return False
    return True


def _transfers_superseded(newer: tuple[Transfer, ...], older: tuple[Transfer, ...]) -> bool:
    """Transfers match on kind and instant; a target may only go from unknown or an
    extension to a device, as the merge would take it."""
    if len(older) > len(newer):
        return False
    keys = [(transfer.kind, transfer.at) for transfer in newer]
    if len(set(keys)) != len(keys):
        return False
    for old, new in zip(older, newer, strict=False):
        if old is new:
            continue
        if (old.kind, old.at) != (new.kind, new.at) or not _kept(old.from_device, new.from_device):
            return False
        if not (
            old.to is None or old.to == new.to or ("/" not in old.to and "/" in (new.to or ""))
        ):
            return False
    return True


def segments_fit(record_segments: Iterable[tuple[str, datetime]], newest: Call) -> bool:
    """The record's side of the bargain. Segment matching falls back on overlap, which
    depends on what the record already holds; when every segment the record has on one of
    ``newest``'s channels starts where ``newest``'s does, both orders match alike.

    ``record_segments`` are the record's segments as (channel, start)."""
    starts = {segment.channel: segment.started_at for segment in newest.segments}
    return all(
        from_posix(starts[channel]) == started
        for channel, started in record_segments
        if channel in starts
    )
