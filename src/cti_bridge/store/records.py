"""Call records from the call model's domain events, written idempotently.

Every domain event carries a full snapshot of its call, so writing a record is merging
that snapshot into the row keyed by (pbx, linkedid). The merge is what makes replays,
reconnects and reordering harmless:

* the row is created by whichever event comes first, never twice (insert-or-nothing on
  the unique key; rows that exist are read ``FOR UPDATE``, in key order);
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

The one owner of the ``calls`` table and its children: the screen-pop needs a call's row
id before the record writer may have seen the call, and gets it here too
(``ensure_call``, ``insert_call``): whichever comes first creates the row, on the same
unique key, and the other merges into it.

Operators are resolved from devices at write time, so the record says who rang and who
answered as things were during the call.

This runs in a pool thread whose Python competes with the reactor for the interpreter,
and on SQLite inside the only write lock, so a batch is cheap on purpose: only the newest
snapshot of a call is merged when it says it all (``compaction.py``), the merge works on
plain values (``merge.py``), and the SQL is a fixed handful of Core statements per batch
(look-ups, rows and their children by key, then ``executemany`` inserts and updates),
never one per event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import structlog
from sqlalchemy import Connection, Engine, Table, bindparam, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from cti_bridge.calls.events import Call, DomainEvent

from .compaction import CallKey, group, newest_alone, segments_fit
from .db import WRITE_OPTION, StoreService, single_statements, writing
from .fences import check_fence, check_fences
from .merge import CALL_COLUMNS, Lookups, Record, clean_text, durations, guess_outcome
from .models import Agreement, CallRecord, CallRing, CallSegment, CallTransfer, OperatorDevice
from .models import CustomerNumber as CustomerNumberRow
from .numbers import caller_number
from .types import from_posix

__all__ = ["CallStore", "NewCall", "clean_text", "find_call_id", "insert_call"]

#: The pop is who waits for ``insert_call``: its warning stays in the pop's log.
log = structlog.get_logger("cti_bridge.pop")

T = TypeVar("T")

CALLS = cast(Table, CallRecord.__table__)
RINGS = cast(Table, CallRing.__table__)
SEGMENTS = cast(Table, CallSegment.__table__)
TRANSFERS = cast(Table, CallTransfer.__table__)
DEVICES = cast(Table, OperatorDevice.__table__)
NUMBERS = cast(Table, CustomerNumberRow.__table__)
AGREEMENTS = cast(Table, Agreement.__table__)

# Statements built once: their compiled form is cached, so a batch pays no compiling.
_LOAD_CALLS = (
    select(*(CALLS.c[name] for name in ("id", "pbx", "linkedid", "direction", *CALL_COLUMNS)))
    .where(
        CALLS.c.pbx == bindparam("pbx"),
        CALLS.c.linkedid.in_(bindparam("linkedids", expanding=True)),
    )
    .order_by(CALLS.c.linkedid)
    .with_for_update()
)
_LOAD_CHILDREN = {
    table.name: select(table)
    .where(table.c.call_id.in_(bindparam("ids", expanding=True)))
    .order_by(table.c.call_id, table.c[order], table.c.id)
    for table, order in ((RINGS, "started_at"), (SEGMENTS, "started_at"), (TRANSFERS, "at"))
}
_OPERATORS = select(DEVICES.c.device, DEVICES.c.operator_id).where(
    DEVICES.c.device.in_(bindparam("devices", expanding=True))
)
_CUSTOMERS = select(NUMBERS.c.number, NUMBERS.c.customer_id).where(
    NUMBERS.c.number.in_(bindparam("numbers", expanding=True))
)
_AGREEMENTS = select(AGREEMENTS.c.id).where(AGREEMENTS.c.id.in_(bindparam("ids", expanding=True)))
_UPDATE = {
    table.name: update(table).where(table.c.id == bindparam("b_id"))
    for table in (CALLS, RINGS, SEGMENTS, TRANSFERS)
}
_INSERT = {table.name: insert(table) for table in (RINGS, SEGMENTS, TRANSFERS)}
_CALL_ID = select(CallRecord.id).where(
    CallRecord.pbx == bindparam("pbx"), CallRecord.linkedid == bindparam("linkedid")
)
_NEW_CALL = {
    name: dialect.insert(CallRecord)
    .on_conflict_do_nothing(index_elements=["pbx", "linkedid"])
    .returning(CallRecord.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_INSERT_CALLS = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(CALLS)
    .on_conflict_do_nothing(index_elements=["pbx", "linkedid"])
    .returning(CALLS.c.id, CALLS.c.pbx, CALLS.c.linkedid)
    for dialect in (postgresql, sqlite)
}


class NewCall(Protocol):
    """What a call's row starts with when it is made before its first record event (the
    pop's ``ContextRequest`` is one)."""

    @property
    def pbx(self) -> str: ...
    @property
    def linkedid(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def caller_withheld(self) -> bool: ...
    @property
    def complete(self) -> bool: ...


class CallStore(StoreService):
    """Writes call records. Synchronous: run it in a thread pool (see ``RecordWriter``)."""

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        """The call's record id, creating the row (insert-or-nothing) when there is none:
        for a pop that needs the id before the record writer saw the call. ``lock_wait``:
        see ``insert_call`` (None: wait for SQLite's write lock as long as the store does).
        One connection, the look-up and the insert each alone in its transaction."""
        engine = self._sessions.kw["bind"]
        assert isinstance(engine, Engine)
        with single_statements(engine) as connection:
            found = find_call_id(connection, call.pbx, call.linkedid)
            connection.rollback()
            if found is not None:
                return found
            return insert_call(connection, call, self._now(), lock_wait)

    def latest_start(
        self, pbx: str, *, before: float, excluding: Collection[str] = ()
    ) -> float | None:
        """When the newest recorded call of ``pbx`` that began before ``before`` began
        (seconds), the calls ``excluding`` names left out; ``None``: none."""
        query = select(func.max(CALLS.c.started_at)).where(
            CALLS.c.pbx == pbx, CALLS.c.started_at < _utc(before)
        )
        if excluding:
            query = query.where(CALLS.c.linkedid.not_in(sorted(excluding)))
        with self._sessions() as session:
            found = session.execute(query).scalar()
        if found is None:
            return None
        return float((found if found.tzinfo else found.replace(tzinfo=UTC)).timestamp())

    def settled(self, pbx: str, linkedids: Iterable[str]) -> set[str]:
        """Of these linkedids (at most 500), the calls of ``pbx`` whose record has an end
        that was seen (not open, not closed by an estimate). Read-only."""
        wanted = sorted(set(linkedids))[:500]
        if not wanted:
            return set()
        with self._sessions() as session:
            rows = session.execute(
                select(CALLS.c.linkedid).where(
                    CALLS.c.pbx == pbx,
                    CALLS.c.linkedid.in_(wanted),
                    CALLS.c.ended_at.is_not(None),
                    CALLS.c.ended_at_approximate.is_(False),
                )
            )
            return {str(linkedid) for (linkedid,) in rows}

    def call_ids(self, pbx: str, linkedids: Iterable[str]) -> dict[str, int]:
        """The record ids of the calls of ``pbx`` with these linkedids that have a row
        (the supervisors' waiting callers carry the pop's ``call_id``). Read-only."""
        wanted = sorted(set(linkedids))[:500]
        if not wanted:
            return {}
        with self._sessions() as session:
            rows = session.execute(
                select(CALLS.c.linkedid, CALLS.c.id).where(
                    CALLS.c.pbx == pbx, CALLS.c.linkedid.in_(wanted)
                )
            )
            return {str(linkedid): int(call_id) for linkedid, call_id in rows}

    def insert_call(
        self, connection: Connection, call: NewCall, lock_wait: float | None
    ) -> int | None:
        """``insert_call`` on a connection the caller holds (the pop's read, which found no
        row: the insert follows on the same connection, no second checkout)."""
        return insert_call(connection, call, self._now(), lock_wait)

    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int:
        """Merge ``events`` (in order) in one transaction; returns how many calls changed.

        ``fences``: per PBX the fencing token the writer holds (``store/fences.py``);
        checked first, in the transaction: a stale one refuses the whole batch
        (``FenceRefused``). ``None``: no fencing in use, nothing checked."""
        if not events:
            return 0
        calls = group(events)
        # Everything that needs no database is done before the transaction starts.
        wanted = _Wanted(calls, self._region)
        now = _utc(self._clock())
        with writing(self._sessions) as session:
            connection = session.connection()
            if fences:
                check_fences(connection, fences)
            lookups = wanted.look_up(connection)
            records = _load(connection, calls)
            fresh = {
                key: merged(Record.new(snapshots[0], now), snapshots, lookups)
                for key, snapshots in calls.items()
                if key not in records
            }
            for record in fresh.values():
                record.finish(now)
            inserted = _insert_calls(connection, fresh)
            if raced := [key for key in fresh if key not in inserted]:
                # Another writer (the pop engine, another node) created them meanwhile.
                records.update(_load(connection, {key: calls[key] for key in raced}))
            for key, record in records.items():
                merged(record, calls[key], lookups)
            changed = [record for record in records.values() if record.finish(now)]
            written = [fresh[key] for key in inserted] + changed
            _write(connection, changed, written)
            return len(written)

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[CallKey], bool] | None = None,
        fence: int | None = None,
    ) -> int:
        """Close open records of ``pbx`` that started before ``at`` and are not live.

        For after a daemon restart: calls that ended while nobody listened would stay
        open forever. They are closed as incomplete, ended by the system, at ``at``.
        ``owns`` restricts the work to the records one writer lane is responsible for;
        ``fence``: the writer's fencing token for ``pbx``, as ``apply``'s ``fences``.
        """
        closed_at = _utc(at)
        live = set(live_linkedids)
        rang = exists().where(RINGS.c.call_id == CALLS.c.id)
        with writing(self._sessions) as session:
            connection = session.connection()
            if fence is not None:
                check_fence(connection, pbx, fence)
            rows = connection.execute(
                select(
                    *(CALLS.c[n] for n in ("id", "linkedid", "direction", "queue")),
                    *(CALLS.c[n] for n in ("started_at", "queue_joined_at", "answered_at")),
                    CALLS.c.wait_ended_at,
                    rang.label("rang"),
                )
                .where(CALLS.c.pbx == pbx, CALLS.c.ended_at.is_(None))
                .where(CALLS.c.started_at < closed_at)
                .order_by(CALLS.c.linkedid)
                .with_for_update(of=CALLS)
            ).all()
            closed = []
            for row in rows:
                if row.linkedid in live or (owns is not None and not owns((pbx, row.linkedid))):
                    continue
                values = {**row._asdict(), "ended_at": closed_at}
                wait, talk = durations(values)
                closed.append(
                    {
                        "b_id": row.id,
                        "ended_at": closed_at,
                        "ended_at_approximate": True,
                        "complete": False,
                        "hung_up_by": "system",
                        "outcome": guess_outcome(values, bool(row.rang)),
                        "wait_seconds": wait,
                        "talk_seconds": talk,
                        "updated_at": closed_at,
                    }
                )
            if closed:
                connection.execute(_UPDATE["calls"], closed)
            return len(closed)


