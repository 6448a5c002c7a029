"""What only a database can show of the dialer's claims (SQLite and PostgreSQL): two
stores (two daemons) claiming the same due callbacks at once, a row another node holds
skipped rather than waited for, the partial unique index refusing a second open attempt
whatever the rows say, and the scheduling pass reading its index."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text, update

from cti_bridge.store import Store, open_store
from cti_bridge.store.agreements import NEXT_ATTEMPT_INDEX, callback_calls_query, due_query
from cti_bridge.store.models import Agreement, AgreementAttempt, CallRecord
from cti_bridge.testing.store import START, cheap_hasher
from tests.support.agreements import claim

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

NOW = datetime.fromtimestamp(START, UTC)
#: Never hang a test on a lock: a claim that waits this long has failed anyway.
HANG_GUARD = 30.0


@pytest.fixture
def other_store(store_url: str) -> Iterator[Store]:
    """A second daemon's store: its own engine and connections, the same database."""
    other = open_store(store_url, accounts={"hasher": cheap_hasher()})
    try:
        yield other
    finally:
        other.close()


def attempt_rows(store: Store, agreement_id: int) -> int:
    with store.sessions() as session:
        found = session.scalar(
            select(func.count()).where(AgreementAttempt.agreement_id == agreement_id)
        )
        return int(found or 0)


def test_two_daemons_claiming_the_same_due_callbacks_claim_each_once(
    store: Store, other_store: Store
) -> None:
    due = [
        store.agreements.add_agreement("callback", callback_number="050123456", due_at=NOW)
        for _ in range(12)
    ]
    won: dict[int, list[str]] = {agreement: [] for agreement in due}
    barrier = threading.Barrier(4)

    def node(name: str, book: Any) -> None:
        for agreement in due:
            barrier.wait(timeout=HANG_GUARD)  # every node tries this one at the same time
            if claim(book, agreement, 1, NOW, node=name, channel_id=f"{name}-{agreement}"):
                won[agreement].append(name)

    books = [store.agreements, other_store.agreements] * 2
    threads = [
        threading.Thread(target=node, args=(f"node-{i}", book)) for i, book in enumerate(books)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD * len(due))
        assert not thread.is_alive()
    assert all(len(names) == 1 for names in won.values()), won
    assert [attempt_rows(store, agreement) for agreement in due] == [1] * len(due)
    [opened] = [a for a in store.agreements.open_attempts() if a.agreement_id == due[0]]
    assert opened.node == won[due[0]][0]


def test_a_second_finish_from_another_daemon_changes_nothing(
    store: Store, other_store: Store
) -> None:
    agreement = store.agreements.add_agreement("callback", callback_number="050123456", due_at=NOW)
    assert claim(store.agreements, agreement, 1, NOW)
    later = NOW + timedelta(minutes=1)
    first = store.agreements.finish_attempt(agreement, 1, "busy", now=later, next_attempt_at=later)
    assert first is not None
    assert other_store.agreements.finish_attempt(agreement, 1, "unknown", now=later) is None
    assert store.agreements.get_agreement(agreement) == first


