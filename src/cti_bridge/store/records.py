"""Call records from the call model's domain events, written idempotently.

Every domain event carries a full snapshot of its call, so writing a record is merging
that snapshot into the row keyed by (pbx, linkedid). The merge is what makes replays,
reconnects and reordering harmless:

* the row is created by whichever event comes first, never twice (insert-or-nothing on
  the unique key, then the row is locked for the rest of the transaction);
* "first" facts keep their earliest value (start, queue join, first answer and who gave
  it, the first queue); caller details follow the newest live snapshot;
* the end is final: once a record has ended, a late or replayed event may still add a
  ring, segment or transfer it lacks and fill a blank, but never reopens the call or
  changes how it ended;
* rings, segments and transfers are matched on natural keys (ring: the rung channel's
  Uniqueid; segment: channel and start; transfer: kind and instant), so a replay adds
  no second row;
* ``complete`` only ever goes from true to false: a record that once missed part of its
  call stays marked as such;
* notes, category and disposition belong to operators and are never written here.

Operators are resolved from devices at write time, so the record says who rang and who
answered as things were during the call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from cti_bridge.calls.events import Call, DomainEvent, Ring, Segment, Transfer

from .compaction import group, newest_alone, segments_fit
from .db import StoreService, writing
from .models import Agreement, CallRecord, CallRing, CallSegment, CallTransfer, OperatorDevice
from .models import CustomerNumber as CustomerNumberRow
from .numbers import caller_number
from .types import from_posix

__all__ = ["CallStore", "clean_text"]

CallKey = tuple[str, str]
T = TypeVar("T")


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


class CallStore(StoreService):
    """Writes call records. Synchronous: run it in a thread pool (see ``RecordWriter``)."""

    def apply(self, events: Sequence[DomainEvent]) -> int:
        """Merge ``events`` (in order) in one transaction; returns how many calls changed."""
        if not events:
            return 0
        calls = group(events)
        with writing(self._sessions) as session, session.no_autoflush:
            batch = _Batch(session, self._region, _utc(self._clock()))
            batch.load([call for snapshots in calls.values() for call in snapshots])
            for snapshots in calls.values():
                batch.merge_all(snapshots)
            return len(batch.changed)

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[CallKey], bool] | None = None,
    ) -> int:
        """Close open records of ``pbx`` that started before ``at`` and are not live.

        For after a daemon restart: calls that ended while nobody listened would stay
        open forever. They are closed as incomplete, ended by the system, at ``at``.
        ``owns`` restricts the work to the records one writer lane is responsible for.
        """
        closed_at = _utc(at)
        live = set(live_linkedids)
        with writing(self._sessions) as session:
            rows = session.scalars(
                select(CallRecord)
                .where(
                    CallRecord.pbx == pbx,
                    CallRecord.ended_at.is_(None),
                    CallRecord.started_at < closed_at,
                )
                .with_for_update()
            ).all()
            count = 0
            for row in rows:
                if row.linkedid in live or (owns is not None and not owns((pbx, row.linkedid))):
                    continue
                row.ended_at = closed_at
                row.complete = False
                row.hung_up_by = "system"
                row.outcome = _guess_outcome(row)
                _derive_durations(row)
                row.updated_at = closed_at
                count += 1
            return count


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _guess_outcome(row: CallRecord) -> str:
    """The call model's rules, applied to what the record knows."""
    if row.answered_at is not None:
        return "answered"
    if row.queue is not None:
        return "abandoned"
    return "missed" if row.direction == "inbound" and row.rings else "failed"


def _derive_durations(row: CallRecord) -> None:
    """PRODUCT.md's definitions, from the merged row rather than any one snapshot."""
    start = row.queue_joined_at or row.started_at
    wait_end = row.answered_at or row.wait_ended_at or row.ended_at
    wait = None if wait_end is None else max(0.0, (wait_end - start).total_seconds())
    talk = None
    if row.answered_at is not None and row.ended_at is not None:
        talk = max(0.0, (row.ended_at - row.answered_at).total_seconds())
    if row.wait_seconds != wait:
        row.wait_seconds = wait
    if row.talk_seconds != talk:
        row.talk_seconds = talk


def _agreement_number(ref: str | None) -> bool:
    return ref is not None and ref.isascii() and ref.isdigit() and len(ref) <= 18


