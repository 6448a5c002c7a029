"""The memory twins of ``CallStore`` (records) and ``CallQueries``.

The merge is the SQL store's own (``merge.Record``, ``records.merged``): the twin only
loads and keeps rows in dicts instead of tables, so a record merges to the same values.
The JSON is the SQL store's own renderer (``queries.call_dict``), handed a view of the row.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from cti_bridge.calls.events import DomainEvent

from ..compaction import CallKey, group
from ..merge import CALL_COLUMNS, Lookups, Record, durations, guess_outcome
from ..models import CallRecord
from ..numbers import normalize_number
from ..ports import CallViewer
from ..queries import MAX_LIMIT, UNSET, CallNotFound, call_dict, checked_annotation, note_change
from ..records import NewCall, clean_text, merged
from ..types import from_posix, parse_time
from .fences import check_fence, check_fences
from .tables import Row, Tables

__all__ = ["MemoryCallQueries", "MemoryCallStore"]

_CHILDREN = ("rings", "segments", "transfers")


def _order(row: Row, column: str) -> tuple[bool, datetime, int]:
    moment = row[column]
    return moment is None, moment or datetime.min.replace(tzinfo=UTC), row["id"]


class _Service:
    def __init__(
        self, tables: Tables, *, default_region: str = "BE", clock: Callable[[], float] = time.time
    ) -> None:
        self._t = tables
        self._region = default_region
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _children(self, call_id: int, name: str) -> list[Row]:
        """A call's children as the SQL store loads them: by start (at), then id."""
        column = "at" if name == "transfers" else "started_at"
        rows: list[Row] = getattr(self._t, name).get(call_id, [])
        return sorted(rows, key=lambda r: _order(r, column))


class MemoryCallStore(_Service):
    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int:
        if not events:
            return 0
        calls = group(events)
        now = datetime.fromtimestamp(self._clock(), UTC)
        t = self._t
        with t.lock:
            if fences:
                check_fences(t, fences)
            lookups = Lookups(self._region, dict(t.devices), dict(t.owners), set(t.agreements))
            written = 0
            for key in sorted(calls):
                snapshots = calls[key]
                call_id = t.call_keys.get(key)
                if call_id is None:
                    record = merged(Record.new(snapshots[0], now), snapshots, lookups)
                    record.finish(now)
                    call_id = self._insert(record.values)
                    record.id = call_id
                    changed = True
                else:
                    record = Record(
                        call_id,
                        dict(t.calls[call_id]),
                        *(copy.deepcopy(self._children(call_id, n)) for n in _CHILDREN),
                    )
                    changed = merged(record, snapshots, lookups).finish(now)
                if changed:
                    self._store(call_id, record)
                    written += 1
            return written

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        """The call's record id, made when missing (no write lock to wait for here)."""
        with self._t.lock:
            found = self._t.call_keys.get((call.pbx, call.linkedid))
            if found is not None:
                return found
            now = self._now()
            values: Row = dict.fromkeys(CALL_COLUMNS)
            values.update(
                pbx=call.pbx,
                linkedid=call.linkedid,
                direction=call.direction,
                caller_withheld=call.caller_withheld,
                queues=[],
                started_at=from_posix(call.started_at),
                complete=call.complete,
                ended_at_approximate=False,
                created_at=now,
                updated_at=now,
            )
            return self._insert(values)

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[CallKey], bool] | None = None,
        fence: int | None = None,
    ) -> int:
        closed_at = datetime.fromtimestamp(at, UTC)
        live = set(live_linkedids)
        closed = 0
        with self._t.lock:
            if fence is not None:
                check_fence(self._t, pbx, fence)
            rows = [
                row
                for row in self._t.calls.values()
                if row["pbx"] == pbx and row["ended_at"] is None and row["started_at"] < closed_at
            ]
            for row in sorted(rows, key=lambda r: r["linkedid"]):
                if row["linkedid"] in live or (
                    owns is not None and not owns((pbx, row["linkedid"]))
                ):
                    continue
                values = {**row, "ended_at": closed_at}
                wait, talk = durations(values)
                rang = bool(self._t.rings.get(row["id"]))
                row.update(
                    ended_at=closed_at,
                    ended_at_approximate=True,
                    complete=False,
                    hung_up_by="system",
                    outcome=guess_outcome(values, rang),
                    wait_seconds=wait,
                    talk_seconds=talk,
                    updated_at=closed_at,
                )
                closed += 1
        return closed

    def _insert(self, values: Row) -> int:
        t = self._t
        call_id = t.next_id("calls")
        row: Row = {
            "notes": None,
            "category": None,
            "disposition": None,
            "annotated_at": None,
            "annotated_by_operator_id": None,
            **values,
            "id": call_id,
        }
        t.calls[call_id] = row
        t.call_keys[(row["pbx"], row["linkedid"])] = call_id
        return call_id

    def _store(self, call_id: int, record: Record) -> None:
        t = self._t
        t.calls[call_id].update({c: record.values[c] for c in CALL_COLUMNS})
        for name, children in zip(
            _CHILDREN,
            (record.rings.values(), record.segments, record.transfers.values()),
            strict=True,
        ):
            rows = []
            for child in children:
                if child.get("id") is None:
                    child["id"] = t.next_id(name)
                rows.append({**child, "call_id": call_id})
            getattr(t, name)[call_id] = rows


