"""The contract of the agi room's port (``cti_bridge.agi.ports.CallerDirectory``): the
SQL side (``store/callers.py``) and the memory twin (``store/memory/callers.py``) give
the same caller for a number, on the memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from cti_bridge.store import Store
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

DAY = date(2026, 11, 27)


@every_backend
def test_a_number_gives_its_customer_and_every_contract_period(store: Store) -> None:
    customers = store.customers
    jan = customers.add_customer(
        "Jan Peeters", numbers=["050123456", "0470123456"], language="nl", tier="Premium"
    )
    customers.add_contract(jan, valid_from=DAY, covered=["phone"])
    customers.add_contract(
        jan, valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31), covered=["phone"]
    )
    other = customers.add_customer("Marie Dubois", numbers=["050765432"])
    customers.add_contract(other, valid_from=date(2024, 1, 1), covered=["phone"])

    for number in ("+3250123456", "+32470123456"):
        caller = store.callers.caller(number)
        assert caller is not None
        assert (caller.customer_id, caller.name, caller.language, caller.tier) == (
            jan,
            "Jan Peeters",
            "nl",
            "Premium",
        )
        assert sorted(caller.contracts) == [
            (date(2025, 1, 1), date(2025, 12, 31)),
            (DAY, None),
        ]


@every_backend
def test_a_customer_without_contracts_or_details(store: Store) -> None:
    luc = store.customers.add_customer("Luc Claes", numbers=["050111222"])
    caller = store.callers.caller("+3250111222")
    assert caller is not None
    assert (caller.customer_id, caller.name, caller.language, caller.tier) == (
        luc,
        "Luc Claes",
        None,
        None,
    )
    assert list(caller.contracts) == []


@every_backend
def test_an_unknown_number_is_nobody(store: Store) -> None:
    store.customers.add_customer("Jan Peeters", numbers=["050123456"])
    assert store.callers.caller("+3292345678") is None
    assert store.callers.caller("050123456") is None  # the port takes E.164 only