def _chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _earliest(current: datetime | None, incoming: datetime | None) -> datetime | None:
    if current is None:
        return incoming
    if incoming is None:
        return current
    return min(current, incoming)


@dataclass
class _Batch:
    """One transaction's worth of merging: rows and operator lookups cached."""

    session: Session
    region: str
    now: datetime
    operators: dict[str, int | None] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)  # E.164 -> customer
    agreements: set[int] = field(default_factory=set)
    rows: dict[CallKey, CallRecord] = field(default_factory=dict)
    fresh: set[CallKey] = field(default_factory=set)  # inserted by this batch
    changed: set[CallKey] = field(default_factory=set)

    # --- loading: a few queries per batch, not per event ------------------------------

    def load(self, calls: Sequence[Call]) -> None:
        self._load_operators(calls)
        self._load_customers(calls)
        self._load_agreements(calls)
        self._load_rows(calls)

    def _load_operators(self, calls: Iterable[Call]) -> None:
        devices: set[str] = set()
        for call in calls:
            devices.update(r.device for r in call.rings)
            devices.update(s.device for s in call.segments)
            devices.update(t.from_device for t in call.transfers if t.from_device)
            devices.update(t.to for t in call.transfers if t.to)
            if call.answered_by:
                devices.add(call.answered_by)
        devices = {d for d in devices if len(d) <= 128}
        self.operators = dict.fromkeys(devices)
        for chunk in _chunks(sorted(devices)):
            query = select(OperatorDevice.device, OperatorDevice.operator_id).where(
                OperatorDevice.device.in_(chunk)
            )
            self.operators.update(self.session.execute(query).all())

    def _load_customers(self, calls: Iterable[Call]) -> None:
        numbers = set()
        for call in calls:
            raw = clean_text(call.caller_number_raw, 128)
            number = caller_number(raw, self.region, withheld=call.caller_withheld).e164
            if number is not None:
                numbers.add(number)
        for chunk in _chunks(sorted(numbers)):
            query = select(CustomerNumberRow.number, CustomerNumberRow.customer_id).where(
                CustomerNumberRow.number.in_(chunk)
            )
            self.customers.update(self.session.execute(query).all())

    def _load_agreements(self, calls: Iterable[Call]) -> None:
        ids = {int(c.agreement_id or "") for c in calls if _agreement_number(c.agreement_id)}
        for chunk in _chunks(sorted(ids)):
            self.agreements.update(
                self.session.scalars(select(Agreement.id).where(Agreement.id.in_(chunk)))
            )

    def _load_rows(self, calls: Iterable[Call]) -> None:
        wanted: dict[CallKey, Call] = {}
        for call in calls:
            wanted.setdefault((call.pbx, call.linkedid), call)
        self._select_rows(wanted, children=True)
        missing = [call for key, call in wanted.items() if key not in self.rows]
        if not missing:
            return
        self.fresh = self._insert_or_nothing(missing)
        # What we inserted has no children yet; what another writer inserted meanwhile may.
        self._select_rows(self.fresh, children=False)
        for key in self.fresh:
            for collection in ("rings", "segments", "transfers"):
                set_committed_value(self.rows[key], collection, [])
        self._select_rows({(c.pbx, c.linkedid) for c in missing} - self.fresh, children=True)

    def _select_rows(self, keys: Iterable[CallKey], *, children: bool) -> None:
        """Load and lock the rows (in key order, so two writers never deadlock)."""
        by_pbx: dict[str, list[str]] = {}
        for pbx, linkedid in sorted(keys):
            by_pbx.setdefault(pbx, []).append(linkedid)
        for pbx, linkedids in by_pbx.items():
            for chunk in _chunks(linkedids):
                query = (
                    select(CallRecord)
                    .where(CallRecord.pbx == pbx, CallRecord.linkedid.in_(chunk))
                    .order_by(CallRecord.linkedid)
                    .with_for_update()
                )
                if children:
                    query = query.options(
                        selectinload(CallRecord.rings),
                        selectinload(CallRecord.segments),
                        selectinload(CallRecord.transfers),
                    )
                for row in self.session.scalars(query):
                    self.rows[(row.pbx, row.linkedid)] = row

    def _insert_or_nothing(self, calls: Sequence[Call]) -> set[CallKey]:
        """Insert the calls' rows; another node (or lane) may insert the same call at the
        same moment, so a conflict is fine. Returns the keys this batch inserted."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        values: list[dict[str, Any]] = [
            {
                "pbx": call.pbx,
                "linkedid": call.linkedid,
                "direction": call.direction.value,
                "caller_withheld": call.caller_withheld,
                "queues": [],
                "started_at": from_posix(call.started_at),
                "complete": call.complete,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for call in sorted(calls, key=lambda c: (c.pbx, c.linkedid))
        ]
        inserted: set[CallKey] = set()
        for chunk in _chunks(values, 200):
            statement = (
                insert(CallRecord)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=["pbx", "linkedid"])
                .returning(CallRecord.pbx, CallRecord.linkedid)
            )
            inserted.update((pbx, linkedid) for pbx, linkedid in self.session.execute(statement))
        return inserted

    def operator_of(self, device: str | None) -> int | None:
        return None if device is None else self.operators.get(device)

    # --- merging ---------------------------------------------------------------------

    def merge_all(self, snapshots: Sequence[Call]) -> None:
        """One call's snapshots in batch order; only the newest when it says it all."""
        newest = snapshots[-1]
        row = self.rows[(newest.pbx, newest.linkedid)]
        if (
            len(snapshots) > 1
            and newest_alone(snapshots)
            and segments_fit(((s.channel, s.started_at) for s in row.segments), newest)
        ):
            snapshots = snapshots[-1:]
        for call in snapshots:
            self.merge(call)

    def merge(self, call: Call) -> None:
        key = (call.pbx, call.linkedid)
        row = self.rows[key]
        created = key in self.fresh
        self.fresh.discard(key)
        ended = row.ended_at is not None and not created
        changed = created
        changed |= self._merge_call(row, call, ended)
        for ring in call.rings:
            changed |= self._merge_ring(row, ring)
        for segment in call.segments:
            changed |= self._merge_segment(row, segment)
        for transfer in call.transfers:
            changed |= self._merge_transfer(row, transfer)
        if changed:
            _derive_durations(row)
            row.updated_at = self.now
            self.changed.add((call.pbx, call.linkedid))

    def _merge_call(self, row: CallRecord, call: Call, ended: bool) -> bool:
        changed = False
        values = row.__dict__  # plain reads: this runs for every event

        def put(name: str, value: Any) -> None:
            nonlocal changed
            if values.get(name) != value:
                setattr(row, name, value)
                changed = True

        started = from_posix(call.started_at)
        if started is not None and started < row.started_at:
            put("started_at", started)
        if not ended:
            self._merge_caller(row, call, put)
        if values.get("dialled") is None and call.dialled is not None:
            put("dialled", clean_text(call.dialled, 128))
        if values.get("queue") is None and call.queue is not None:
            put("queue", clean_text(call.queue, 128))
        if call.queues:
            queues = row.queues
            for queue in call.queues:
                if (name := clean_text(queue, 128) or "") not in queues:
                    queues = [*queues, name]
            put("queues", queues)
        put("queue_joined_at", _earliest(row.queue_joined_at, from_posix(call.queue_joined_at)))
        put("wait_ended_at", _earliest(row.wait_ended_at, from_posix(call.wait_ended_at)))
        answered = from_posix(call.answered_at)
        if answered is not None and (row.answered_at is None or answered < row.answered_at):
            put("answered_at", answered)
            put("answered_by_device", clean_text(call.answered_by, 128))
            put("answered_by_operator_id", self.operator_of(call.answered_by))
        if values.get("agreement_ref") is None and call.agreement_id is not None:
            put("agreement_ref", clean_text(call.agreement_id, 64))
            put("agreement_id", self._agreement(row.agreement_ref))
        if values.get("originate_action_id") is None and call.originate_action_id is not None:
            put("originate_action_id", clean_text(call.originate_action_id, 128))
        if not call.complete:
            put("complete", False)
        if not ended and call.ended_at is not None:
            put("ended_at", from_posix(call.ended_at))
            put("outcome", None if call.outcome is None else call.outcome.value)
            put("hangup_cause", call.hangup_cause)
            put("hangup_cause_text", clean_text(call.hangup_cause_text, 128))
            put("hung_up_by", None if call.hung_up_by is None else call.hung_up_by.value)
        queue_result = call.queue_result
        if queue_result is not None and (values.get("queue_result") is None or not ended):
            put("queue_result", str(queue_result))
        return changed

    def _merge_caller(self, row: CallRecord, call: Call, put: Callable[[str, Any], None]) -> None:
        """Caller details follow the newest live snapshot (NewCallerid can change them),
        but a snapshot that knows less (a resync) never blanks what is known."""
        raw = clean_text(call.caller_number_raw, 128)
        if raw is not None or call.caller_withheld:
            number = caller_number(raw, self.region, withheld=call.caller_withheld)
            put("caller_number_raw", raw)
            put("caller_number", number.e164)
            put("caller_withheld", number.withheld)
            if number.e164 is not None and row.customer_id is None:
                put("customer_id", self.customers.get(number.e164))
        name = clean_text(call.caller_name, 512)
        if name is not None:
            put("caller_name", name)

    def _agreement(self, ref: str | None) -> int | None:
        if not _agreement_number(ref):
            return None
        number = int(ref or "")
        return number if number in self.agreements else None

    def _merge_ring(self, row: CallRecord, ring: Ring) -> bool:
        uniqueid = clean_text(ring.uniqueid, 64) or ""
        started = from_posix(ring.started_at)
        assert started is not None
        ended = from_posix(ring.ended_at)
        result = None if ring.result is None else ring.result.value
        for existing in row.rings:
            if existing.uniqueid == uniqueid:
                changed = False
                if started < existing.started_at:
                    existing.started_at, changed = started, True
                if existing.ended_at is None and ended is not None:
                    existing.ended_at, changed = ended, True
                if existing.result is None and result is not None:
                    existing.result, changed = result, True
                if existing.queue is None and ring.queue is not None:
                    existing.queue = clean_text(ring.queue, 128)
                if existing.member_name is None and ring.member_name is not None:
                    existing.member_name = clean_text(ring.member_name, 128)
                return changed
        row.rings.append(
            CallRing(
                uniqueid=uniqueid,
                device=clean_text(ring.device, 128),
                channel=clean_text(ring.channel, 128),
                operator_id=self.operator_of(ring.device),
                queue=clean_text(ring.queue, 128),
                member_name=clean_text(ring.member_name, 128),
                started_at=started,
                ended_at=ended,
                result=result,
                outside=ring.outside,
            )
        )
        return True

    def _merge_segment(self, row: CallRecord, segment: Segment) -> bool:
        channel = clean_text(segment.channel, 128) or ""
        started = from_posix(segment.started_at)
        assert started is not None
        ended = from_posix(segment.ended_at)
        same = [s for s in row.segments if s.channel == channel]
        match = next((s for s in same if s.started_at == started), None)
        if match is None:
            # The same talking part seen with another start (a resync estimates it).
            match = next(
                (
                    s
                    for s in same
                    if (s.ended_at is None or started <= s.ended_at)
                    and (ended is None or ended >= s.started_at)
                ),
                None,
            )
        if match is None:
            row.segments.append(
                CallSegment(
                    device=clean_text(segment.device, 128),
                    channel=channel,
                    operator_id=self.operator_of(segment.device),
                    started_at=started,
                    ended_at=ended,
                )
            )
            return True
        changed = False
        if started < match.started_at:
            match.started_at, changed = started, True
        if match.ended_at is None and ended is not None:
            match.ended_at, changed = ended, True
        return changed

    def _merge_transfer(self, row: CallRecord, transfer: Transfer) -> bool:
        at = from_posix(transfer.at)
        target = clean_text(transfer.to, 128)
        for existing in row.transfers:
            if existing.kind == transfer.kind.value and existing.at == at:
                before = (existing.from_device, existing.to_target)
                if existing.from_device is None and transfer.from_device is not None:
                    existing.from_device = clean_text(transfer.from_device, 128)
                    existing.from_operator_id = self.operator_of(transfer.from_device)
                # The target becomes a device once known; never go back to an extension.
                if target is not None and (
                    existing.to_target is None or ("/" in target and "/" not in existing.to_target)
                ):
                    existing.to_target = target
                    existing.to_operator_id = self.operator_of(transfer.to)
                return before != (existing.from_device, existing.to_target)
        row.transfers.append(
            CallTransfer(
                kind=transfer.kind.value,
                at=at,
                from_device=clean_text(transfer.from_device, 128),
                from_operator_id=self.operator_of(transfer.from_device),
                to_target=target,
                to_operator_id=self.operator_of(transfer.to),
            )
        )
        return True
