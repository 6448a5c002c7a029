"""Missed calls in the promise book (store/missed.py; port: missed/ports.MissedCallBook):
one open callback per number, joined by the next abandons, closed by an answered call,
and idempotent for one call. Contracts: the memory twin answers as SQLite and
PostgreSQL do."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cti_bridge.calls.events import Outcome
from cti_bridge.store import Store
from cti_bridge.testing.store import START, CallBuilder
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
pytestmark = every_backend

MARIE = "+3250123456"
LUC = "+32470123456"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday morning
DEADLINE = T0 + timedelta(hours=4)


def missed(
    store: Store, linkedid: str, number: str = MARIE, at: datetime = T0, **kw: Any
) -> tuple[str, int]:
    return store.missed.record_missed_call(
        "main",
        linkedid,
        number,
        queue=kw.get("queue", "support"),
        at=at,
        deadline=kw.get("deadline", DEADLINE),
        customer_id=kw.get("customer_id"),
    )


def agreement(store: Store, agreement_id: int) -> dict[str, Any]:
    found = store.agreements.get_agreement(agreement_id)
    assert found is not None
    return found


def history(store: Store, agreement_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e["kind"], e["at"], e["details"]) for e in agreement(store, agreement_id)["history"]]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_missed_call_makes_a_callback_for_its_number(store: Store) -> None:
    marie = store.customers.add_customer("Marie Dubois", numbers=["050 12 34 56"])
    done, first = missed(store, "a.1", customer_id=marie)
    assert done == "created"
    done, second = missed(store, "a.2", LUC)  # another number: its own
    assert (done, second != first) == ("created", True)
    found = agreement(store, first)
    assert found["kind"] == "callback"
    assert found["status"] == "open"
    assert found["origin"] == "missed_call"
    assert found["queue"] == "support"
    assert found["customer_id"] == marie
    assert found["owner_operator_id"] is None
    assert found["callback_number"] == MARIE
    assert found["due_at"] == found["next_attempt_at"] == iso(T0)
    assert found["deadline"] == iso(DEADLINE)
    assert found["call_id"] is None  # the record writer had not written the call yet
    assert history(store, first) == [
        (
            "created",
            iso(T0),
            {
                "kind": "callback",
                "origin": "missed_call",
                "pbx": "main",
                "linkedid": "a.1",
                "call_id": None,
                "queue": "support",
            },
        )
    ]
    assert agreement(store, second)["customer_id"] is None  # nobody owns that number
    assert [a["id"] for a in store.agreements.open_agreements(number="050123456")] == [first]


def test_the_next_abandon_of_a_number_joins_its_open_callback(store: Store) -> None:
    done, first = missed(store, "a.1")
    later = T0 + timedelta(minutes=20)
    assert missed(store, "a.2", at=later, queue="sales") == ("joined", first)
    assert missed(store, "a.3", at=later + timedelta(minutes=5)) == ("joined", first)
    assert done == "created"
    assert [(kind, details["linkedid"]) for kind, _, details in history(store, first)] == [
        ("created", "a.1"),
        ("missed_call", "a.2"),
        ("missed_call", "a.3"),
    ]
    found = agreement(store, first)
    assert (found["queue"], found["due_at"], found["deadline"]) == (
        "support",  # the first call's: a join changes no plan
        iso(T0),
        iso(DEADLINE),
    )
    assert len(store.agreements.open_agreements(number=MARIE)) == 1


def test_the_same_missed_call_twice_changes_nothing(store: Store) -> None:
    _, first = missed(store, "a.1")
    missed(store, "a.2", at=T0 + timedelta(minutes=1))
    before = agreement(store, first)
    assert missed(store, "a.1") == ("unchanged", first)
    assert missed(store, "a.2", at=T0 + timedelta(minutes=1)) == ("unchanged", first)
    assert agreement(store, first) == before


def test_an_answered_call_keeps_the_promise(store: Store) -> None:
    _, kept = missed(store, "a.1")
    _, other = missed(store, "a.2", LUC)
    answered = T0 + timedelta(hours=1)
    assert store.missed.resolve_by_call("main", "c.1", MARIE, answered) == [kept]
    found = agreement(store, kept)
    assert found["status"] == "done"
    assert found["disposition"] == "solved_on_inbound_call"
    assert found["closed_at"] == iso(answered)
    assert found["next_attempt_at"] is None  # nothing left to dial
    kind, at, details = history(store, kept)[-1]
    assert (kind, at) == ("resolved_by_call", iso(answered))
    assert details["pbx"] == "main" and details["linkedid"] == "c.1"
    assert agreement(store, other)["status"] == "open"  # another number
    assert store.agreements.open_agreements(number=MARIE) == []


def test_a_replayed_answered_call_closes_nothing_new(store: Store) -> None:
    _, first = missed(store, "a.1")
    answered = T0 + timedelta(hours=1)
    assert store.missed.resolve_by_call("main", "c.1", MARIE, answered) == [first]
    # Marie gives up again later: a new promise, not the kept one reopened.
    done, second = missed(store, "a.2", at=answered + timedelta(hours=1))
    assert done == "created" and second != first
    # The answered call and the first abandon come again (replay, resync): nothing moves.
    assert store.missed.resolve_by_call("main", "c.1", MARIE, answered) == []
    assert missed(store, "a.1") == ("unchanged", first)
    assert agreement(store, second)["status"] == "open"
    assert len(history(store, first)) == 2


def test_only_missed_call_agreements_are_joined_and_closed(store: Store) -> None:
    promised = store.agreements.add_agreement(
        "callback", callback_number=MARIE, deadline=DEADLINE, notes="made by Anna"
    )
    done, made = missed(store, "a.1")
    assert done == "created" and made != promised
    assert store.missed.resolve_by_call("main", "c.1", MARIE, T0 + timedelta(hours=1)) == [made]
    assert agreement(store, promised)["status"] == "open"  # the operator's promise stays


def test_the_call_record_is_named_when_it_is_written(store: Store) -> None:
    abandoned = (
        CallBuilder("1795735401.336", number="050123456")
        .join_queue("support", START + 1)
        .end(START + 60, Outcome.ABANDONED, wait_ended_at=START + 60)
    )
    answered = (
        CallBuilder("1795735999.400", at=START + 600, number="050123456")
        .join_queue("support", START + 601)
        .ring("Local/1001@agents", START + 602, queue="support")
        .answer("Local/1001@agents", START + 605)
        .end(START + 700, Outcome.ANSWERED)
    )
    store.calls.apply(abandoned.events + answered.events)
    calls = {c["linkedid"]: c["id"] for c in store.queries.list_calls()}
    _, made = missed(store, "1795735401.336")
    assert agreement(store, made)["call_id"] == calls["1795735401.336"]
    assert history(store, made)[0][2]["call_id"] == calls["1795735401.336"]
    store.missed.resolve_by_call("main", "1795735999.400", MARIE, T0 + timedelta(hours=1))
    assert history(store, made)[-1][2]["call_id"] == calls["1795735999.400"]


@pytest.mark.parametrize("customer_known_later", [False, True])
def test_a_join_names_the_customer_found_since(store: Store, customer_known_later: bool) -> None:
    _, made = missed(store, "a.1")
    customer = store.customers.add_customer("Marie", numbers=[MARIE])
    missed(store, "a.2", customer_id=customer if customer_known_later else None)
    expected = customer if customer_known_later else None
    assert agreement(store, made)["customer_id"] == expected


def test_two_nodes_recording_one_call_at_once_make_one_callback(store: Store) -> None:
    """Both nodes see the PBX's call; the work on a number is serialised in the database
    (PostgreSQL: an advisory lock; SQLite: the write lock), so exactly one creates."""
    numbers = [f"+32470{n:06d}" for n in range(12)]
    barrier = threading.Barrier(2)
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def node() -> None:
        try:
            for number in numbers:
                barrier.wait(timeout=10)
                results.append(missed(store, f"call-{number}", number))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=node) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(done for done, _ in results) == ["created"] * 12 + ["unchanged"] * 12
    for number in numbers:
        (made,) = store.agreements.open_agreements(number=number)
        assert made["kind"] == "callback"
