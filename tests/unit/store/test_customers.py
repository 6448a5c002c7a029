"""Customers, products, contracts and versioned scripts."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend


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
