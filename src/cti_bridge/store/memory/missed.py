"""The memory twin of ``MissedCalls`` (``store/missed.py``): missed calls in the promise
book. One lock around each operation does what the database's locks do there."""

from __future__ import annotations

from datetime import UTC, datetime

from ..agreement_rules import MAX_QUEUE, PENDING
from ..merge import clean_text
from ..missed import JOINING, MISSED_CALL, SOLVED, Recorded, created, is_call
from .agreements import add_event
from .customers import Service
from .tables import Row

__all__ = ["MemoryMissedCalls"]


class MemoryMissedCalls(Service):
    def record_missed_call(
        self,
        pbx: str,
        linkedid: str,
        number: str,
        *,
        queue: str,
        at: datetime,
        deadline: datetime,
        customer_id: int | None,
    ) -> tuple[Recorded, int]:
        at, deadline, queue = _utc(at), _utc(deadline), clean_text(queue, MAX_QUEUE) or ""
        now = self._now()
        t = self._t
        with t.lock:
            mine = self._missed_call_agreements(number)
            for row in mine:
                for event in t.events.get(row["id"], ()):
                    if event["kind"] in JOINING and is_call(event["details"], pbx, linkedid):
                        return "unchanged", row["id"]
            t.check("customers", customer_id)
            call_id = t.call_keys.get((pbx, linkedid))
            facts = {"pbx": pbx, "linkedid": linkedid, "call_id": call_id}
            pending = [row for row in mine if row["status"] in PENDING]
            if pending:
                joined = pending[0]
                add_event(t, joined["id"], "missed_call", at, details=facts)
                if joined["customer_id"] is None:
                    joined["customer_id"] = customer_id
                joined["updated_at"] = now
                return "joined", joined["id"]
            agreement_id = t.next_id("agreements")
            t.agreements[agreement_id] = {
                "id": agreement_id,
                "kind": "callback",
                "status": "open",
                "customer_id": customer_id,
                "call_id": call_id,
                "owner_operator_id": None,
                "deadline": deadline,
                "callback_number": number,
                "window_start": None,
                "window_end": None,
                "notes": None,
                "created_at": now,
                "updated_at": now,
                "created_by_operator_id": None,
                "queue": queue,
                "flagged": False,
                "disposition": None,
                "closed_at": None,
                "origin": MISSED_CALL,
                "due_at": at,
                "next_attempt_at": at,
            }
            t.attempts[agreement_id] = []
            add_event(t, agreement_id, "created", at, details=created(facts, queue))
            return "created", agreement_id

    def resolve_by_call(self, pbx: str, linkedid: str, number: str, at: datetime) -> list[int]:
        at = _utc(at)
        now = self._now()
        t = self._t
        with t.lock:
            rows = [
                row
                for row in self._missed_call_agreements(number)
                if row["status"] in PENDING and row["due_at"] is not None and row["due_at"] <= at
            ]
            facts = {
                "pbx": pbx,
                "linkedid": linkedid,
                "call_id": t.call_keys.get((pbx, linkedid)),
                "status": "done",
                "disposition": SOLVED,
            }
            for row in rows:
                row.update(
                    status="done",
                    disposition=SOLVED,
                    closed_at=at,
                    next_attempt_at=None,
                    updated_at=now,
                )
                add_event(t, row["id"], "resolved_by_call", at, details=facts)
            return [row["id"] for row in rows]

    def _missed_call_agreements(self, number: str) -> list[Row]:
        """The number's missed-call agreements, oldest first (hold the lock)."""
        return sorted(
            (
                row
                for row in self._t.agreements.values()
                if row["callback_number"] == number and row.get("origin") == MISSED_CALL
            ),
            key=lambda row: row["id"],
        )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware (UTC) datetime")
    return moment.astimezone(UTC)
