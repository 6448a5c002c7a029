"""Data for the pop benchmark: a million customers, 500 operators with tokens, and the
queue call that rings them (from the recorded trace pjsip/01, one operator's leg kept).

Customers are bulk loaded (PostgreSQL: COPY; SQLite: executemany in one transaction),
not through the importer: the benchmark measures the pop, not the import. Every customer
has one number, ``+3247NNNNNNN`` (a Belgian mobile number in E.164), and every fifth
one a contract, so a pop looks up a customer, their contracts, history and agreements
in tables of realistic size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import benchlib
from argon2 import PasswordHasher
from sqlalchemy import insert

from cti_bridge.store import open_store
from cti_bridge.store.models import Contract, Customer, CustomerNumber
from cti_bridge.store.schema import upgrade

TEMPLATE = benchlib.TRACES / "pjsip" / "01-queue-answered.ami"
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def customer_number(n: int) -> str:
    return f"+3247{n:07d}"


def _customers(count: int) -> Iterator[tuple[object, ...]]:
    for n in range(1, count + 1):
        yield (n, f"Customer {n}", f"Company {n % 50_000}", "nl", "basic", "standard", NOW, NOW)


def _numbers(count: int) -> Iterator[tuple[object, ...]]:
    for n in range(1, count + 1):
        yield (n, n, customer_number(n), customer_number(n))


def _contracts(count: int) -> Iterator[tuple[object, ...]]:
    for i, n in enumerate(range(5, count + 1, 5), start=1):
        yield (i, n, '["phone", "repair"]', 8, date(2026, 1, 1), date(2027, 1, 1 + n % 28))


CUSTOMER_COLUMNS = (
    "id",
    "name",
    "company",
    "language",
    "knowledge_level",
    "tier",
    "created_at",
    "updated_at",
)
NUMBER_COLUMNS = ("id", "customer_id", "number", "raw")
CONTRACT_COLUMNS = (
    "id",
    "customer_id",
    "covered",
    "service_level_hours",
    "valid_from",
    "valid_until",
)


def load_customers(url: str, count: int) -> None:
    """``count`` customers with a number each, every fifth with a contract."""
    upgrade(url)
    store = open_store(url)
    try:
        if url.startswith("postgresql"):
            _copy(store.engine, count)
        else:
            _executemany(store.engine, count)
    finally:
        store.close()


def _executemany(engine: object, count: int) -> None:
    tables = [
        (Customer.__table__, CUSTOMER_COLUMNS, _customers),
        (CustomerNumber.__table__, NUMBER_COLUMNS, _numbers),
        (Contract.__table__, CONTRACT_COLUMNS, _contracts),
    ]
    covered = {"covered": ["phone", "repair"]}
    with engine.begin() as connection:  # type: ignore[attr-defined]
        for table, columns, rows in tables:
            extra = covered if table is Contract.__table__ else {}
            items = ({**dict(zip(columns, row, strict=True)), **extra} for row in rows(count))
            insert_batches(connection, table, items, 50_000)


def insert_batches(connection: Any, table: Any, rows: Iterable[dict[str, Any]], size: int) -> None:
    """``rows`` into ``table``, ``size`` at a time (``executemany``)."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            connection.execute(insert(table), batch)
            batch = []
    if batch:
        connection.execute(insert(table), batch)


