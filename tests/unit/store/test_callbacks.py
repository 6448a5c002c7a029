"""The dialer's side of the promise book (dialer/ports.py CallbackBook, on SQL and its
twin): which callbacks are due, claiming an attempt before anything is dialled, ending
it, putting a callback off, giving it up, and the attempts left open by a crash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from cti_bridge.callbacks import Attempt
from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store import START, FakeTime
from cti_bridge.testing.store_contract import every_backend
from tests.support.agreements import claim

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
pytestmark = every_backend

NOW = datetime.fromtimestamp(START, UTC)
MINUTE = timedelta(minutes=1)


def callback(store: Store, **values: object) -> int:
    values.setdefault("callback_number", "050123456")
    return store.agreements.add_agreement("callback", **values)  # type: ignore[arg-type]


def test_due_callbacks_are_the_due_open_callbacks_soonest_first(store: Store) -> None:
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret").id
    jan = store.customers.add_customer("Jan", numbers=["050123456"], timezone="Europe/London")
    book = store.agreements
    deadline = NOW + timedelta(days=1)
    window = (NOW - 5 * MINUTE, NOW + timedelta(hours=3))
    late = callback(store, due_at=NOW - timedelta(hours=1), customer_id=jan, owner_operator_id=anna,
                    queue="support", deadline=deadline, window=window)  # fmt: skip
    now_due = callback(store, due_at=NOW)
    early = callback(store, due_at=NOW - timedelta(hours=2))
    callback(store, due_at=NOW + MINUTE)  # not yet
    book.add_agreement("repair", due_at=NOW - timedelta(hours=3))  # not a callback
    book.add_agreement("callback", due_at=NOW - timedelta(hours=3))  # no number to call
    closed = callback(store, due_at=NOW - timedelta(hours=3))
    book.update_agreement(closed, {"status": "cancelled"})
    flagged = callback(store, due_at=NOW - timedelta(hours=3))
    book.flag_agreement(flagged, "no_calling_time", now=NOW)
    dialling = callback(store, due_at=NOW - timedelta(hours=3))
    assert claim(book, dialling, 1, NOW)
    put_off = callback(store, due_at=NOW - timedelta(hours=3))
    assert book.reschedule(put_off, NOW + timedelta(hours=1))
    asleep = callback(store, due_at=NOW - timedelta(hours=3))
    assert book.reschedule(asleep, None)  # nothing to dial until something changes

    due = book.due_callbacks(NOW)
    assert [d.agreement_id for d in due] == [early, late, now_due]
    assert [d.agreement_id for d in book.due_callbacks(NOW, limit=2)] == [early, late]
    assert [d.agreement_id for d in book.due_callbacks(NOW + MINUTE)][-1] != now_due
    one = due[1]
    assert (one.callback_number, one.owner, one.queue) == ("+3250123456", "anna", "support")
    assert (one.customer_id, one.customer_name, one.timezone) == (jan, "Jan", "Europe/London")
    assert (one.due_at, one.next_attempt_at) == (NOW - timedelta(hours=1),) * 2
    assert (one.deadline, one.window_start, one.window_end) == (deadline, *window)
    assert one.attempts == ()
    bare = due[2]
    assert (bare.owner, bare.customer_name, bare.timezone, bare.deadline) == (None,) * 4
    assert book.due_callbacks(NOW - timedelta(days=1)) == []


def test_a_due_callback_carries_its_attempts_for_the_policy(store: Store) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert claim(book, made, 1, NOW)
    book.finish_attempt(made, 1, "busy", now=NOW + MINUTE, next_attempt_at=NOW + 10 * MINUTE)
    assert book.due_callbacks(NOW + 9 * MINUTE) == []
    [due] = book.due_callbacks(NOW + 10 * MINUTE)
    assert due.due_at == NOW  # the owner's grace counts from the first due time
    assert due.next_attempt_at == NOW + 10 * MINUTE
    assert due.attempts == (Attempt(1, NOW, NOW + MINUTE, "busy"),)


def test_claiming_opens_the_attempt_and_sets_the_agreement_dialling(store: Store) -> None:
    store.accounts.add_operator("anna", role="operator", password="anna-secret")
    book = store.agreements
    made = callback(store, due_at=NOW - MINUTE)
    assert book.claim_attempt(
        made, 1, now=NOW, operator="anna", node="node-a", pbx="main",
        channel_id="cb-77", action_id="orig-77",
    )  # fmt: skip
    found = book.get_agreement(made)
    assert found is not None
    assert (found["status"], found["next_attempt_at"]) == ("dialling", None)
    [attempt] = found["attempts"]
    assert (attempt["number"], attempt["operator"], attempt["node"]) == (1, "anna", "node-a")
    assert (attempt["pbx"], attempt["channel_id"]) == ("main", "cb-77")
    assert (attempt["started_at"], attempt["ended_at"], attempt["outcome"]) == (
        "2026-11-26T23:23:03.000Z",
        None,
        None,
    )
    assert found["history"][-1] == {
        "at": "2026-11-26T23:23:03.000Z",
        "kind": "attempt_started",
        "operator": None,  # the dialer did it; whom it rang is in the details
        "details": {"number": 1, "operator": "anna", "node": "node-a"},
    }
    [opened] = book.open_attempts()
    assert (opened.agreement_id, opened.number, opened.started_at) == (made, 1, NOW)
    assert (opened.pbx, opened.channel_id, opened.action_id) == ("main", "cb-77", "orig-77")
    assert (opened.operator, opened.node) == ("anna", "node-a")


@pytest.mark.parametrize(
    ("case", "number", "at"),
    [
        ("not due yet", 1, NOW - 2 * MINUTE),
        ("not the next number", 2, NOW),
        ("a number already used", 0, NOW),
    ],
)
def test_a_claim_that_does_not_fit_changes_nothing(
    store: Store, case: str, number: int, at: datetime
) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW - MINUTE)
    before = book.get_agreement(made)
    assert not claim(book, made, number, at), case
    assert book.get_agreement(made) == before
    assert book.open_attempts() == []


def test_a_closed_flagged_or_dialling_agreement_is_not_claimed(store: Store) -> None:
    book = store.agreements
    closed, flagged, dialling = (callback(store, due_at=NOW) for _ in range(3))
    book.update_agreement(closed, {"status": "cancelled"})
    book.flag_agreement(flagged, "deadline_passed", now=NOW)
    assert claim(book, dialling, 1, NOW)
    for agreement in (closed, flagged, dialling):
        assert not claim(book, agreement, 1, NOW + MINUTE)
        assert not claim(book, agreement, 2, NOW + MINUTE)
    assert [a.agreement_id for a in book.open_attempts()] == [dialling]


@pytest.mark.parametrize(
    ("outcome", "next_at", "status", "next_shown"),
    [
        ("busy", NOW + 10 * MINUTE, "open", "2026-11-26T23:33:03.000Z"),
        ("no_answer", None, "open", None),  # the dialer looks again only when told
        ("unknown", NOW + 30 * MINUTE, "open", "2026-11-26T23:53:03.000Z"),
        ("answered", NOW + 10 * MINUTE, "open", None),  # answered: nothing more to dial
    ],
)
def test_finishing_an_attempt_opens_the_agreement_again(
    store: Store, outcome: str, next_at: datetime | None, status: str, next_shown: str | None
) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert claim(book, made, 1, NOW)
    done = book.finish_attempt(
        made, 1, outcome, now=NOW + MINUTE, detail="DialStatus " + outcome, next_attempt_at=next_at
    )
    assert done is not None and done == book.get_agreement(made)
    assert (done["status"], done["next_attempt_at"], done["flagged"]) == (status, next_shown, False)
    [attempt] = done["attempts"]
    assert (attempt["outcome"], attempt["detail"]) == (outcome, "DialStatus " + outcome)
    assert attempt["ended_at"] == "2026-11-26T23:24:03.000Z"
    assert done["history"][-1]["kind"] == "attempt_ended"
    assert done["history"][-1]["details"] == {
        "number": 1,
        "outcome": outcome,
        "detail": "DialStatus " + outcome,
    }
    # a second finish changes nothing
    assert book.finish_attempt(made, 1, "failed", now=NOW + 2 * MINUTE) is None
    assert book.get_agreement(made) == done
    assert book.open_attempts() == []


def test_finishing_the_last_attempt_flags_the_agreement(store: Store) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert claim(book, made, 1, NOW)
    done = book.finish_attempt(
        made, 1, "no_answer", now=NOW + MINUTE, next_attempt_at=NOW, flag="attempts_exhausted"
    )
    assert done is not None
    assert (done["status"], done["flagged"], done["next_attempt_at"]) == ("failed", True, None)
    assert [(e["kind"], e["details"]) for e in done["history"][-2:]] == [
        ("attempt_ended", {"number": 1, "outcome": "no_answer", "detail": None}),
        ("flagged", {"reason": "attempts_exhausted"}),
    ]
    assert book.due_callbacks(NOW + timedelta(days=1)) == []
    with pytest.raises(InvalidRecord):
        book.finish_attempt(made, 2, "busy", now=NOW, flag="bored")


def test_an_agreement_closed_while_dialling_keeps_its_status(store: Store) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert claim(book, made, 1, NOW)
    book.update_agreement(made, {"status": "done", "disposition": "solved"})
    done = book.finish_attempt(
        made, 1, "busy", now=NOW + MINUTE, next_attempt_at=NOW + MINUTE, flag="deadline_passed"
    )
    assert done is not None
    assert (done["status"], done["flagged"], done["next_attempt_at"]) == ("done", False, None)
    assert done["attempts"][0]["outcome"] == "busy"


def test_reschedule_and_flag_only_touch_an_open_agreement(store: Store) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert book.reschedule(made, NOW + timedelta(hours=1))
    found = book.get_agreement(made)
    assert found is not None and found["next_attempt_at"] == "2026-11-27T00:23:03.000Z"
    assert [e["kind"] for e in found["history"]] == ["created"]  # no history for a put-off
    flagged = book.flag_agreement(made, "no_calling_time", now=NOW + MINUTE)
    assert flagged is not None
    assert (flagged["status"], flagged["flagged"], flagged["next_attempt_at"]) == (
        "failed",
        True,
        None,
    )
    assert flagged["history"][-1] == {
        "at": "2026-11-26T23:24:03.000Z",
        "kind": "flagged",
        "operator": None,
        "details": {"reason": "no_calling_time"},
    }
    assert book.flag_agreement(made, "no_calling_time", now=NOW) is None  # not open any more
    assert not book.reschedule(made, NOW)
    with pytest.raises(InvalidRecord):
        book.reschedule(made + 1000, NOW)
    with pytest.raises(InvalidRecord):
        book.flag_agreement(made + 1000, "deadline_passed", now=NOW)
    other = callback(store)
    with pytest.raises(InvalidRecord, match=r"^flag"):
        book.flag_agreement(other, "bored", now=NOW)


def test_open_attempts_of_a_pbx_oldest_first(store: Store) -> None:
    book = store.agreements
    first, second, third, ended = (callback(store, due_at=NOW - MINUTE) for _ in range(4))
    assert claim(book, second, 1, NOW - MINUTE, pbx="main", node="node-b")
    assert claim(book, first, 1, NOW, pbx="main")
    assert claim(book, third, 1, NOW, pbx="branch")
    assert claim(book, ended, 1, NOW - MINUTE, pbx="main")
    book.finish_attempt(ended, 1, "unknown", now=NOW)
    assert [(a.agreement_id, a.pbx) for a in book.open_attempts("main")] == [
        (second, "main"),
        (first, "main"),
    ]
    assert [a.agreement_id for a in book.open_attempts()] == [second, first, third]
    assert book.open_attempts("nowhere") == []


@dataclass(frozen=True)
class CallbackCall:
    """The callback call's record as the writer makes it (a ``NewCall``)."""

    pbx: str
    linkedid: str
    direction: str = "outbound"
    started_at: float = START
    caller_withheld: bool = False
    complete: bool = True


def test_an_attempts_call_is_the_callback_call_found_by_its_channel_id(
    store: Store, fake_time: FakeTime
) -> None:
    book = store.agreements
    made = callback(store, due_at=NOW)
    assert claim(book, made, 1, NOW, pbx="main", channel_id="1795735383.42")
    found = book.get_agreement(made)
    assert found is not None and found["attempts"][0]["call_id"] is None  # not recorded yet
    other_pbx = store.calls.ensure_call(CallbackCall("branch", "1795735383.42"))
    call_id = store.calls.ensure_call(CallbackCall("main", "1795735383.42"))
    assert call_id is not None and other_pbx != call_id
    found = book.get_agreement(made)
    assert found is not None and found["attempts"][0]["call_id"] == call_id
    [listed] = book.list_agreements(kind="callback")
    assert listed["attempts"][0]["call_id"] == call_id
