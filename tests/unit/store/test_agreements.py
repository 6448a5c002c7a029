"""The agreement book (store/agreements.py; port: console/ports.AgreementBook): agreements,
their attempts (never two open at once), the open ones of a customer or a number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend


def test_agreements_and_attempts(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    customer = store.customers.add_customer("Jan", numbers=["050123456"])
    deadline = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    window = (deadline - timedelta(hours=8), deadline)
    agreement = store.agreements.add_agreement(
        "callback",
        customer_id=customer,
        owner_operator_id=anna,
        deadline=deadline,
        callback_number="050 12 34 56",
        window=window,
        notes="call back about the paper jam",
        by_operator=anna,
    )
    assert store.agreements.start_attempt(agreement, operator_id=anna, node="node-1") == 1
    # Never two attempts for one agreement at once: the database itself refuses.
    with pytest.raises(IntegrityError):
        store.agreements.start_attempt(agreement, operator_id=anna, node="node-2")
    store.agreements.end_attempt(agreement, 1, "busy")
    assert store.agreements.start_attempt(agreement, operator_id=anna, node="node-2") == 2
    store.agreements.end_attempt(agreement, 2, "answered")
    store.agreements.set_agreement_status(agreement, "done")
    found = store.agreements.get_agreement(agreement)
    assert found is not None
    assert found["status"] == "done"
    assert found["callback_number"] == "+3250123456"
    assert found["deadline"] == "2026-11-28T17:00:00.000Z"
    assert found["window_start"] == "2026-11-28T09:00:00.000Z"
    assert [(a["number"], a["node"], a["outcome"]) for a in found["attempts"]] == [
        (1, "node-1", "busy"),
        (2, "node-2", "answered"),
    ]
    with pytest.raises(InvalidRecord):
        store.agreements.end_attempt(agreement, 2, "answered")  # already ended


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "pizza"},
        {"kind": "callback", "callback_number": "call me maybe"},
        {
            "kind": "callback",
            "window": (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        },
    ],
)
def test_agreements_are_validated(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        store.agreements.add_agreement(**bad)  # type: ignore[arg-type]


def test_open_agreements_of_a_customer_or_a_number(store: Store) -> None:
    jan = store.customers.add_customer("Jan", numbers=["050123456"])
    piet = store.customers.add_customer("Piet", numbers=["050654321"])
    soon = datetime(2026, 11, 28, 9, tzinfo=UTC)
    later = store.agreements.add_agreement(
        "callback", customer_id=jan, deadline=soon + timedelta(days=1)
    )
    undated = store.agreements.add_agreement("repair", customer_id=jan)
    first = store.agreements.add_agreement("technician", customer_id=jan, deadline=soon)
    done = store.agreements.add_agreement("callback", customer_id=jan, deadline=soon)
    store.agreements.set_agreement_status(done, "done")
    store.agreements.add_agreement("callback", customer_id=piet, deadline=soon)
    unknown = store.agreements.add_agreement("callback", callback_number="+32 9 234 56 78")
    opened = store.agreements.open_agreements(customer_id=jan)
    assert [a["id"] for a in opened] == [first, later, undated]  # soonest first, undated last
    assert opened[0]["attempts"] == [] and opened[0]["status"] == "open"
    assert [a["id"] for a in store.agreements.open_agreements(customer_id=jan, limit=2)] == [
        first,
        later,
    ]
    by_number = store.agreements.open_agreements(number="092345678")  # any format
    assert [a["id"] for a in by_number] == [unknown]
    assert store.agreements.open_agreements(number="not a number") == []
    assert store.agreements.open_agreements(customer_id=piet + 1000) == []
    with pytest.raises(TypeError):
        store.agreements.open_agreements()


def test_unknown_agreements_and_bad_values_are_refused(store: Store) -> None:
    agreement = store.agreements.add_agreement("callback", callback_number="050123456")
    assert store.agreements.get_agreement(agreement + 1000) is None
    with pytest.raises(InvalidRecord):
        store.agreements.set_agreement_status(agreement + 1000, "done")
    with pytest.raises(InvalidRecord):
        store.agreements.set_agreement_status(agreement, "forgotten")
    with pytest.raises(InvalidRecord):
        store.agreements.start_attempt(agreement + 1000)
    number = store.agreements.start_attempt(agreement)
    with pytest.raises(InvalidRecord):
        store.agreements.end_attempt(agreement, number, "lost in space")
    with pytest.raises(InvalidRecord):
        store.agreements.end_attempt(agreement, number + 1, "busy")
    store.agreements.end_attempt(agreement, number, "no_answer")
