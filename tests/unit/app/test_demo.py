"""``cti-bridge demo``'s seed and settings: the dialer has every outcome to show, at any hour.

The seed goes into a fresh SQLite file (the demo's own database); what the simulated
PBX will do with each due callback is read from the simulator's own tables
(``CALLBACK_NUMBERS`` and the operators' habits), not restated here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.app.config import QueuesConfig
from cti_bridge.app.demo import demo_config, seed
from cti_bridge.app.demo_agreements import BOOK, CALLBACK_CUSTOMERS, OPERATOR_HABITS, teach_habits
from cti_bridge.sim import CALLBACK_NUMBERS, DEFAULT_OPERATORS, SimulatedPBX
from cti_bridge.sim.traffic import PAUSE_REASONS
from cti_bridge.store import Store, open_store, upgrade
from cti_bridge.store.numbers import normalize_number
from cti_bridge.testing.store import cheap_hasher

NOW = datetime(2026, 12, 25, 23, 30, tzinfo=UTC)  # Christmas, half past midnight in Brussels


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    upgrade(url)
    opened = open_store(url, accounts={"hasher": cheap_hasher()})
    try:
        yield opened
    finally:
        opened.close()


def national(e164: str) -> str:
    """What ``number_format = "national"`` makes of a Belgian number."""
    assert e164.startswith("+32")
    return "0" + e164[3:]


def test_the_seed_writes_the_book_once(store: Store) -> None:
    first = seed(store, NOW)
    again = seed(store, NOW)
    listed = store.agreements.list_agreements()
    assert first["agreements"] == len(BOOK) == len(listed) >= 12
    assert "agreements" not in again  # a kept data folder is not seeded twice
    assert {a["kind"] for a in listed} >= {"callback", "documentation", "technician"}


def test_the_book_has_due_later_overdue_and_flagged_agreements(store: Store) -> None:
    seed(store, NOW)
    listed = store.agreements.list_agreements()
    callbacks = [a for a in listed if a["kind"] == "callback" and a["status"] == "open"]
    due = [datetime.fromisoformat(a["next_attempt_at"]) for a in callbacks]
    assert sum(d <= NOW for d in due) >= 6
    assert sum(NOW < d < NOW + timedelta(hours=3) for d in due) >= 2
    overdue = store.agreements.list_agreements(status="open", due="overdue", now=NOW)
    assert [a["kind"] for a in overdue] == ["documentation"]
    (flagged,) = [a for a in listed if a["flagged"]]
    assert (flagged["kind"], flagged["status"], flagged["next_attempt_at"]) == (
        "callback",
        "failed",
        None,
    )


def test_the_callbacks_due_now_meet_every_behaviour_of_the_simulated_pbx(store: Store) -> None:
    """Each due callback goes to a number the PSTN treats in a fixed way or to an owner
    whose phone does: together they cover every behaviour the simulator has for them."""
    seed(store, NOW)
    devices = {name.lower(): device for device, name in DEFAULT_OPERATORS}
    sim = SimulatedPBX(MemoryReactorClock(), seed=1)
    behaviours = set()
    for agreement in store.agreements.list_agreements(status="open"):
        due = agreement["next_attempt_at"]
        if agreement["kind"] != "callback" or datetime.fromisoformat(due) > NOW:
            continue
        number = national(agreement["callback_number"])
        behaviours.add("customer " + sim._callee_for(number).reply.kind)
        habit = OPERATOR_HABITS.get(devices.get(agreement["owner"] or "", ""))
        if habit:
            behaviours.add("operator " + "/".join(r.kind for r in habit))
    customers = {"customer " + c.reply.kind for c in CALLBACK_NUMBERS.values()}
    operators = {"operator " + "/".join(r.kind for r in h) for h in OPERATOR_HABITS.values()}
    assert behaviours == customers | operators | {"customer answer"}


def test_the_outcome_customers_have_the_simulators_numbers(store: Store) -> None:
    seed(store, NOW)
    for number, name, _ in CALLBACK_CUSTOMERS:
        assert number in CALLBACK_NUMBERS
        found = store.customers.customer_for_number(number)
        assert found is not None and found["name"] == name
        assert national(normalize_number(number) or "") == number


def test_the_demo_dials_at_any_hour_and_retries_within_minutes() -> None:
    config = demo_config("sqlite:///unused.sqlite3", 8080, 5038, "secret")
    dialer = config.dialer
    policy = dialer.policy()
    assert dialer.enabled and dialer.context == "callback"
    assert policy.hours == ((((0, 24 * 60),),) * 7)
    assert NOW.date() not in policy.holidays  # Christmas dials too
    assert max(dialer.retry_seconds) <= 300 and dialer.owner_grace_seconds <= 300


def test_the_screens_offer_the_reasons_the_simulated_operators_pause_with() -> None:
    config = demo_config("sqlite:///unused.sqlite3", 8080, 5038, "secret")
    assert config.queues.pause_reasons == PAUSE_REASONS
    assert config.queues.pause_reasons != QueuesConfig().pause_reasons  # not the default


def test_the_habits_reach_the_simulated_phones() -> None:
    sim = SimulatedPBX(MemoryReactorClock(), seed=1)
    teach_habits(sim)
    for device, replies in OPERATOR_HABITS.items():
        assert [sim._callback_reply(device).kind for _ in replies] == [r.kind for r in replies]