def find_call_id(connection: Connection, pbx: str, linkedid: str) -> int | None:
    found = connection.execute(_CALL_ID, {"pbx": pbx, "linkedid": linkedid}).scalar()
    return None if found is None else int(found)


def insert_call(
    connection: Connection, call: NewCall, now: datetime, lock_wait: float | None
) -> int | None:
    """Insert-or-nothing one call's record row and return its id; None when SQLite's write
    lock was not free within ``lock_wait`` seconds (None: as long as the store waits).

    The insert is one statement that returns the new id, alone in its transaction (on
    PostgreSQL the connection is in AUTOCOMMIT: no BEGIN/COMMIT round trips, see
    ``single_statements``). On SQLite it waits for the single write lock, which the record
    writer holds while it writes a batch; a pop cannot wait long for it."""
    key = {"pbx": call.pbx, "linkedid": call.linkedid}
    values: dict[str, Any] = {
        **key,
        "direction": call.direction,
        "caller_withheld": call.caller_withheld,
        "queues": [],
        "started_at": from_posix(call.started_at),
        "complete": call.complete,
        "created_at": now,
        "updated_at": now,
    }
    statement = _NEW_CALL[connection.dialect.name]
    try:
        with _lock_wait(connection, lock_wait):
            connection.execution_options(**{WRITE_OPTION: True})
            call_id = connection.execute(statement, values).scalar()
            if call_id is None:  # the record writer created it meanwhile
                call_id = connection.execute(_CALL_ID, key).scalar()
            connection.commit()
    except DBAPIError as error:
        connection.rollback()
        if lock_wait is None:
            raise
        log.warning(
            "pop goes out without its call id for now",
            pbx=call.pbx,
            linkedid=call.linkedid,
            error=str(error.orig)[:200],
        )
        return None
    assert call_id is not None
    return int(call_id)


