"""Contacts that are not calls (store/contacts.py; port: console/ports.ContactLog): logged
for an existing customer, checked field by field, listed newest first, text kept as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError

from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store import START, FakeTime
from cti_bridge.testing.store_contract import every_backend
from cti_bridge.vocabulary import CONTACT_CHANNELS

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend

NOW = datetime.fromtimestamp(START, UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_contact_is_logged_with_its_operator_and_now(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    jan = store.customers.add_customer("Jan", numbers=["050123456"])
    contact = store.contacts.add_contact(
        jan,
        "mail",
        subject="Manual for the RTR-200",
        notes="Sent the PDF.",
        category="documentation",
        disposition="solved",
        by_operator=anna,
    )
    assert contact == {
        "id": contact["id"],
        "type": "contact",
        "customer_id": jan,
        "channel": "mail",
        "at": iso(NOW),
        "subject": "Manual for the RTR-200",
        "notes": "Sent the PDF.",
        "category": "documentation",
        "disposition": "solved",
        "operator": "anna",
        "operator_id": anna,
        "created_at": iso(NOW),
    }
    assert store.contacts.list_contacts(jan) == [contact]


def test_every_channel_and_a_given_time(store: Store, fake_time: FakeTime) -> None:
    jan = store.customers.add_customer("Jan")
    visited = NOW - timedelta(days=2, hours=3)
    for channel in CONTACT_CHANNELS:
        store.contacts.add_contact(jan, channel, at=visited)
    found = store.contacts.list_contacts(jan)
    assert sorted(c["channel"] for c in found) == sorted(CONTACT_CHANNELS)
    assert {c["at"] for c in found} == {iso(visited)}
    assert {c["created_at"] for c in found} == {iso(NOW)}
    assert {(c["operator"], c["subject"], c["disposition"]) for c in found} == {(None, None, None)}
    # A time in another zone is the same moment, kept in UTC.
    brussels = datetime(2026, 11, 20, 11, 30, tzinfo=ZoneInfo("Europe/Brussels"))
    logged = store.contacts.add_contact(jan, "visit", at=brussels)
    assert logged["at"] == "2026-11-20T10:30:00.000Z"


def test_contacts_are_listed_newest_first_then_last_logged_first(
    store: Store, fake_time: FakeTime
) -> None:
    jan = store.customers.add_customer("Jan")
    piet = store.customers.add_customer("Piet")
    same = NOW - timedelta(hours=1)
    older = store.contacts.add_contact(jan, "chat", at=NOW - timedelta(days=3))["id"]
    first_same = store.contacts.add_contact(jan, "mail", at=same)["id"]
    newest = store.contacts.add_contact(jan, "visit", at=NOW - timedelta(minutes=1))["id"]
    second_same = store.contacts.add_contact(jan, "letter", at=same)["id"]
    store.contacts.add_contact(piet, "mail")
    ids = [c["id"] for c in store.contacts.list_contacts(jan)]
    assert ids == [newest, second_same, first_same, older]
    assert [c["id"] for c in store.contacts.list_contacts(jan, limit=2)] == ids[:2]
    assert len(store.contacts.list_contacts(jan, limit=0)) == 1  # at least one
    assert store.contacts.list_contacts(piet + jan + 1000) == []  # nobody's


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "phone"}, "channel"),  # calls are calls
        ({"channel": ""}, "channel"),
        ({"disposition": "agreed"}, "disposition"),
        ({"subject": "s" * 257}, "subject"),
        ({"category": "c" * 101}, "category"),
        ({"notes": "n" * 20_001}, "notes"),
        ({"at": datetime(2026, 11, 26, 12, 0)}, "at"),  # naive: which zone?
        ({"at": NOW + timedelta(hours=1)}, "at"),
        ({"customer_id": -1}, "customer_id"),
    ],
)
def test_a_bad_contact_is_refused_naming_the_field(
    store: Store, changes: dict[str, Any], field: str
) -> None:
    jan = store.customers.add_customer("Jan")
    arguments: dict[str, Any] = {"customer_id": jan, "channel": "mail", **changes}
    with pytest.raises(InvalidRecord) as refused:
        store.contacts.add_contact(**arguments)
    assert str(refused.value).startswith(field)
    assert store.contacts.list_contacts(jan) == []


def test_the_limits_are_the_columns(store: Store) -> None:
    jan = store.customers.add_customer("Jan")
    contact = store.contacts.add_contact(
        jan,
        "other",
        subject="s" * 256,
        category="c" * 100,
        notes="n" * 20_000,
        at=NOW + timedelta(minutes=4),  # another machine's clock, a little ahead
    )
    assert (len(contact["subject"]), len(contact["category"]), len(contact["notes"])) == (
        256,
        100,
        20_000,
    )
    assert store.contacts.list_contacts(jan)[0]["notes"] == "n" * 20_000


def test_attacker_text_is_stored_as_text(store: Store) -> None:
    jan = store.customers.add_customer("Jan")
    hostile = "<img src=x onerror=alert(1)>\x00'; DROP TABLE contacts; --\ud800"
    contact = store.contacts.add_contact(
        jan, "chat", subject=hostile, notes=hostile, category="<b>x</b>"
    )
    stored = store.contacts.list_contacts(jan)[0]
    assert stored == contact
    expected = "<img src=x onerror=alert(1)>\ufffd'; DROP TABLE contacts; --?"
    assert stored["subject"] == stored["notes"] == expected
    assert stored["category"] == "<b>x</b>"
    empty = store.contacts.add_contact(jan, "mail", subject="", notes=" \n\t", category=" ")
    assert (empty["subject"], empty["notes"], empty["category"]) == (None, None, None)


def test_an_unknown_operator_is_refused_by_the_foreign_key(store: Store) -> None:
    jan = store.customers.add_customer("Jan")
    with pytest.raises(IntegrityError):
        store.contacts.add_contact(jan, "mail", by_operator=4242)
    assert store.contacts.list_contacts(jan) == []
