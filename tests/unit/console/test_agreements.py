"""The console's agreements (console/service.py, rules.py) on a real store: the default
deadline (the customer's service level in the site's business hours), queue and due time
on POST, disposition and queue on PATCH with the closing rules, the flagged and kind
filters, and the wiring that hands the console the site's week. The store work runs at
once (a runner that calls it), so no reactor is involved."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from cti_bridge.app.config import DialerConfig, parse_config
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.callbacks import AGREEMENTS_CHANGED
from cti_bridge.console.rules import due_from, flagged_filter, service_hours, unowned_filter
from cti_bridge.console.service import Console
from cti_bridge.console.wiring import install
from cti_bridge.store import Store
from cti_bridge.testing.store import START, FakeTime, queue_call_answered
from cti_bridge.web.auth import Forbidden, Principal
from cti_bridge.web.http import BadRequest
from tests.support.web_requests import at_once

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
#: The console reads through the store's ports: its twin and SQLite answer alike.
on_stores = pytest.mark.parametrize("store_db", ["memory", "sqlite"], indirect=True)

T = TypeVar("T")
BRUSSELS = ZoneInfo("Europe/Brussels")
# START is Thursday 26 November 2026, 23:23 UTC: Friday 00:23 in Brussels, before opening.
FRIDAY = date(2026, 11, 27)
POLICY = DialerConfig().policy()  # Monday-Friday 08:00-18:00, Brussels, BE holidays


def local(text: str) -> str:
    """A Brussels wall time as the API writes it (ISO 8601 UTC, milliseconds)."""
    moment = datetime.fromisoformat(text).replace(tzinfo=BRUSSELS).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result(deferred: Deferred[Any]) -> Any:
    """What an already fired Deferred holds; its failure raised."""
    found: list[Any] = []
    deferred.addBoth(found.append)
    assert found, "the work did not finish at once"
    if isinstance(found[0], Failure):
        found[0].raiseException()
    return found[0]


class Desk:
    """Anna and Bart (operators) and Sofie (supervisor) at one console."""

    def __init__(self, store: Store, fake_time: FakeTime, default_hours: float = 3.0) -> None:
        self.store = store
        self.console = Console(
            store, at_once, clock=fake_time, policy=POLICY, default_service_hours=default_hours
        )
        self.people = {
            name: Principal(store.accounts.add_operator(name, role=role, password="pw-" * 4).id,
                            name, role)
            for name, role in (("anna", "operator"), ("bart", "operator"),
                               ("sofie", "supervisor"))
        }  # fmt: skip

    def post(self, who: str, body: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = result(self.console.create_agreement(self.people[who], body))
        return made

    def patch(self, who: str, agreement_id: int, body: dict[str, Any]) -> dict[str, Any]:
        changed: dict[str, Any] = result(
            self.console.patch_agreement(self.people[who], agreement_id, body)
        )
        return changed

    def list(self, who: str, **filters: Any) -> list[int]:
        values = {"status": None, "owner": None, "due": None, "customer_id": None, "limit": 100}
        rows = result(self.console.list_agreements(self.people[who], **(values | filters)))
        return [a["id"] for a in rows]


@pytest.fixture
def desk(store: Store, fake_time: FakeTime) -> Desk:
    return Desk(store, fake_time)


def contract(level: int | None, since: int, until: int | None) -> dict[str, Any]:
    """A contract valid from ``since`` days around Friday to ``until`` (None: open)."""
    return {
        "service_level_hours": level,
        "valid_from": (FRIDAY + timedelta(days=since)).isoformat(),
        "valid_until": None if until is None else (FRIDAY + timedelta(days=until)).isoformat(),
    }


@pytest.mark.parametrize(
    ("contracts", "deadline"),
    [
        ([], "2026-11-27 11:00"),  # no contract: the default 3 business hours
        ([contract(None, -30, None)], "2026-11-27 11:00"),  # a contract without a level
        ([contract(4, -30, None)], "2026-11-27 12:00"),
        ([contract(24, -30, 30), contract(4, -1, 0)], "2026-11-27 12:00"),  # the best one
        ([contract(24, -30, 30)], "2026-12-01 12:00"),  # Fri 10 h, Mon 10 h, Tue 4 h
        ([contract(24, -30, 30), contract(1, -400, -1)], "2026-12-01 12:00"),  # 1 h expired
        ([contract(24, -30, 30), contract(1, 1, None)], "2026-12-01 12:00"),  # 1 h from Sat
        ([contract(10, 0, 0)], "2026-11-27 18:00"),  # valid today only: today counts
    ],
)
@on_stores
def test_the_default_deadline_is_the_customers_service_level_in_business_hours(
    desk: Desk, contracts: list[dict[str, Any]], deadline: str
) -> None:
    customers = desk.store.customers
    jan = customers.add_customer("Jan", numbers=["050123456"])
    for c in contracts:
        customers.add_contract(
            jan,
            valid_from=date.fromisoformat(c["valid_from"]),
            valid_until=None if c["valid_until"] is None else date.fromisoformat(c["valid_until"]),
            covered=["phone"],
            service_level_hours=c["service_level_hours"],
        )
    made = desk.post("anna", {"kind": "technician", "customer_id": jan})
    assert made["deadline"] == local(deadline)
    no_customer = desk.post("anna", {"kind": "documentation"})
    assert no_customer["deadline"] == local("2026-11-27 11:00")


@on_stores
def test_a_given_deadline_stays_and_a_later_due_time_counts_from_then(desk: Desk) -> None:
    given = desk.post("anna", {"kind": "repair", "deadline": "2026-12-24T10:00:00Z"})
    assert given["deadline"] == "2026-12-24T10:00:00.000Z"
    later = desk.post(
        "anna",
        {"kind": "callback", "callback_number": "050123456", "due_at": "2026-11-30T09:00:00Z"},
    )  # Monday 10:00 in Brussels, plus 3 business hours
    assert later["deadline"] == local("2026-11-30 13:00")
    assert (later["due_at"], later["next_attempt_at"]) == ("2026-11-30T09:00:00.000Z",) * 2
    windowed = desk.post(
        "anna",
        {
            "kind": "callback",
            "callback_number": "050123456",
            "window_start": "2026-12-01T13:00:00Z",
            "window_end": "2026-12-01T16:00:00Z",
        },
    )  # due when the window opens: Tuesday 14:00, plus 3 business hours
    assert windowed["due_at"] == "2026-12-01T13:00:00.000Z"
    assert windowed["deadline"] == local("2026-12-01 17:00")


@on_stores
def test_post_takes_a_queue_and_a_call_gives_its_own(desk: Desk) -> None:
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456",
                              "queue": "sales"})  # fmt: skip
    assert made["queue"] == "sales" and made["origin"] == "operator"
    assert made["history"][0]["operator"] == "anna"
    desk.store.accounts.bind_device("anna", "Local/1001@agents")
    desk.store.calls.apply(queue_call_answered().events)  # Anna answered it in "support"
    call = desk.store.queries.find_call("main", "1795735383.330")
    assert call is not None
    from_call = desk.post("anna", {"kind": "callback", "call_id": call["id"]})
    assert from_call["queue"] == "support"
    assert from_call["callback_number"] == "+3250123456"
    mine = desk.post("anna", {"kind": "callback", "call_id": call["id"], "queue": "second"})
    assert mine["queue"] == "second"
    for body, field in (
        ({"kind": "repair", "due_at": "tomorrow"}, "due_at"),
        ({"kind": "repair", "queue": 7}, "queue"),
        ({"kind": "repair", "queue": "q" * 129}, "queue"),
    ):
        with pytest.raises(BadRequest, match=f"^{field}"):
            desk.post("anna", body)


@on_stores
def test_closing_a_callback_asks_for_a_disposition(desk: Desk, fake_time: FakeTime) -> None:
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})
    with pytest.raises(BadRequest, match=r"^disposition"):
        desk.patch("anna", made["id"], {"status": "done"})
    with pytest.raises(BadRequest, match=r"^disposition must be one of"):
        desk.patch("anna", made["id"], {"status": "done", "disposition": "whatever"})
    fake_time.advance(120)
    closed = desk.patch("anna", made["id"], {"status": "done", "disposition": "solved"})
    assert (closed["status"], closed["disposition"]) == ("done", "solved")
    assert closed["closed_at"] == "2026-11-26T23:25:03.000Z"
    assert closed["next_attempt_at"] is None
    assert closed["history"][-1] == {
        "at": "2026-11-26T23:25:03.000Z",
        "kind": "closed",
        "operator": "anna",
        "details": {"status": "done", "disposition": "solved"},
    }
    with pytest.raises(BadRequest, match=r"^status: the agreement is already done"):
        desk.patch("anna", made["id"], {"status": "cancelled"})
    other = desk.post("anna", {"kind": "repair"})
    assert desk.patch("anna", other["id"], {"status": "done"})["disposition"] is None


@on_stores
def test_patch_changes_the_queue_and_the_history_names_who(desk: Desk) -> None:
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456",
                              "queue": "support"})  # fmt: skip
    changed = desk.patch("sofie", made["id"], {"queue": "sales", "disposition": None})
    assert changed["queue"] == "sales"
    assert changed["history"][-1]["operator"] == "sofie"
    assert changed["history"][-1]["details"] == {"queue": ["support", "sales"]}
    cleared = desk.patch("anna", made["id"], {"queue": None})
    assert cleared["queue"] is None
    with pytest.raises(Forbidden):  # owner rules as they were: bart may not touch it
        desk.patch("bart", made["id"], {"queue": "mine"})
    with pytest.raises(BadRequest, match=r"^unknown field"):
        desk.patch("anna", made["id"], {"flagged": False})


@on_stores
def test_a_flagged_agreement_is_closed_by_a_supervisor(desk: Desk) -> None:
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})
    now = datetime.fromtimestamp(START, UTC)
    assert desk.store.agreements.flag_agreement(made["id"], "attempts_exhausted", now=now)
    closed = desk.patch(
        "sofie", made["id"], {"status": "cancelled", "disposition": "customer_unreachable"}
    )
    assert (closed["status"], closed["flagged"]) == ("cancelled", True)


@on_stores
def test_due_today_is_the_sites_day_not_the_servers(desk: Desk) -> None:
    """At START it is still Thursday in UTC (a server's zone here) but Friday in Brussels."""
    friday = desk.post("anna", {"kind": "repair", "deadline": local("2026-11-27 17:00")})["id"]
    desk.post("anna", {"kind": "repair", "deadline": local("2026-11-28 09:00")})  # Saturday
    thursday = desk.post("anna", {"kind": "repair", "deadline": "2026-11-26T22:30:00Z"})["id"]
    assert desk.list("anna", due="today") == [friday]
    assert desk.list("anna", due="overdue") == [thursday]  # 23:30 on Thursday in Brussels


@on_stores
def test_the_list_filters_flagged_and_kind(desk: Desk) -> None:
    now = datetime.fromtimestamp(START, UTC)
    call = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})["id"]
    repair = desk.post("anna", {"kind": "repair"})["id"]
    flagged = desk.post("bart", {"kind": "callback", "callback_number": "050123457"})["id"]
    desk.store.agreements.flag_agreement(flagged, "deadline_passed", now=now)
    assert desk.list("sofie", flagged="true") == [flagged]
    assert desk.list("sofie", flagged="false", kind="callback") == [call]
    assert desk.list("sofie", kind="repair") == [repair]
    assert desk.list("anna", kind="callback") == [call]  # an operator still sees their own
    assert desk.list("bart", flagged="true") == [flagged]
    with pytest.raises(BadRequest, match=r"^flagged"):
        desk.list("sofie", flagged="yes")
    with pytest.raises(BadRequest, match=r"^kind"):
        desk.list("sofie", kind="pizza")