@pytest.mark.parametrize("store_db", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
def test_a_row_another_node_is_claiming_is_skipped_not_waited_for(
    store: Store, other_store: Store
) -> None:
    agreement = store.agreements.add_agreement("callback", callback_number="050123456", due_at=NOW)
    answers: list[bool] = []
    with store.sessions() as holder:  # another node, in the middle of its claim
        holder.execute(select(Agreement).where(Agreement.id == agreement).with_for_update())
        thread = threading.Thread(
            target=lambda: answers.append(claim(other_store.agreements, agreement, 1, NOW))
        )
        thread.start()
        thread.join(timeout=HANG_GUARD)
        assert not thread.is_alive(), "the claim waited for the lock instead of skipping"
        holder.rollback()
    assert answers == [False]
    assert attempt_rows(store, agreement) == 0
    assert claim(other_store.agreements, agreement, 1, NOW)  # free again: claimed


def test_the_database_refuses_a_second_open_attempt_whatever_the_row_says(store: Store) -> None:
    book = store.agreements
    agreement = book.add_agreement("callback", callback_number="050123456", due_at=NOW)
    assert claim(book, agreement, 1, NOW)
    with store.sessions() as session:  # a row made wrong behind the book's back
        session.execute(
            update(Agreement)
            .where(Agreement.id == agreement)
            .values(status="open", next_attempt_at=NOW)
        )
        session.commit()
    assert not claim(book, agreement, 2, NOW)  # the partial unique index said no
    assert attempt_rows(store, agreement) == 1
    found = book.get_agreement(agreement)
    assert found is not None and found["status"] == "open"  # the refused claim wrote nothing
    assert [e["kind"] for e in found["history"]] == ["created", "attempt_started"]


def test_the_scheduling_pass_reads_the_next_attempt_index(store: Store) -> None:
    rows = [
        {
            "kind": "callback" if n % 2 else "repair",
            "status": "open",
            "callback_number": "+3250123456",
            "created_at": NOW,
            "updated_at": NOW,
            "flagged": False,
            "origin": "operator",
            "deadline": NOW + timedelta(hours=n % 48),
            "next_attempt_at": NOW + timedelta(minutes=n) if n % 2 else None,
        }
        for n in range(2000)
    ]
    with store.sessions() as session:
        session.execute(insert(Agreement), rows)
        session.commit()
    query = due_query(NOW + timedelta(minutes=5), 100)
    compiled = query.compile(store.engine)
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            params: Any = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params)
            lines = [str(row[-1]) for row in plan]
            assert any(f"USING INDEX {NEXT_ATTEMPT_INDEX}" in line for line in lines), lines
        else:
            connection.execute(text("ANALYZE agreements"))
            # Told that a sequential scan costs the earth, the planner names the index it
            # has for this query: none other than next_attempt_at's fits it.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = connection.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params)
            lines = [str(row[0]) for row in plan]
            assert any(NEXT_ATTEMPT_INDEX in line for line in lines), lines
        assert not any("ix_agreements_status_deadline" in line for line in lines), lines
    due = store.agreements.due_callbacks(NOW + timedelta(minutes=5))
    assert [d.next_attempt_at for d in due] == [NOW + timedelta(minutes=n) for n in (1, 3, 5)]


def test_an_attempts_callback_call_is_read_by_the_calls_unique_index(store: Store) -> None:
    """(pbx, linkedid) pairs: the calls' unique index, never a scan of every record."""
    rows = [
        {
            "pbx": "main",
            "linkedid": f"{1700000000 + n}.{n}",
            "direction": "inbound",
            "caller_withheld": False,
            "queues": [],
            "started_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
            "complete": True,
        }
        for n in range(2000)
    ]
    with store.sessions() as session:
        session.execute(insert(CallRecord), rows)
        session.commit()
    keys = {
        ("main", "1700000007.7"),
        ("main", "cti-callback-0123456789abcdef"),  # not stored (yet)
        ("backup", "1700000008.8"),  # that linkedid, but on another PBX: not this call
    }
    query = callback_calls_query(keys)
    literal = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + literal)
            lines = [str(row[-1]) for row in plan]
            assert any("SEARCH calls USING" in line for line in lines), lines
            assert not any(line.startswith("SCAN calls") for line in lines), lines
        else:
            connection.execute(text("ANALYZE calls"))
            connection.execute(text("SET LOCAL enable_seqscan = off"))  # name the index
            plan = connection.exec_driver_sql("EXPLAIN " + literal)
            lines = [str(row[0]) for row in plan]
            assert any("uq_calls_pbx_linkedid" in line for line in lines), lines
        found = connection.execute(query).all()
    assert [(r.pbx, r.linkedid) for r in found] == [("main", "1700000007.7")]
