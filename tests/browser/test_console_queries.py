"""The console's customer search on both databases (SQLite and PostgreSQL).

It lives with the console's tests although it needs no browser: the search is the
console's (``store/search.py``), and PostgreSQL's LIKE and lower() must answer like
SQLite's.
"""

from __future__ import annotations

from cti_bridge.console.customers import console_customer_context, console_search_customers
from cti_bridge.store import Store
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# The contract of the console's search port (console/ports.py): the memory twin too.
pytestmark = every_backend


def names(store: Store, text: str) -> list[str]:
    return [c["name"] for c in console_search_customers(store, text)]


def test_search_by_name_company_reference_and_number(store: Store) -> None:
    customers = store.customers
    customers.add_customer(
        "Jan Peeters", numbers=["050 12 34 56"], company="Peeters & Zonen", external_ref="C-1"
    )
    customers.add_customer("Anna 100% Janssens", numbers=["+32 470 11 22 33"], external_ref="C-2")
    customers.add_customer("Piet_Claes", company="Claes Bouw", numbers=["09 230 00 51"])
    assert names(store, "peeters") == ["Jan Peeters"]
    assert names(store, "ZONEN") == ["Jan Peeters"]
    assert names(store, "c-2") == ["Anna 100% Janssens"]
    assert names(store, "jan") == ["Anna 100% Janssens", "Jan Peeters"]  # by name, sorted
    # Numbers: as dialled nationally, internationally, or a fragment of the digits.
    assert names(store, "050 12 34 56") == ["Jan Peeters"]
    assert names(store, "+32 50 12 34 56") == ["Jan Peeters"]
    assert names(store, "0032470112233") == ["Anna 100% Janssens"]
    assert names(store, "112233") == ["Anna 100% Janssens"]
    # LIKE's wildcards are plain characters: "%" and "_" match themselves only.
    assert names(store, "100%") == ["Anna 100% Janssens"]
    assert names(store, "%%") == []
    assert names(store, "t_c") == ["Piet_Claes"]
    assert names(store, "__") == []
    assert names(store, "\\") == []
    assert names(store, "'; DROP TABLE customers; --") == []
    assert len(names(store, "a")) == 3  # the API asks for 2 characters; the query copes


def test_search_answers_numbers_and_respects_the_limit(store: Store) -> None:
    for index in range(5):
        store.customers.add_customer(f"Klant {index}", numbers=[f"+3250{index}00000"])
    found = console_search_customers(store, "klant", limit=3)
    assert [c["name"] for c in found] == ["Klant 0", "Klant 1", "Klant 2"]
    assert found[0]["numbers"] == ["+3250000000"]


def test_customer_view_is_the_pop_context(store: Store) -> None:
    customer = store.customers.add_customer("Jan Peeters", numbers=["050 12 34 56"])
    context = console_customer_context(store, customer)
    assert context is not None
    assert context["customer"]["name"] == "Jan Peeters"
    assert context["customer"]["numbers"] == ["+3250123456"]
    assert context["contracts"] == [] and context["in_contract"] is False
    assert console_customer_context(store, customer + 1000) is None