@pytest.mark.parametrize(
    ("value", "meant"), [(None, None), ("", None), ("true", True), ("false", False)]
)
def test_the_flagged_filter_reads_true_and_false(value: str | None, meant: bool | None) -> None:
    assert flagged_filter(value) is meant


def test_service_hours_and_due_from_are_plain_rules() -> None:
    assert service_hours([contract(8, -1, None), contract(2, 0, 5)], FRIDAY, 9.0) == 2.0
    assert service_hours([contract(2, 1, 5)], FRIDAY, 9.0) == 9.0  # not valid yet
    assert service_hours([contract(2, -5, -1)], FRIDAY, 9.0) == 9.0  # over
    now = datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert due_from({"due_at": None, "window": None}, now) == now
    assert due_from({"due_at": now - timedelta(days=1), "window": None}, now) == now
    assert due_from({"due_at": now + timedelta(days=1), "window": None}, now) == now + timedelta(1)
    window = (now + timedelta(hours=2), now + timedelta(hours=3))
    assert due_from({"due_at": None, "window": window}, now) == window[0]


def test_the_wiring_hands_the_console_the_sites_week_and_default() -> None:
    config = parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0},
            "database": {"url": "sqlite://"},
            "bus": {"url": "memory://"},
            "dialer": {"timezone": "America/New_York", "holidays": "US",
                       "hours": {"sat": "10:00-14:00"}},
            "agreements": {"default_service_hours": 2},
        },
        source="test",
    )  # fmt: skip
    reactor = MemoryReactorClock()
    store = cast(  # the console only holds it until a request comes
        Store,
        SimpleNamespace(
            sessions=sessionmaker(create_engine("sqlite://")),
            accounts=None,
            pop_read=None,
            url="sqlite://",
            ping=lambda: None,
        ),
    )
    node = Node(config, reactor, store, MemoryBus(reactor), clients={}, pipelines={})
    install(node)
    console = node.part("console", Console)
    assert console.policy == config.dialer.policy()
    assert console.policy.timezone == "America/New_York"
    assert console.default_service_hours == 2
    told: list[str] = []
    node.listen(AGREEMENTS_CHANGED, lambda: told.append("changed"))
    console._agreements_changed()  # what making or changing one calls (tested above)
    assert told == ["changed"]


