"""The promise book's rules (store/agreement_rules.py, on SQL and its twin): when a new
agreement falls due, how it reads (customer, history), what a change does (closing
rules, dispositions, the dialer looking again) and the history it writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cti_bridge.store import InvalidRecord, Store
from cti_bridge.testing.store import FakeTime
from cti_bridge.testing.store_contract import every_backend
from tests.support.agreements import claim

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
pytestmark = every_backend

DAY = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = (DAY + timedelta(hours=9), DAY + timedelta(hours=12))


def now_of(fake_time: FakeTime) -> datetime:
    return datetime.fromtimestamp(fake_time.now, UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def shown(store: Store, agreement_id: int) -> dict[str, Any]:
    found = store.agreements.get_agreement(agreement_id)
    assert found is not None
    return found


def operator(store: Store, name: str) -> int:
    return store.accounts.add_operator(name, role="operator", password=f"{name}-secret").id


@pytest.mark.parametrize(
    ("kind", "due_at", "window", "due", "next_attempt"),
    [
        # a callback: the given due time, else the window's start, else now
        ("callback", DAY, WINDOW, DAY, DAY),
        ("callback", None, WINDOW, WINDOW[0], WINDOW[0]),
        ("callback", None, None, "now", "now"),
        # other kinds are never dialled; their due time is what was given
        ("technician", DAY, None, DAY, None),
        ("repair", None, WINDOW, None, None),
    ],
)
def test_a_new_agreement_falls_due(
    store: Store,
    fake_time: FakeTime,
    *,
    kind: str,
    due_at: datetime | None,
    window: tuple[datetime, datetime] | None,
    due: datetime | str | None,
    next_attempt: datetime | str | None,
) -> None:
    now = now_of(fake_time)
    made = store.agreements.add_agreement(
        kind, callback_number="050123456", due_at=due_at, window=window
    )
    found = shown(store, made)
    assert found["due_at"] == iso(now if due == "now" else due)  # type: ignore[arg-type]
    assert found["next_attempt_at"] == iso(now if next_attempt == "now" else next_attempt)  # type: ignore[arg-type]


def test_a_callback_without_a_number_is_due_but_never_dialled(
    store: Store, fake_time: FakeTime
) -> None:
    book = store.agreements
    made = book.add_agreement("callback", due_at=DAY)
    book.update_agreement(made, {"deadline": DAY + timedelta(days=1)})
    assert not book.reschedule(made, DAY)
    found = shown(store, made)
    assert (found["due_at"], found["next_attempt_at"]) == (iso(DAY), None)


def test_an_agreement_reads_with_its_new_fields_and_history(
    store: Store, fake_time: FakeTime
) -> None:
    anna = operator(store, "anna")
    jan = store.customers.add_customer("Jan <b>Peeters</b>", numbers=["050123456"])
    book = store.agreements
    made = book.add_agreement(
        "callback",
        customer_id=jan,
        owner_operator_id=anna,
        callback_number="050123456",
        queue="support",
        by_operator=anna,
    )
    found = shown(store, made)
    assert found["customer_name"] == "Jan <b>Peeters</b>"  # as text, as stored
    assert (found["queue"], found["origin"], found["flagged"]) == ("support", "operator", False)
    assert (found["disposition"], found["closed_at"]) == (None, None)
    created = iso(now_of(fake_time))
    assert found["history"] == [
        {
            "at": created,
            "kind": "created",
            "operator": "anna",
            "details": {"kind": "callback", "origin": "operator"},
        }
    ]
    assert {
        "id", "kind", "status", "customer_id", "customer_name", "call_id",
        "owner_operator_id", "owner", "queue", "origin", "flagged", "disposition",
        "deadline", "due_at", "next_attempt_at", "callback_number", "window_start",
        "window_end", "notes", "created_at", "updated_at", "closed_at", "attempts",
        "history",
    } == set(found)  # fmt: skip
    missed = book.add_agreement(
        "callback",
        callback_number="050123456",
        origin="missed_call",
        details={"pbx": "main", "linkedid": "1700.1"},
    )
    first = shown(store, missed)
    assert first["origin"] == "missed_call" and first["customer_name"] is None
    assert first["history"][0]["operator"] is None
    assert first["history"][0]["details"] == {
        "kind": "callback",
        "origin": "missed_call",
        "pbx": "main",
        "linkedid": "1700.1",
    }
    with pytest.raises(InvalidRecord, match=r"^origin"):
        book.add_agreement("callback", callback_number="050123456", origin="psychic")


def test_every_change_is_history_with_old_and_new_and_who(
    store: Store, fake_time: FakeTime
) -> None:
    anna, bart = operator(store, "anna"), operator(store, "bart")
    book = store.agreements
    made = book.add_agreement(
        "technician", owner_operator_id=anna, notes="first", queue="field", by_operator=anna
    )
    fake_time.advance(60)
    deadline = DAY + timedelta(hours=16)
    book.update_agreement(
        made,
        {
            "deadline": deadline,
            "owner_operator_id": bart,
            "window": WINDOW,
            "notes": "first",  # unchanged: not in the history
            "queue": "second-line",
            "disposition": "visit_planned",
        },
        by_operator=anna,
    )
    found = shown(store, made)
    assert [e["kind"] for e in found["history"]] == ["created", "changed"]
    change = found["history"][1]
    assert change["operator"] == "anna" and change["at"] == iso(now_of(fake_time))
    assert change["details"] == {
        "deadline": [None, iso(deadline)],
        "owner": ["anna", "bart"],
        "window_start": [None, iso(WINDOW[0])],
        "window_end": [None, iso(WINDOW[1])],
        "queue": ["field", "second-line"],
        "disposition": [None, "visit_planned"],
    }
    assert found["updated_at"] == iso(now_of(fake_time))
    assert (found["queue"], found["disposition"], found["owner"]) == (
        "second-line",
        "visit_planned",
        "bart",
    )
    book.update_agreement(made, {"notes": "first", "queue": "second-line"}, by_operator=bart)
    assert len(shown(store, made)["history"]) == 2  # nothing changed, nothing told
    book.update_agreement(made, {"window": None, "owner_operator_id": None}, by_operator=bart)
    last = shown(store, made)["history"][-1]
    assert last["operator"] == "bart"
    assert last["details"] == {
        "owner": ["bart", None],
        "window_start": [iso(WINDOW[0]), None],
        "window_end": [iso(WINDOW[1]), None],
    }


@pytest.mark.parametrize(
    ("kind", "changes", "closed"),
    [
        ("callback", {"status": "done", "disposition": "solved"}, ("done", "solved")),
        ("callback", {"status": "cancelled"}, ("cancelled", None)),
        ("callback", {"status": "cancelled", "disposition": "no_longer_needed"},
         ("cancelled", "no_longer_needed")),
        ("repair", {"status": "done"}, ("done", None)),  # other kinds may give one
        ("documentation", {"status": "done", "disposition": "documentation_sent"},
         ("done", "documentation_sent")),
    ],
)  # fmt: skip
def test_closing_sets_closed_at_clears_the_dialer_and_says_so(
    store: Store,
    fake_time: FakeTime,
    *,
    kind: str,
    changes: dict[str, Any],
    closed: tuple[str, str | None],
) -> None:
    sofie = operator(store, "sofie")
    book = store.agreements
    made = book.add_agreement(kind, callback_number="050123456")
    fake_time.advance(30)
    book.update_agreement(made, changes, by_operator=sofie)
    found = shown(store, made)
    assert (found["status"], found["disposition"]) == closed
    assert found["closed_at"] == iso(now_of(fake_time))
    assert found["next_attempt_at"] is None
    event = found["history"][-1]
    assert event["kind"] == "closed" and event["operator"] == "sofie"
    assert event["details"] == {"status": closed[0], "disposition": closed[1]}
    assert "changed" not in [e["kind"] for e in found["history"]]  # the close tells it all


def test_closing_a_callback_done_asks_for_a_disposition(store: Store) -> None:
    book = store.agreements
    made = book.add_agreement("callback", callback_number="050123456")
    with pytest.raises(InvalidRecord, match=r"^disposition"):
        book.update_agreement(made, {"status": "done"})
    with pytest.raises(InvalidRecord, match=r"^disposition"):
        book.update_agreement(made, {"status": "done", "disposition": None})
    with pytest.raises(InvalidRecord, match=r"^disposition"):
        book.update_agreement(made, {"status": "done", "disposition": "shrugged"})
    found = shown(store, made)
    assert found["status"] == "open" and found["closed_at"] is None
    assert [e["kind"] for e in found["history"]] == ["created"]  # refused: nothing written
    # one given before counts
    book.update_agreement(made, {"disposition": "information_given"})
    book.update_agreement(made, {"status": "done"})
    found = shown(store, made)
    assert (found["status"], found["disposition"]) == ("done", "information_given")
    assert found["history"][-1]["details"] == {"status": "done", "disposition": "information_given"}
    with pytest.raises(InvalidRecord, match=r"^status: the agreement is already done"):
        book.update_agreement(made, {"status": "cancelled"})
    book.update_agreement(made, {"disposition": "solved"})  # a closed one may be corrected
    assert shown(store, made)["disposition"] == "solved"


def test_a_flagged_or_dialling_agreement_may_be_closed(store: Store, fake_time: FakeTime) -> None:
    book = store.agreements
    now = now_of(fake_time)
    flagged = book.add_agreement("callback", callback_number="050123456")
    assert book.flag_agreement(flagged, "deadline_passed", now=now) is not None
    book.update_agreement(flagged, {"status": "done", "disposition": "customer_unreachable"})
    found = shown(store, flagged)
    assert (found["status"], found["flagged"]) == ("done", True)  # the flag stays: it happened
    dialling = book.add_agreement("callback", callback_number="050123457")
    assert claim(book, dialling, 1, now)
    book.update_agreement(dialling, {"status": "cancelled"})
    found = shown(store, dialling)
    assert found["status"] == "cancelled" and found["next_attempt_at"] is None
    assert found["attempts"][0]["ended_at"] is None  # left to end by itself
    ended = book.finish_attempt(dialling, 1, "answered", now=now)
    assert ended is not None and ended["status"] == "cancelled"  # closed meanwhile: it stays


def test_a_new_deadline_or_window_makes_the_dialer_look_again(
    store: Store, fake_time: FakeTime
) -> None:
    book = store.agreements
    now = now_of(fake_time)
    later = now + timedelta(hours=2)
    made = book.add_agreement("callback", callback_number="050123456", due_at=later)
    assert book.reschedule(made, later + timedelta(days=1))  # the dialer put it off
    book.update_agreement(made, {"deadline": later + timedelta(days=2)})
    assert shown(store, made)["next_attempt_at"] == iso(later)  # max(now, due_at)
    assert book.reschedule(made, later + timedelta(days=1))
    fake_time.advance(3 * 3600)  # now past due
    book.update_agreement(made, {"window": (now, now + timedelta(days=3))})
    assert shown(store, made)["next_attempt_at"] == iso(now_of(fake_time))
    # notes, owner, queue: the dialer's schedule stays
    assert book.reschedule(made, later + timedelta(days=1))
    book.update_agreement(made, {"notes": "ring after lunch", "queue": "sales"})
    assert shown(store, made)["next_attempt_at"] == iso(later + timedelta(days=1))
    # not for an attempt under way, nor for other kinds
    assert book.reschedule(made, now)
    assert claim(book, made, 1, now_of(fake_time))
    book.update_agreement(made, {"deadline": later + timedelta(days=3)})
    assert shown(store, made)["next_attempt_at"] is None
    repair = book.add_agreement("repair")
    book.update_agreement(repair, {"deadline": later})
    assert shown(store, repair)["next_attempt_at"] is None


def test_agreements_are_listed_by_flag_and_kind(store: Store, fake_time: FakeTime) -> None:
    book = store.agreements
    now = now_of(fake_time)
    call = book.add_agreement("callback", callback_number="050123456")
    repair = book.add_agreement("repair")
    flagged = book.add_agreement("callback", callback_number="050123457")
    book.flag_agreement(flagged, "attempts_exhausted", now=now)

    def ids(**filters: Any) -> list[int]:
        return [a["id"] for a in book.list_agreements(**filters)]

    assert ids(flagged=True) == [flagged]
    assert ids(flagged=False) == [call, repair]
    assert ids(kind="callback") == [call, flagged]
    assert ids(kind="repair", flagged=False) == [repair]
    assert ids(kind="callback", status="open") == [call]
    assert ids(kind="technician") == []
    with pytest.raises(InvalidRecord, match=r"^kind"):
        book.list_agreements(kind="pizza")
