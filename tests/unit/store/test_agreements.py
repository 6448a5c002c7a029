"""The agreement book (store/agreements.py; port: console/ports.AgreementBook): agreements,
their attempts (never two open at once), the open ones of a customer or a number, the
filters. The history and the closing rules are test_agreement_changes.py, the dialer's
side test_callbacks.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store import FakeTime
from cti_bridge.testing.store_contract import every_backend
from tests.support.agreements import claim

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend


def test_agreements_and_attempts(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    customer = store.customers.add_customer("Jan", numbers=["050123456"])
    deadline = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    window = (deadline - timedelta(hours=8), deadline)
    book = store.agreements
    agreement = book.add_agreement(
        "callback",
        customer_id=customer,
        owner_operator_id=anna,
        deadline=deadline,
        callback_number="050 12 34 56",
        window=window,
        notes="call back about the paper jam",
        by_operator=anna,
    )
    at = window[0]  # a callback falls due when its window opens
    assert claim(book, agreement, 1, at, operator="anna", node="node-1")
    # Never two attempts for one agreement at once.
    assert not claim(book, agreement, 2, at, operator="anna", node="node-2")
    assert not claim(book, agreement, 1, at, operator="anna", node="node-2")
    retry = at + timedelta(minutes=10)
    book.finish_attempt(agreement, 1, "busy", now=at + timedelta(minutes=1), next_attempt_at=retry)
    assert not claim(book, agreement, 2, retry - timedelta(seconds=1), node="node-2")  # not yet
    assert claim(book, agreement, 2, retry, operator="anna", node="node-2")
    book.finish_attempt(agreement, 2, "answered", now=retry + timedelta(minutes=3))
    book.update_agreement(agreement, {"status": "done", "disposition": "solved"}, by_operator=anna)
    found = book.get_agreement(agreement)
    assert found is not None
    assert found["status"] == "done" and found["disposition"] == "solved"
    assert found["callback_number"] == "+3250123456"
    assert found["deadline"] == "2026-11-28T17:00:00.000Z"
    assert found["window_start"] == "2026-11-28T09:00:00.000Z"
    assert [(a["number"], a["node"], a["outcome"]) for a in found["attempts"]] == [
        (1, "node-1", "busy"),
        (2, "node-2", "answered"),
    ]
    assert book.finish_attempt(agreement, 2, "answered", now=retry) is None  # already ended


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
    store.agreements.update_agreement(done, {"status": "cancelled"})
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


def test_unknown_agreements_and_bad_values_are_refused(store: Store, fake_time: FakeTime) -> None:
    book = store.agreements
    agreement = book.add_agreement("callback", callback_number="050123456")
    now = datetime.fromtimestamp(fake_time.now, UTC)
    assert book.get_agreement(agreement + 1000) is None
    with pytest.raises(InvalidRecord):
        book.update_agreement(agreement + 1000, {"status": "cancelled"})
    with pytest.raises(InvalidRecord, match=r"^status"):
        book.update_agreement(agreement, {"status": "forgotten"})
    assert not claim(book, agreement + 1000, 1, now)
    assert claim(book, agreement, 1, now)
    with pytest.raises(InvalidRecord):
        book.finish_attempt(agreement, 1, "lost in space", now=now)
    with pytest.raises(InvalidRecord):
        book.finish_attempt(agreement + 1000, 1, "busy", now=now)
    assert book.finish_attempt(agreement, 2, "busy", now=now) is None  # no such attempt
    finished = book.finish_attempt(agreement, 1, "no_answer", now=now)
    assert finished is not None and finished["attempts"][0]["outcome"] == "no_answer"


def test_agreements_are_listed_by_status_owner_customer_and_due(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    bart = store.accounts.add_operator("bart", role="operator", password="bart-secret").id
    jan = store.customers.add_customer("Jan", numbers=["050123456"])
    now = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    today = (datetime(2026, 11, 27, 23, 0, tzinfo=UTC), datetime(2026, 11, 28, 23, 0, tzinfo=UTC))
    book = store.agreements
    late = book.add_agreement(
        "callback", customer_id=jan, owner_operator_id=anna, deadline=now - timedelta(hours=1),
        callback_number="050123456",
    )  # fmt: skip
    tonight = book.add_agreement(
        "repair", customer_id=jan, owner_operator_id=bart, deadline=today[1] - timedelta(seconds=1)
    )
    tomorrow = book.add_agreement("technician", owner_operator_id=anna, deadline=today[1])
    yesterday = book.add_agreement(
        "other", owner_operator_id=anna, deadline=today[0] - timedelta(1)
    )
    undated = book.add_agreement("documentation", customer_id=jan)
    closed = book.add_agreement("repair", owner_operator_id=anna, deadline=now - timedelta(1))
    book.update_agreement(closed, {"status": "done"})

    def ids(**filters: object) -> list[int]:
        return [a["id"] for a in book.list_agreements(**filters)]  # type: ignore[arg-type]

    assert ids() == [yesterday, closed, late, tonight, tomorrow, undated]  # undated last
    assert ids(limit=2) == [yesterday, closed]
    assert ids(status="open") == [yesterday, late, tonight, tomorrow, undated]
    assert ids(status="done") == [closed]
    assert ids(owner_operator_id=anna) == [yesterday, closed, late, tomorrow]
    assert ids(customer_id=jan) == [late, tonight, undated]
    assert ids(due="overdue", now=now) == [yesterday, late]  # pending ones only
    assert ids(due="today", today=today) == [late, tonight]  # start in, end out
    assert ids(due="overdue", now=now, owner_operator_id=anna, customer_id=jan) == [late]
    assert ids(due="today", today=today, status="done") == []
    with pytest.raises(InvalidRecord, match=r"^due"):
        book.list_agreements(due="someday", now=now)
    with pytest.raises(InvalidRecord, match=r"^status"):
        book.list_agreements(status="forgotten")
    with pytest.raises(TypeError):
        book.list_agreements(due="overdue")
    with pytest.raises(TypeError):
        book.list_agreements(due="today", now=now)
    [shown] = book.list_agreements(customer_id=jan, limit=1)
    assert shown["owner"] == "anna" and shown["owner_operator_id"] == anna
    assert shown["deadline"] == "2026-11-28T13:00:00.000Z"
    assert shown == book.get_agreement(late)


def test_an_agreement_shows_its_owner_and_attempts_by_username(
    store: Store, fake_time: FakeTime
) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    bart = store.accounts.add_operator("bart", role="operator", password="bart-secret").id
    book = store.agreements
    agreement = book.add_agreement("callback", owner_operator_id=anna, callback_number="050123456")
    now = datetime.fromtimestamp(fake_time.now, UTC)
    book.claim_attempt(
        agreement, 1, now=now, operator="bart", node="node-1", pbx="main", channel_id="c1",
        action_id="a",
    )  # fmt: skip
    book.finish_attempt(agreement, 1, "no_answer", now=now, detail="NOANSWER", next_attempt_at=now)
    book.claim_attempt(
        agreement, 2, now=now, operator=None, node="node-2", pbx="main", channel_id="c2",
        action_id="a",
    )  # fmt: skip
    found = book.get_agreement(agreement)
    assert found is not None
    assert found["owner"] == "anna"
    assert [
        (a["number"], a["operator"], a["operator_id"], a["node"]) for a in found["attempts"]
    ] == [
        (1, "bart", bart, "node-1"),
        (2, None, None, "node-2"),
    ]
    first, second = found["attempts"]
    assert first["outcome"] == "no_answer" and first["ended_at"] is not None
    assert (first["pbx"], first["channel_id"], first["detail"]) == ("main", "c1", "NOANSWER")
    assert second["outcome"] is None and second["ended_at"] is None
    assert set(first) == {
        "number", "operator", "operator_id", "node", "started_at", "ended_at", "call_id",
        "outcome", "pbx", "channel_id", "detail",
    }  # fmt: skip
    unowned = book.get_agreement(book.add_agreement("repair"))
    assert unowned is not None and unowned["owner"] is None


def test_an_agreement_is_changed_and_closed(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    bart = store.accounts.add_operator("bart", role="operator", password="bart-secret").id
    book = store.agreements
    agreement = book.add_agreement(
        "callback", owner_operator_id=anna, callback_number="050123456", notes="first"
    )
    deadline = datetime(2026, 12, 1, 16, tzinfo=UTC)
    window = (datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 12, tzinfo=UTC))
    book.update_agreement(
        agreement,
        {"deadline": deadline, "owner_operator_id": bart, "window": window, "notes": " again "},
    )
    found = book.get_agreement(agreement)
    assert found is not None
    assert (found["deadline"], found["owner"], found["notes"]) == (
        "2026-12-01T16:00:00.000Z",
        "bart",
        " again ",
    )
    assert (found["window_start"], found["window_end"]) == (
        "2026-12-01T09:00:00.000Z",
        "2026-12-01T12:00:00.000Z",
    )
    assert found["status"] == "open" and found["kind"] == "callback"
    book.update_agreement(agreement, {"window": None, "deadline": None, "owner_operator_id": None})
    found = book.get_agreement(agreement)
    assert found is not None
    assert (found["window_start"], found["window_end"], found["deadline"]) == (None, None, None)
    assert found["owner"] is None and found["notes"] == " again "  # left out: kept
    book.update_agreement(agreement, {"status": "done", "disposition": "solved"})
    assert (book.get_agreement(agreement) or {})["status"] == "done"
    with pytest.raises(InvalidRecord, match=r"^status: the agreement is already done"):
        book.update_agreement(agreement, {"status": "cancelled"})
    book.update_agreement(agreement, {"notes": "closed, noted"})  # still annotated


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "open"}, "status"),
        ({"status": "failed"}, "status"),
        (
            {"window": (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))},
            "window_end",
        ),
    ],
)
def test_wrong_changes_are_refused_naming_the_field(
    store: Store, changes: dict[str, object], field: str
) -> None:
    agreement = store.agreements.add_agreement("repair", notes="as it was")
    with pytest.raises(InvalidRecord, match=f"^{field}"):
        store.agreements.update_agreement(agreement, changes)
    found = store.agreements.get_agreement(agreement)
    assert found is not None and found["status"] == "open" and found["notes"] == "as it was"


def test_changing_an_unknown_agreement_or_field_is_refused(store: Store) -> None:
    agreement = store.agreements.add_agreement("repair")
    with pytest.raises(InvalidRecord):
        store.agreements.update_agreement(agreement + 1000, {"notes": "x"})
    with pytest.raises(TypeError):
        store.agreements.update_agreement(agreement, {"kind": "callback"})