@on_stores
def test_the_operator_rung_for_the_last_attempt_reads_and_closes_the_callback(
    desk: Desk, fake_time: FakeTime
) -> None:
    # After the owner's grace the dialer rings any operator of the queue (here Bart):
    # the callback pops on his screen, and he must be able to read and close it.
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})
    bart = desk.people["bart"]
    with pytest.raises(Forbidden):
        result(desk.console.get_agreement(bart, made["id"]))
    now = datetime.fromtimestamp(fake_time(), UTC)
    assert desk.store.agreements.claim_attempt(
        made["id"], 1, now=now, operator="bart", node="n", pbx="main",
        channel_id="cti-callback-1", action_id="cti-originate-1",
    )  # fmt: skip
    assert result(desk.console.get_agreement(bart, made["id"]))["id"] == made["id"]
    closed = desk.patch("bart", made["id"], {"status": "done", "disposition": "solved"})
    assert (closed["status"], closed["history"][-1]["operator"]) == ("done", "bart")
    with pytest.raises(Forbidden):  # still only supervisors hand it to another owner
        desk.patch("bart", made["id"], {"owner": "bart"})


@on_stores
def test_making_or_changing_an_agreement_tells_the_listeners(desk: Desk) -> None:
    told: list[str] = []
    desk.console.agreement_listeners.append(lambda: told.append("changed"))
    made = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})
    assert told == ["changed"]
    desk.patch("anna", made["id"], {"notes": "after lunch"})
    assert told == ["changed", "changed"]
    with pytest.raises(BadRequest):
        desk.patch("anna", made["id"], {"status": "done"})  # no disposition: nothing changed
    assert told == ["changed", "changed"]