def _copy(engine: object, count: int) -> None:
    raw = engine.raw_connection()  # type: ignore[attr-defined]
    try:
        cursor = raw.cursor()
        for table, columns, rows in (
            ("customers", CUSTOMER_COLUMNS, _customers),
            ("customer_numbers", NUMBER_COLUMNS, _numbers),
            ("contracts", CONTRACT_COLUMNS, _contracts),
        ):
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows(count):
                    copy.write_row(row)
            cursor.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def settle(url: str) -> str:
    """Write the bulk load out of the database's log before measuring: a checkpoint
    (PostgreSQL) or a truncating WAL checkpoint (SQLite). Otherwise the checkpoint that
    the load's log starts (530 MB of WAL for a million customers) runs during the
    measurement, and commits stall behind its writes - a state of the server that a
    site whose customers were imported long ago is not in. On PostgreSQL a VACUUM comes
    first, for the same reason: the autovacuum of a million fresh rows (and the hint bits
    the first reads of them would write) belong to the import, not to the calls.
    Returns what was done."""
    store = open_store(url)
    try:
        with store.engine.connect() as connection:
            if url.startswith("postgresql"):
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql("VACUUM (ANALYZE)")
                connection.exec_driver_sql("CHECKPOINT")
                return "VACUUM (ANALYZE), CHECKPOINT"
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return "PRAGMA wal_checkpoint(TRUNCATE)"
    finally:
        store.close()


def add_operators(url: str, count: int) -> dict[str, tuple[str, str]]:
    """``count`` operators, one device each; returns username -> (device, token)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    store = open_store(url, accounts={"hasher": cheap})
    out = {}
    try:
        for k in range(1, count + 1):
            username = f"op{k:04d}"
            device = f"PJSIP/{username}"
            info = store.accounts.add_operator(
                username, role="operator", password="bench-password-1", devices=[device]
            )
            out[username] = (device, store.accounts.create_token(info.id, lifetime=86_400))
    finally:
        store.close()
    return out


@dataclass(frozen=True)
class CallScript:
    """One queue call: what to write when it rings, when it is answered, when it ends."""

    linkedid: str
    device: str
    ring: bytes
    answer: bytes
    end: bytes


class CallTemplate:
    """pjsip/01 with Bart's leg taken out: the customer waits in the queue, one operator
    rings, answers, the customer hangs up. Ids, channel names, the operator and the
    caller are replaced for every call."""

    def __init__(self) -> None:
        _, body = benchlib.split_banner(TEMPLATE.read_bytes())
        blocks = [b for b in body.split(b"\r\n\r\n") if b.startswith(b"Event: ")]
        blocks = [b for b in blocks if b"PJSIP/1002-0000001c" not in b]
        blocks = [b for b in blocks if b"Event: FullyBooted" not in b]
        blocks = [b for b in blocks if b"Event: SuccessfulAuth" not in b]
        ring_at = next(i for i, b in enumerate(blocks) if b.startswith(b"Event: DialBegin\r\n"))
        answer_at = next(
            i for i, b in enumerate(blocks) if b.startswith(b"Event: AgentConnect\r\n")
        )
        hangup_at = next(
            i for i, b in enumerate(blocks) if b.startswith(b"Event: HangupRequest\r\n")
        )
        text_ = [b + b"\r\n\r\n" for b in blocks]
        self.ring = b"".join(text_[: ring_at + 1])
        self.answer = b"".join(text_[ring_at + 1 : hangup_at])
        self.end = b"".join(text_[hangup_at:])
        assert answer_at < hangup_at
        self._subs = re.compile(
            rb"1795737567\.27|1795737568\.29|PJSIP/pstn-0000001b|PJSIP/1001-0000001d"
            rb"|PJSIP/1001|050123456|Jan Peeters"
        )

    def call(self, n: int, operator: int, number: str, name: str) -> CallScript:
        linkedid = f"19{n:08d}.1"
        device = f"PJSIP/op{operator:04d}"
        values = {
            b"1795737567.27": linkedid.encode(),
            b"1795737568.29": f"19{n:08d}.2".encode(),
            b"PJSIP/pstn-0000001b": f"PJSIP/pstn-{n:08x}".encode(),
            b"PJSIP/1001-0000001d": f"{device}-{n:08x}".encode(),
            b"PJSIP/1001": device.encode(),
            b"050123456": number.encode(),
            b"Jan Peeters": name.encode(),
        }

        def sub(data: bytes) -> bytes:
            return self._subs.sub(lambda m: values[m.group(0)], data)

        return CallScript(linkedid, device, sub(self.ring), sub(self.answer), sub(self.end))