class MemoryCallQueries(_Service):
    def list_calls(
        self,
        number: str | None = None,
        since: datetime | str | float | None = None,
        limit: int = 50,
        operator_id: int | None = None,
        *,
        until: datetime | str | float | None = None,
        before_id: int | None = None,
        queue: str | None = None,
        customer_id: int | None = None,
        outcome: str | None = None,
        viewer: CallViewer | None = None,
    ) -> list[dict[str, Any]]:
        limit = max(1, min(int(limit), MAX_LIMIT))
        wanted: list[Callable[[Row], bool]] = []
        if number is not None and number.strip():
            e164 = normalize_number(number, self._region)
            if e164 is not None:
                wanted.append(lambda r: r["caller_number"] == e164)
            else:
                raw = clean_text(number, 128)
                wanted.append(lambda r: r["caller_number_raw"] == raw)
        if (start := parse_time(since)) is not None:
            wanted.append(lambda r: r["started_at"] >= start)
        if (end := parse_time(until)) is not None:
            wanted.append(lambda r: r["started_at"] < end)
        if operator_id is not None:
            wanted.append(lambda r: self._involves(r, operator_id))
        if queue is not None:
            wanted.append(lambda r: r["queue"] == queue)
        if customer_id is not None:
            wanted.append(lambda r: r["customer_id"] == customer_id)
        if outcome is not None:
            wanted.append(lambda r: r["outcome"] == outcome)
        if viewer is not None:
            wanted.append(lambda r: self._visible(r, viewer))
        with self._t.lock:
            if before_id is not None:
                anchor = self._t.calls.get(before_id)
                if anchor is None:
                    return []  # SQL: compared with NULL, nothing matches
                at = anchor["started_at"]
                wanted.append(
                    lambda r: (
                        r["started_at"] < at or (r["started_at"] == at and r["id"] < before_id)
                    )
                )
            rows = [r for r in self._t.calls.values() if all(w(r) for w in wanted)]
            rows.sort(key=lambda r: (r["started_at"], r["id"]), reverse=True)
            return [self._render(r) for r in rows[:limit]]

    def get_call(self, call_id: int) -> dict[str, Any]:
        with self._t.lock:
            row = self._t.calls.get(call_id)
            if row is None:
                raise CallNotFound(call_id)
            call = self._render(row)
            call["notes_history"] = [
                note_change(SimpleNamespace(**c), self._t.username(c["operator_id"]))
                for c in self._t.note_changes.get(call_id, ())
            ]
            return call

    def find_call(self, pbx: str, linkedid: str) -> dict[str, Any] | None:
        with self._t.lock:
            call_id = self._t.call_keys.get((pbx, linkedid))
            return None if call_id is None else self._render(self._t.calls[call_id])

    def patch_call(
        self,
        call_id: int,
        *,
        notes: str | None = UNSET,
        category: str | None = UNSET,
        disposition: str | None = UNSET,
        by_operator: int | None = None,
    ) -> dict[str, Any]:
        changes = checked_annotation(notes, category, disposition)
        with self._t.lock:
            row = self._t.calls.get(call_id)
            if row is None:
                raise CallNotFound(call_id)
            if changes:
                self._t.check("operators", by_operator)
                now = self._now()
                history = self._t.note_changes.setdefault(call_id, [])
                for name, value in changes.items():
                    if row[name] != value:
                        history.append(
                            {"at": now, "operator_id": by_operator, "field": name,
                             "old": row[name], "new": value}
                        )  # fmt: skip
                row.update(changes, annotated_at=now, annotated_by_operator_id=by_operator)
        return self.get_call(call_id)

    def _involves(self, row: Row, operator_id: int) -> bool:
        if row["answered_by_operator_id"] == operator_id:
            return True
        return any(
            child["operator_id"] == operator_id
            for name in ("rings", "segments")
            for child in getattr(self._t, name).get(row["id"], ())
        )

    def _visible(self, row: Row, viewer: CallViewer) -> bool:
        """As the SQL store's ``_visible``."""
        if not viewer.own and row["ended_at"] is not None:
            return True
        if self._involves(row, viewer.operator_id):
            return True
        devices = viewer.devices
        if row["answered_by_operator_id"] is None and row["answered_by_device"] in devices:
            return True
        return any(
            child["operator_id"] is None and child["device"] in devices
            for name in ("rings", "segments")
            for child in getattr(self._t, name).get(row["id"], ())
        )

    def _render(self, row: Row) -> dict[str, Any]:
        children = {
            n: [SimpleNamespace(**c) for c in self._children(row["id"], n)] for n in _CHILDREN
        }
        view = SimpleNamespace(**row, **children)
        names = {i: o["username"] for i, o in self._t.operators.items()}
        return call_dict(cast(CallRecord, view), names)