@on_stores
def test_agreements_nobody_owns_are_every_operators_pool(desk: Desk) -> None:
    mine = desk.post("anna", {"kind": "callback", "callback_number": "050123456"})["id"]
    made = desk.post("sofie", {"kind": "callback", "callback_number": "050123457"})
    pooled = desk.patch("sofie", made["id"], {"owner": None})  # as a missed call's is
    assert pooled["owner"] is None
    # Listed apart (an operator's own list stays theirs), read and taken by any operator.
    assert desk.list("bart", unowned=True) == [pooled["id"]]
    assert desk.list("anna", unowned=True) == [pooled["id"]]
    assert desk.list("anna") == [mine]
    assert desk.list("sofie", unowned=True) == [pooled["id"]]
    assert result(desk.console.get_agreement(desk.people["bart"], pooled["id"]))["owner"] is None
    with pytest.raises(BadRequest, match="exclude each other"):
        desk.list("sofie", unowned=True, owner="anna")
    with pytest.raises(Forbidden):  # taken for somebody else: a supervisor's decision
        desk.patch("anna", pooled["id"], {"owner": "bart"})
    taken = desk.patch("bart", pooled["id"], {"owner": "bart"})
    assert taken["owner"] == "bart" and taken["history"][-1]["operator"] == "bart"
    assert desk.list("anna", unowned=True) == []
    with pytest.raises(Forbidden):  # now Bart's, out of the pool
        result(desk.console.get_agreement(desk.people["anna"], pooled["id"]))
    with pytest.raises(Forbidden):
        desk.patch("anna", pooled["id"], {"owner": "anna"})
    with pytest.raises(Forbidden):  # and an operator does not hand their own to the pool
        desk.patch("anna", mine, {"owner": None})


@pytest.mark.parametrize(
    ("value", "meant"), [(None, False), ("", False), ("true", True), ("false", False)]
)
def test_the_unowned_filter_reads_true_and_false(value: str | None, meant: bool) -> None:
    assert unowned_filter(value) is meant
    with pytest.raises(BadRequest, match=r"^unowned must be true or false$"):
        unowned_filter("1")
