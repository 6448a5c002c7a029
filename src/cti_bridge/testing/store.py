"""Test helpers for the store: scratch databases, a hand-moved clock, call snapshots.

The pytest fixtures built on these live in ``cti_bridge.testing.store_fixtures``.

PostgreSQL is shared with other test sessions, so every session creates its own
uniquely named database (``cti_store_<pid>_<random>``) and drops it at the end, also
when tests fail. The server comes from ``CTI_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: that database is only used to
create and drop the scratch ones).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Direction,
    DomainEvent,
    HungUpBy,
    OperatorRinging,
    Outcome,
    Ring,
    RingEnded,
    RingResult,
    Segment,
    Transfer,
    TransferKind,
)
from cti_bridge.store.models import Base, CallRecord, CallRing, CallSegment, CallTransfer

__all__ = [
    "CallBuilder",
    "FakeTime",
    "call_row_counts",
    "cheap_hasher",
    "empty_tables",
    "queue_call_answered",
    "scratch_postgres",
    "set_connections_allowed",
]

ADMIN_URL = os.environ.get(
    "CTI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
START = 1_795_735_383.0  # 2026-11-26 23:23:03 UTC, when the traces were recorded


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def call_row_counts(store: Any) -> dict[str, int]:
    """How many rows ``calls``, ``call_rings``, ``call_segments`` and ``call_transfers``
    hold, on a ``Store`` or on its memory twin (``MemoryStore.tables``)."""
    tables = getattr(store, "tables", None)
    if tables is not None:
        return {
            "calls": len(tables.calls),
            **{
                f"call_{name}": sum(len(rows) for rows in getattr(tables, name).values())
                for name in ("rings", "segments", "transfers")
            },
        }
    with store.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (CallRecord, CallRing, CallSegment, CallTransfer)
        }


def cheap_hasher() -> PasswordHasher:
    """argon2 with tiny costs: tests check behaviour, not hashing strength."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def _admin() -> Engine:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


@contextmanager
def scratch_postgres(prefix: str = "cti_store") -> Iterator[str]:
    """A new, empty PostgreSQL database for as long as the block runs."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def set_connections_allowed(url: str, allowed: bool) -> None:
    """Simulate a database outage for real: refuse new connections and end open ones."""
    name = make_url(url).database
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if allowed else "false"}'
            )
            if not allowed:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        admin.dispose()


def empty_tables(url: str) -> None:
    """Every row deleted, schema kept: much faster than a new database per test."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
    finally:
        engine.dispose()


class CallBuilder:
    """Hand-built call snapshots and their domain events, the way the call model emits
    them: each event carries the whole call as it is after that event."""

    def __init__(
        self,
        linkedid: str,
        *,
        pbx: str = "main",
        at: float = START,
        direction: Direction = Direction.INBOUND,
        number: str | None = "+3250123456",
        name: str | None = "Jan Peeters",
        withheld: bool = False,
        dialled: str | None = "3200",
        complete: bool = True,
    ) -> None:
        self._serial = 0
        self.call = Call(
            pbx=pbx,
            linkedid=linkedid,
            direction=direction,
            started_at=at,
            caller_number_raw=number,
            caller_name=name,
            caller_withheld=withheld,
            dialled=dialled,
            complete=complete,
        )
        self.events: list[DomainEvent] = [CallStarted(self.call)]

    def _update(self, **changes: Any) -> Call:
        self.call = replace(self.call, **changes)
        return self.call

    def join_queue(self, queue: str, at: float) -> CallBuilder:
        first = self.call.queue is None
        self._update(
            queue=self.call.queue or queue,
            queues=(*self.call.queues, queue),
            queue_joined_at=at if first else self.call.queue_joined_at,
        )
        return self

    def ring(self, device: str, at: float, *, queue: str | None = None) -> CallBuilder:
        self._serial += 1
        ring = Ring(
            device=device,
            channel=f"{device}-{self._serial:08x};1",
            uniqueid=f"{self.call.linkedid}-{self._serial}",
            started_at=at,
            queue=queue,
            member_name=device.rsplit("/", maxsplit=1)[-1].split("@", maxsplit=1)[0],
        )
        self._update(rings=(*self.call.rings, ring))
        self.events.append(OperatorRinging(self.call, ring))
        return self

    def _ring_of(self, device: str) -> Ring:
        return next(r for r in reversed(self.call.rings) if r.device == device)

    def ring_end(self, device: str, at: float, result: RingResult) -> CallBuilder:
        old = self._ring_of(device)
        ring = replace(old, ended_at=at, result=result)
        self._update(rings=tuple(ring if r is old else r for r in self.call.rings))
        self.events.append(RingEnded(self.call, ring))
        return self

    def answer(self, device: str, at: float) -> CallBuilder:
        """The device picks up: its ring ends answered, a talking segment starts."""
        ring = self._ring_of(device)
        segment = Segment(device=device, channel=ring.channel, started_at=at)
        first = self.call.answered_at is None
        self._update(
            segments=(*self.call.segments, segment),
            answered_at=at if first else self.call.answered_at,
            answered_by=device if first else self.call.answered_by,
        )
        self.events.append(CallAnswered(self.call, segment))
        return self.ring_end(device, at, RingResult.ANSWERED)

    def transfer(
        self, kind: TransferKind, at: float, from_device: str | None, to: str | None
    ) -> CallBuilder:
        transfer = Transfer(kind=kind, at=at, from_device=from_device, to=to)
        self._update(transfers=(*self.call.transfers, transfer))
        self.events.append(CallTransferred(self.call, transfer))
        return self

    def leave(self, device: str, at: float) -> CallBuilder:
        """The device's talking part ends (it hung up or passed the call on)."""
        self._update(
            segments=tuple(
                replace(s, ended_at=at) if s.device == device and s.ended_at is None else s
                for s in self.call.segments
            )
        )
        return self

    def end(
        self,
        at: float,
        outcome: Outcome,
        *,
        hung_up_by: HungUpBy = HungUpBy.CALLER,
        cause: int = 16,
        wait_ended_at: float | None = None,
        complete: bool | None = None,
    ) -> CallBuilder:
        for segment in self.call.segments:
            if segment.ended_at is None:
                self.leave(segment.device, at)
        rings = tuple(
            r if r.ended_at is not None else replace(r, ended_at=at, result=RingResult.CANCELLED)
            for r in self.call.rings
        )
        self._update(
            rings=rings,
            ended_at=at,
            outcome=outcome,
            hung_up_by=hung_up_by,
            hangup_cause=cause,
            hangup_cause_text="Normal Clearing" if cause == 16 else None,
            wait_ended_at=wait_ended_at,
            complete=self.call.complete if complete is None else complete,
        )
        self.events.append(CallEnded(self.call))
        return self


def queue_call_answered(linkedid: str = "1795735383.330", at: float = START) -> CallBuilder:
    """Trace 01: ringall queue, Bart (1002) and Anna (1001) ring, Anna answers after
    2 s, the caller hangs up after 12 s of talk."""
    return (
        CallBuilder(linkedid, at=at)
        .join_queue("support", at + 0.5)
        .ring("Local/1002@agents", at + 0.6, queue="support")
        .ring("Local/1001@agents", at + 0.7, queue="support")
        .answer("Local/1001@agents", at + 2.5)
        .ring_end("Local/1002@agents", at + 2.5, RingResult.CANCELLED)
        .end(at + 14.5, Outcome.ANSWERED)
    )
