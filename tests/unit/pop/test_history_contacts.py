"""The history of a pop and of the customer view: the customer's calls and their contacts
that are not calls (mail, chat, visit ...), merged newest first, each item with its
``type``, bounded as the calls alone were, read in the pop's one statement.

The tests marked ``@every_backend`` are part of the pop's port contract
(``pop/ports.PopContextRead``): they run on the memory twin too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from cti_bridge.calls.events import Outcome
from cti_bridge.pop import ContextRequest, PopContextBuilder
from cti_bridge.store import Store
from cti_bridge.store.pop_read import pop_read
from cti_bridge.testing.store import START, CallBuilder, FakeTime
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

TODAY = date(2026, 11, 27)
ANNA = "Local/1001@agents"
JAN_NUMBER = "050123456"
NOW = datetime.fromtimestamp(START, UTC)

CALL_FIELDS = {
    "id", "type", "started_at", "direction", "caller_number", "queue", "answered_by",
    "outcome", "wait_seconds", "talk_seconds", "category", "disposition", "notes",
    "notes_truncated",
}  # fmt: skip
CONTACT_FIELDS = {
    "id", "type", "customer_id", "channel", "at", "subject", "category", "disposition",
    "operator", "notes", "notes_truncated",
}  # fmt: skip


@pytest.fixture
def people(store: Store) -> dict[str, int]:
    anna = store.accounts.add_operator(
        "anna", role="operator", password="anna-secret", devices=[ANNA]
    )
    jan = store.customers.add_customer("Jan Peeters", numbers=[JAN_NUMBER])
    piet = store.customers.add_customer("Piet", numbers=["050654321"])
    return {"anna": anna.id, "jan": jan, "piet": piet}


def builder(store: Store, fake_time: FakeTime, history: int = 10) -> PopContextBuilder:
    return PopContextBuilder(store.pop_read, clock=fake_time, today=lambda: TODAY, history=history)


def ringing(linkedid: str, number: str = JAN_NUMBER) -> ContextRequest:
    return ContextRequest.of(CallBuilder(linkedid, number=number).call)


def past_call(store: Store, linkedid: str, hours_ago: float, number: str = JAN_NUMBER) -> int:
    at = START - hours_ago * 3600
    call = (
        CallBuilder(linkedid, at=at, number=number)
        .ring(ANNA, at + 1)
        .answer(ANNA, at + 3)
        .end(at + 60, Outcome.ANSWERED)
    )
    store.calls.apply(call.events)
    found = store.queries.find_call("main", linkedid)
    assert found is not None
    return int(found["id"])


def contact(store: Store, customer: int, hours_ago: float, **fields: Any) -> int:
    fields.setdefault("channel", "mail")
    at = NOW - timedelta(hours=hours_ago)
    return int(store.contacts.add_contact(customer, at=at, **fields)["id"])


def kinds(history: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["type"], item["id"]) for item in history]


@every_backend
def test_calls_and_contacts_merge_newest_first_each_with_its_type(
    store: Store, fake_time: FakeTime, people: dict[str, int]
) -> None:
    jan = people["jan"]
    expected = [  # newest first
        ("contact", contact(store, jan, 1, channel="chat", by_operator=people["anna"])),
        ("call", past_call(store, "c.2", 2)),
        ("contact", contact(store, jan, 3, channel="visit", subject="On site")),
        ("contact", contact(store, jan, 4, channel="letter")),
        ("call", past_call(store, "c.5", 5)),
    ]
    contact(store, people["piet"], 0.5)  # someone else's
    pop = builder(store, fake_time).build(ringing("now.1"))
    assert kinds(pop["history"]) == expected
    calls = [h for h in pop["history"] if h["type"] == "call"]
    contacts = [h for h in pop["history"] if h["type"] == "contact"]
    assert all(set(h) == CALL_FIELDS for h in calls)
    assert all(set(h) == CONTACT_FIELDS for h in contacts)
    assert calls[0]["answered_by"] == "anna" and calls[0]["outcome"] == "answered"
    newest = contacts[0]
    assert newest == {
        "id": expected[0][1],
        "type": "contact",
        "customer_id": jan,
        "channel": "chat",
        "at": "2026-11-26T22:23:03.000Z",
        "subject": None,
        "category": None,
        "disposition": None,
        "operator": "anna",
        "notes": None,
        "notes_truncated": False,
    }
    assert contacts[1]["subject"] == "On site" and contacts[1]["operator"] is None
    # The customer view reads exactly the same history.
    card = builder(store, fake_time).customer_context(jan)
    assert card is not None and card["history"] == pop["history"]


@every_backend
@pytest.mark.parametrize(
    "mix",
    [
        # 12 of each, alternating: the 10 newest of the 24, 5 of each.
        ([2 * i for i in range(12)], [2 * i + 1 for i in range(12)], ["call", "contact"] * 5),
        ([100 + i for i in range(12)], list(range(12)), ["contact"] * 10),  # contacts newer
        (list(range(12)), [100 + i for i in range(12)], ["call"] * 10),  # calls newer
        ([1, 3], [], ["call", "call"]),
        ([], [1, 3], ["contact", "contact"]),
    ],
)
def test_the_history_keeps_its_length_whatever_the_mix(
    store: Store,
    fake_time: FakeTime,
    people: dict[str, int],
    mix: tuple[list[int], list[int], list[str]],
) -> None:
    call_hours, contact_hours, shown = mix
    moments: list[tuple[float, str, int]] = []
    for n, hours in enumerate(call_hours):
        moments.append((hours, "call", past_call(store, f"c.{n}", hours + 0.5)))
    for hours in contact_hours:
        moments.append((hours, "contact", contact(store, people["jan"], hours + 0.5)))
    newest = [(kind, item) for _, kind, item in sorted(moments)]
    pop = builder(store, fake_time).build(ringing("now.2"))
    assert [t for t, _ in kinds(pop["history"])] == shown
    assert kinds(pop["history"]) == newest[:10]
    short = builder(store, fake_time, history=3).customer_context(people["jan"])
    assert short is not None and kinds(short["history"]) == newest[:3]


@every_backend
def test_contacts_at_one_instant_come_last_logged_first_and_before_a_call_then(
    store: Store, fake_time: FakeTime, people: dict[str, int]
) -> None:
    call = past_call(store, "c.same", 2)  # it started 2 hours ago, to the microsecond
    first = contact(store, people["jan"], 2)
    second = contact(store, people["jan"], 2)
    pop = builder(store, fake_time).build(ringing("now.3"))
    assert kinds(pop["history"]) == [("contact", second), ("contact", first), ("call", call)]


@every_backend
def test_an_unknown_or_withheld_caller_gets_no_ones_contacts(
    store: Store, fake_time: FakeTime, people: dict[str, int]
) -> None:
    contact(store, people["jan"], 1)
    stranger = past_call(store, "s.1", 3, number="092345678")
    pop = builder(store, fake_time).build(ringing("now.4", number="092345678"))
    assert pop["customer"] is None
    assert kinds(pop["history"]) == [("call", stranger)]
    withheld = ContextRequest.of(CallBuilder("now.5", number="anonymous").call)
    assert builder(store, fake_time).build(withheld)["history"] == []


@every_backend
def test_attacker_text_in_a_contact_stays_text_and_long_notes_are_cut(
    store: Store, fake_time: FakeTime, people: dict[str, int]
) -> None:
    hostile = '<script>alert("x")</script>\x00 {"type": "call"} \u202egnp.exe'
    long_notes = "<b>" + "n" * 2000
    contact(store, people["jan"], 1, subject=hostile, notes=hostile, category="<i>c</i>")
    contact(store, people["jan"], 2, notes=long_notes)
    first, second = builder(store, fake_time).build(ringing("now.6"))["history"]
    kept = '<script>alert("x")</script>\ufffd {"type": "call"} \u202egnp.exe'
    assert (first["type"], first["subject"], first["notes"]) == ("contact", kept, kept)
    assert first["category"] == "<i>c</i>" and first["notes_truncated"] is False
    assert second["notes"] == long_notes[:1000] and second["notes_truncated"] is True
    full = store.contacts.list_contacts(people["jan"])[1]
    assert full["notes"] == long_notes  # the whole text is one request away


# SQLite's plan (PostgreSQL plans a table this small by a scan, whatever its indexes).
@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def test_contacts_are_read_in_the_pops_one_statement_on_their_index(
    store: Store, fake_time: FakeTime, people: dict[str, int]
) -> None:
    """No statement of their own for the contacts, and the database reads them on
    ``contacts(customer_id, at)``, newest first, not by scanning the table."""
    for hours in range(30):
        contact(store, people["jan"], hours)
    statements: list[str] = []

    def seen(sql: str) -> None:
        first = sql.split(None, 1)[0].upper()
        if first not in ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", ";"):
            statements.append(first)

    event.listen(store.engine, "connect", lambda driver, _: driver.set_trace_callback(seen))
    store.engine.dispose()
    card = builder(store, fake_time).customer_context(people["jan"])
    assert card is not None and len(card["history"]) == 10
    assert statements == ["WITH"]
    params: dict[str, Any] = {"customer_id": people["jan"], "agreement_id": None}
    params |= {"number": None}
    params |= {"pbx": "", "linkedid": "", "limit": 10}
    with store.engine.connect() as connection:
        compiled = pop_read(connection.dialect)
        driver: Any = connection.connection.dbapi_connection
        plan = driver.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.arguments(params))
        steps = [row[3] for row in plan.fetchall()]
    on_contacts = [step for step in steps if " contacts " in f"{step} "]
    assert on_contacts, steps
    assert all("USING INDEX ix_contacts_customer_id_at" in step for step in on_contacts), steps
