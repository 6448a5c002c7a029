"""Customers, products, contracts, versioned scripts, agreements and their attempts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from cti_bridge.store import InvalidRecord, Store

pytest_plugins = ["cti_bridge.testing.store_fixtures"]


def test_customer_and_numbers(store: Store) -> None:
    customer = store.customers.add_customer(
        "Jan Peeters",
        company="Bakkerij Peeters bv",
        language="nl",
        knowledge_level="novice",
        tier="gold",
        timezone="Europe/Brussels",
        numbers=["050 12 34 56", "+32 470 12 34 56"],
        external_ref="CRM-0042",
    )
    found = store.customers.customer_for_number("0032470123456")
    assert found == {
        "id": customer,
        "external_ref": "CRM-0042",
        "name": "Jan Peeters",
        "company": "Bakkerij Peeters bv",
        "language": "nl",
        "knowledge_level": "novice",
        "tier": "gold",
        "timezone": "Europe/Brussels",
        "numbers": ["+3250123456", "+32470123456"],
    }
    assert store.customers.customer_for_number("0470000000") is None
    assert store.customers.customer_for_number("anonymous") is None


def test_a_number_belongs_to_one_customer(store: Store) -> None:
    store.customers.add_customer("Jan", numbers=["050123456"])
    with pytest.raises(IntegrityError):
        store.customers.add_customer("Piet", numbers=["+3250123456"])
    with pytest.raises(InvalidRecord):
        store.customers.add_customer("Piet", numbers=["not a number"])


def test_products_and_contracts(store: Store) -> None:
    customer = store.customers.add_customer("Jan", numbers=["050123456"])
    printer = store.customers.add_product("LJ-4000", "LaserJet 4000")
    router = store.customers.add_product("RT-1", "Router")
    store.customers.give_product(customer, printer, serial="SN123")
    store.customers.give_product(customer, router)
    assert [p["code"] for p in store.customers.products_of(customer)] == ["LJ-4000", "RT-1"]
    contract = store.customers.add_contract(
        customer,
        product_id=printer,
        covered=["phone", "technician", "repair"],
        service_level_hours=8,
        valid_from=date(2026, 1, 1),
        valid_until=date(2026, 12, 31),
        reference="C-2026-001",
    )
    assert store.customers.contracts_of(customer) == [
        {
            "id": contract,
            "reference": "C-2026-001",
            "product_id": printer,
            "covered": ["phone", "technician", "repair"],
            "service_level_hours": 8,
            "valid_from": "2026-01-01",
            "valid_until": "2026-12-31",
        }
    ]
    with pytest.raises(InvalidRecord):
        store.customers.add_contract(
            customer, covered=[], valid_from=date(2026, 2, 1), valid_until=date(2026, 1, 1)
        )


def test_scripts_are_versioned_and_old_versions_stay_readable(store: Store) -> None:
    printer = store.customers.add_product("LJ-4000", "LaserJet 4000")
    assert store.customers.add_script_version(printer, "paper-jam", title="Jam", body="v1") == 1
    assert store.customers.add_script_version(printer, "paper-jam", title="Jam", body="v2") == 2
    assert store.customers.add_script_version(printer, "no-power", title="Power", body="p1") == 1
    latest = store.customers.get_script(printer, "paper-jam")
    assert latest is not None and (latest["version"], latest["body"]) == (2, "v2")
    first = store.customers.get_script(printer, "paper-jam", version=1)
    assert first is not None and first["body"] == "v1"
    assert store.customers.get_script(printer, "paper-jam", version=3) is None


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