@contextmanager
def _lock_wait(connection: Connection, seconds: float | None) -> Iterator[None]:
    """SQLite's busy timeout, shortened for one statement (PostgreSQL locks rows, not
    the database: there the insert only waits for a transaction inserting the same call)."""
    if seconds is None or connection.dialect.name != "sqlite":
        yield
        return
    raw: Any = connection.connection.dbapi_connection
    before = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {before}")


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def merged(record: Record, snapshots: Sequence[Call], lookups: Lookups) -> Record:
    """Merge one call's snapshots of this batch: the newest alone when it says it all."""
    if len(snapshots) > 1 and newest_alone(snapshots):
        known = ((s["channel"], s["started_at"]) for s in record.segments)
        if segments_fit(known, snapshots[-1]):
            snapshots = snapshots[-1:]
    for call in snapshots:
        record.merge(call, lookups)
    return record


class _Wanted:
    """What a batch needs to look up: devices, caller numbers, agreement references."""

    def __init__(self, calls: dict[CallKey, list[Call]], region: str) -> None:
        self.region = region
        self.devices: set[str] = set()
        self.numbers: set[str] = set()
        self.agreements: set[int] = set()
        for snapshots in calls.values():
            # Only the newest snapshot is merged when compaction allows, but the others
            # may be too: looking up for all of them is cheap and always enough.
            for call in snapshots:
                self._add(call)

    def _add(self, call: Call) -> None:
        devices = self.devices
        devices.update(r.device for r in call.rings)
        devices.update(s.device for s in call.segments)
        for transfer in call.transfers:
            if transfer.from_device:
                devices.add(transfer.from_device)
            if transfer.to:
                devices.add(transfer.to)
        if call.answered_by:
            devices.add(call.answered_by)
        if call.caller_number_raw is not None or call.caller_withheld:
            raw = clean_text(call.caller_number_raw, 128)
            number = caller_number(raw, self.region, withheld=call.caller_withheld).e164
            if number is not None:
                self.numbers.add(number)
        ref = call.agreement_id
        if ref is not None and ref.isascii() and ref.isdigit() and len(ref) <= 18:
            self.agreements.add(int(ref))

    def look_up(self, connection: Connection) -> Lookups:
        devices = sorted(d for d in self.devices if len(d) <= 128)
        operators: dict[str, int | None] = dict.fromkeys(devices)
        customers: dict[str, int] = {}
        agreements: set[int] = set()
        for chunk in _chunks(devices):
            operators.update(connection.execute(_OPERATORS, {"devices": chunk}).all())
        for chunk in _chunks(sorted(self.numbers)):
            customers.update(connection.execute(_CUSTOMERS, {"numbers": chunk}).all())
        for ids in _chunks(sorted(self.agreements)):
            agreements.update(connection.execute(_AGREEMENTS, {"ids": ids}).scalars())
        return Lookups(self.region, operators, customers, agreements)


def _load(connection: Connection, calls: Iterable[CallKey]) -> dict[CallKey, Record]:
    """The calls that exist, locked (in key order, so two writers never deadlock), with
    their rings, segments and transfers."""
    by_pbx: dict[str, list[str]] = {}
    for pbx, linkedid in sorted(calls):
        by_pbx.setdefault(pbx, []).append(linkedid)
    rows: list[dict[str, Any]] = []
    for pbx, linkedids in by_pbx.items():
        for chunk in _chunks(linkedids):
            result = connection.execute(_LOAD_CALLS, {"pbx": pbx, "linkedids": chunk})
            rows.extend(row._asdict() for row in result)
    children: dict[str, dict[int, list[dict[str, Any]]]] = {}
    ids = [row["id"] for row in rows]
    for name, statement in _LOAD_CHILDREN.items():
        of_call = children[name] = {}
        for chunk in _chunks(ids):
            for child in connection.execute(statement, {"ids": chunk}):
                values = child._asdict()
                of_call.setdefault(values["call_id"], []).append(values)
    return {
        (row["pbx"], row["linkedid"]): Record(
            row["id"],
            row,
            children["call_rings"].get(row["id"]),
            children["call_segments"].get(row["id"]),
            children["call_transfers"].get(row["id"]),
        )
        for row in rows
    }


def _insert_calls(connection: Connection, fresh: dict[CallKey, Record]) -> dict[CallKey, int]:
    """Insert new calls whole (in key order); a call another writer inserted first is
    left out of the answer. Returns the inserted calls' ids."""
    if not fresh:
        return {}
    statement = _INSERT_CALLS[connection.dialect.name]
    inserted: dict[CallKey, int] = {}
    for chunk in _chunks(sorted(fresh)):
        rows = [fresh[key].values for key in chunk]
        for record_id, pbx, linkedid in connection.execute(statement, rows):
            inserted[(pbx, linkedid)] = record_id
            fresh[(pbx, linkedid)].id = record_id
    return inserted


def _write(connection: Connection, changed: list[Record], written: list[Record]) -> None:
    """Updates of changed rows and children, inserts of new children: executemany each."""
    if updates := [
        {"b_id": r.id, **{c: r.values[c] for c in CALL_COLUMNS}} for r in changed if r.row_changed()
    ]:
        connection.execute(_UPDATE["calls"], updates)
    new: tuple[list[dict[str, Any]], ...] = ([], [], [])
    modified: tuple[list[dict[str, Any]], ...] = ([], [], [])
    for record in written:
        assert record.id is not None
        for rows, more in zip(new, record.new_children(record.id), strict=True):
            rows.extend(more)
        for rows, more in zip(modified, record.changed_children(), strict=True):
            rows.extend(more)
    for table, rows in zip((RINGS, SEGMENTS, TRANSFERS), new, strict=True):
        if rows:
            connection.execute(_INSERT[table.name], rows)
    for table, rows in zip((RINGS, SEGMENTS, TRANSFERS), modified, strict=True):
        if rows:
            connection.execute(_UPDATE[table.name], rows)
