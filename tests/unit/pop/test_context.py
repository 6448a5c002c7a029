"""What a pop shows, read from the real store (SQLite and PostgreSQL): customer, contracts
valid today, history with notes, open agreements, latest scripts, the upsell hint, and the
call record id that the record writer then shares.

The tests marked ``@every_backend`` are the contract of the pop's port
(``pop/ports.PopContextRead``): they run on the memory twin too."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from cti_bridge.calls.events import Direction, Outcome
from cti_bridge.pop import ContextRequest, PopContextBuilder
from cti_bridge.pop.context import involved_in
from cti_bridge.store import Store
from cti_bridge.store.models import CallRecord
from cti_bridge.testing.store import START, CallBuilder, FakeTime, queue_call_answered
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

TODAY = date(2026, 11, 27)  # START in Brussels
ANNA, BART = "Local/1001@agents", "Local/1002@agents"


@pytest.fixture
def helpdesk(store: Store) -> dict[str, Any]:
    accounts, customers = store.accounts, store.customers
    anna = accounts.add_operator("anna", role="operator", password="anna-secret", devices=[ANNA])
    accounts.add_operator("bart", role="operator", password="bart-secret", devices=[BART])
    router = customers.add_product("RTR-200", "Router RTR-200")
    boiler = customers.add_product("HB-9", "Boiler HB-9")
    spare = customers.add_product("SPARE", "Not owned")
    jan = customers.add_customer(
        "Jan Peeters",
        numbers=["050 12 34 56", "+32 470 12 34 56"],
        company="Peeters Installaties",
        language="nl",
        knowledge_level="expert",
        tier="premium",
        external_ref="CRM-1",
    )
    customers.give_product(jan, router, serial="SN-1")
    customers.add_contract(  # valid, ends in 12 days: the upsell
        jan,
        valid_from=TODAY - timedelta(days=300),
        valid_until=TODAY + timedelta(days=12),
        covered=["phone", "repair"],
        product_id=router,
        service_level_hours=4,
        reference="C-1",
    )
    customers.add_contract(  # valid, open-ended, all products
        jan, valid_from=TODAY - timedelta(days=10), covered=["phone"], reference="C-2"
    )
    customers.add_contract(  # expired: shown, not valid today
        jan,
        valid_from=TODAY - timedelta(days=800),
        valid_until=TODAY - timedelta(days=400),
        covered=["technician"],
        product_id=boiler,
        reference="C-0",
    )
    customers.add_script_version(router, "no-internet", title="No internet v1", body="old")
    customers.add_script_version(router, "no-internet", title="No internet v2", body="new")
    customers.add_script_version(router, "wifi", title="Wi-Fi", body="<b>as text</b>")
    customers.add_script_version(spare, "other", title="Not for Jan", body="x")
    deadline = datetime(2026, 11, 28, 12, tzinfo=UTC)
    open_one = store.agreements.add_agreement(
        "callback", customer_id=jan, owner_operator_id=anna["id"], deadline=deadline
    )
    overdue = store.agreements.add_agreement(
        "technician", customer_id=jan, deadline=datetime(2026, 11, 20, tzinfo=UTC), notes="x" * 3000
    )
    done = store.agreements.add_agreement("repair", customer_id=jan)
    store.agreements.update_agreement(done, {"status": "done"})
    return {
        "jan": jan,
        "anna": anna,
        "router": router,
        "open": open_one,
        "overdue": overdue,
        "done": done,
    }


def builder(store: Store, fake_time: FakeTime) -> PopContextBuilder:
    return PopContextBuilder(store.pop_read, clock=fake_time, today=lambda: TODAY)


def request(call_builder: CallBuilder) -> ContextRequest:
    return ContextRequest.of(call_builder.call)


def past_call(store: Store, linkedid: str, at: float, number: str, notes: str | None) -> int:
    call = (
        CallBuilder(linkedid, at=at, number=number)
        .join_queue("support", at + 0.5)
        .ring(ANNA, at + 1, queue="support")
        .answer(ANNA, at + 3)
        .end(at + 60, Outcome.ANSWERED)
    )
    store.calls.apply(call.events)
    found = store.queries.find_call("main", linkedid)
    assert found is not None
    if notes is not None:
        store.queries.patch_call(
            found["id"], notes=notes, category="internet", disposition="solved"
        )
    return int(found["id"])


@every_backend
def test_known_caller_gets_everything(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    earlier = [
        past_call(store, f"old.{i}", START - 86400 * (i + 1), "050123456", f"note {i}")
        for i in range(12)
    ]
    context = builder(store, fake_time).build(
        request(CallBuilder("now.1", number="0032 50 12 34 56"))
    )

    assert context["caller"] == {
        "number": "+3250123456",
        "number_raw": "0032 50 12 34 56",
        "name": "Jan Peeters",
        "withheld": False,
    }
    customer = context["customer"]
    assert customer["id"] == helpdesk["jan"]
    assert customer["name"] == "Jan Peeters"
    assert customer["company"] == "Peeters Installaties"
    assert (customer["language"], customer["knowledge_level"], customer["tier"]) == (
        "nl",
        "expert",
        "premium",
    )
    assert customer["numbers"] == ["+3250123456", "+32470123456"]
    assert [p["code"] for p in customer["products"]] == ["RTR-200"]

    assert [c["reference"] for c in context["contracts"]] == ["C-1", "C-2", "C-0"]
    assert [c["valid_today"] for c in context["contracts"]] == [True, True, False]
    assert context["contracts"][0]["covered"] == ["phone", "repair"]
    assert context["contracts"][0]["service_level_hours"] == 4
    assert context["contracts"][0]["days_left"] == 12
    assert context["contracts"][1]["product"] is None  # covers every product
    assert context["in_contract"] is True
    assert context["upsell"]["contract"] == "C-1"
    assert context["upsell"]["days_left"] == 12
    assert "12 days" in context["upsell"]["text"]

    history = context["history"]
    assert [h["id"] for h in history] == earlier[:10]  # newest first, ten of them
    assert history[0]["notes"] == "note 0"
    assert history[0]["category"] == "internet"
    assert history[0]["disposition"] == "solved"
    assert history[0]["outcome"] == "answered"
    assert history[0]["answered_by"] == "anna"

    assert [a["id"] for a in context["agreements"]] == [helpdesk["overdue"], helpdesk["open"]]
    overdue, upcoming = context["agreements"]
    assert overdue["overdue"] is True and upcoming["overdue"] is False
    assert upcoming["owner"] == "anna"
    assert upcoming["deadline"] == "2026-11-28T12:00:00.000Z"
    assert overdue["notes_truncated"] is True and len(overdue["notes"]) == 1000

    scripts = {(s["name"], s["version"]): s for s in context["scripts"]}
    assert set(scripts) == {("no-internet", 2), ("wifi", 1)}
    assert scripts[("no-internet", 2)]["body"] == "new"
    assert scripts[("wifi", 1)]["body"] == "<b>as text</b>"
    assert context["agreement"] is None
    assert context["degraded"] is False


@every_backend
def test_history_finds_calls_from_any_of_the_customers_numbers(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    mobile = past_call(store, "old.mobile", START - 3600, "0470123456", "from the mobile")
    context = builder(store, fake_time).build(request(CallBuilder("now.2", number="050123456")))
    assert [h["id"] for h in context["history"]] == [mobile]


@every_backend
def test_unknown_number_pops_with_its_earlier_calls(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    earlier = past_call(store, "old.unknown", START - 3600, "+32 9 234 56 78", "who was it?")
    past_call(store, "old.jan", START - 7200, "050123456", "Jan's")
    store.agreements.add_agreement("callback", callback_number="092345678")
    context = builder(store, fake_time).build(request(CallBuilder("now.3", number="092345678")))
    assert context["customer"] is None
    assert context["contracts"] == [] and context["in_contract"] is False
    assert context["caller"]["number"] == "+3292345678"
    assert [h["id"] for h in context["history"]] == [earlier]
    assert [a["callback_number"] for a in context["agreements"]] == ["+3292345678"]
    assert context["scripts"] == [] and context["upsell"] is None


@every_backend
@pytest.mark.parametrize("raw", ["anonymous", "<unknown>", None])
def test_withheld_caller_has_no_history_of_other_withheld_callers(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any], raw: str | None
) -> None:
    store.calls.apply(CallBuilder("old.anon", number="anonymous", withheld=True).events)
    context = builder(store, fake_time).build(
        request(CallBuilder("now.4", number=raw, name=None, withheld=True))
    )
    assert context["caller"]["withheld"] is True
    assert context["caller"]["number"] is None
    assert context["history"] == [] and context["customer"] is None


@every_backend
def test_callback_pops_with_its_agreement_and_that_customer(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    call = CallBuilder("cb.1", direction=Direction.OUTBOUND, number="0499999999", name="Terugbel")
    call.call = replace(
        call.call, agreement_id=str(helpdesk["open"]), variables={"CTI_ATTEMPT": "2"}
    )
    context = builder(store, fake_time).build(request(call))
    assert context["agreement"]["id"] == helpdesk["open"]
    assert context["agreement"]["kind"] == "callback"
    assert context["agreement"]["attempt"] == 2  # which attempt rings (CTI_ATTEMPT)
    assert context["customer"]["id"] == helpdesk["jan"]  # not the number's (nobody's)


@every_backend
@pytest.mark.parametrize("ref", ["999999", "42abc", "1" * 30])
def test_unknown_or_bogus_agreement_refs_are_ignored(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any], ref: str
) -> None:
    call = CallBuilder("cb.2", direction=Direction.OUTBOUND)
    call.call = replace(call.call, agreement_id=ref, variables={"CTI_ATTEMPT": ref})
    context = builder(store, fake_time).build(request(call))
    assert context["agreement"] is None
    assert context["customer"]["id"] == helpdesk["jan"]  # by the number


def test_the_pop_and_the_record_writer_share_one_call_row(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    call = queue_call_answered("share.1")
    # The pop comes first: it creates the row, the writer merges into it.
    context = builder(store, fake_time).build(ContextRequest.of(call.events[2].call))
    store.calls.apply(call.events)
    record = store.queries.find_call("main", "share.1")
    assert record is not None and record["id"] == context["call_id"]
    assert record["answered_by"] == "anna" and record["outcome"] == "answered"
    assert record["customer_id"] == helpdesk["jan"]
    # The writer first, then the pop (and a second pop of the same call): the same row.
    later = CallBuilder("share.2").ring(ANNA, START + 1).answer(ANNA, START + 2)
    store.calls.apply(later.events)
    first = builder(store, fake_time).build(request(later))
    again = builder(store, fake_time).build(request(later))
    assert first["call_id"] == again["call_id"] == store.queries.find_call("main", "share.2")["id"]  # type: ignore[index]
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallRecord)) == 2


@every_backend
def test_the_current_call_is_not_in_its_own_history(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    current = CallBuilder("cur.1", number="050123456").ring(ANNA, START + 1)
    store.calls.apply(current.events)
    context = builder(store, fake_time).build(request(current))
    assert context["call_id"] not in [h["id"] for h in context["history"]]
    assert context["history"] == []


@every_backend
def test_no_contract_valid_today_means_out_of_contract(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    lapsed = store.customers.add_customer("Lapsed", numbers=["011223344"])
    store.customers.add_contract(
        lapsed,
        valid_from=TODAY - timedelta(days=100),
        valid_until=TODAY - timedelta(days=1),
        covered=["phone"],
        reference="C-LAPSED",
    )
    store.customers.add_contract(
        lapsed, valid_from=TODAY + timedelta(days=1), covered=["phone"], reference="C-FUTURE"
    )
    context = builder(store, fake_time).build(request(CallBuilder("oc.1", number="011223344")))
    assert context["in_contract"] is False
    assert [c["valid_today"] for c in context["contracts"]] == [False, False]
    assert context["upsell"] is None  # nothing valid to renew


@every_backend
def test_contract_ending_today_is_still_valid_and_urgent(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    last_day = store.customers.add_customer("Last day", numbers=["056123456"])
    store.customers.add_contract(
        last_day, valid_from=TODAY - timedelta(days=365), valid_until=TODAY, covered=["phone"]
    )
    context = builder(store, fake_time).build(request(CallBuilder("ld.1", number="056123456")))
    assert context["in_contract"] is True
    assert context["upsell"]["days_left"] == 0
    assert "ends today" in context["upsell"]["text"]


@every_backend
def test_hostile_caller_name_is_kept_as_text(store: Store, fake_time: FakeTime) -> None:
    name = "<script>alert(1)</script>\x00\r\nEvent: Hangup"
    context = builder(store, fake_time).build(request(CallBuilder("h.1", name=name)))
    assert context["caller"]["name"] == "<script>alert(1)</script>\ufffd\r\nEvent: Hangup"


@every_backend
def test_customer_context_reads_like_a_pop(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    past = past_call(store, "old.card", START - 3600, "0470123456", "card note")
    built = builder(store, fake_time)
    card = built.customer_context(helpdesk["jan"])
    assert card is not None
    pop = built.build(request(CallBuilder("now.card", number="050123456")))
    for key in ("customer", "contracts", "in_contract", "agreements", "scripts", "upsell"):
        assert card[key] == pop[key], key
    assert [h["id"] for h in card["history"]] == [past]
    assert built.customer_context(999_999) is None


# -- how the context is read ------------------------------------------------------------------


@every_backend
def test_history_is_the_newest_calls_of_the_customer_and_of_all_their_numbers(
    store: Store, fake_time: FakeTime
) -> None:
    lines = ["050111111", "050222222", "050333333", "050444444", "050555555"]
    # Recorded before the customer was imported: these calls have no customer id, only
    # the number - among them the fourth and fifth numbers, past the per-number reads.
    before = [
        past_call(store, f"pre.{i}", START - 86400 * (20 - i), lines[i], None) for i in range(5)
    ]
    store.customers.add_customer("Many lines", numbers=lines)
    after = [
        past_call(store, f"post.{i}", START - 86400 * (10 - i), lines[i % 2], None)
        for i in range(8)
    ]
    unrelated = past_call(store, "other.1", START - 3600, "050999999", None)
    context = builder(store, fake_time).build(request(CallBuilder("now.m", number=lines[0])))
    newest_first = list(reversed(before + after))
    assert [h["id"] for h in context["history"]] == newest_first[:10]
    assert unrelated not in [h["id"] for h in context["history"]]
    assert context["customer"]["numbers"] == [f"+32{n[1:]}" for n in lines]


def test_a_pop_is_one_read_and_at_most_one_write(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []  # what the database driver ran, transaction control aside

    def seen(sql: str) -> None:
        first = sql.split(None, 1)[0].upper()
        if first not in ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", ";"):  # (";": pool ping)
            statements.append(first)

    if store.engine.dialect.name == "sqlite":
        event.listen(store.engine, "connect", lambda driver, _: driver.set_trace_callback(seen))
        store.engine.dispose()
    else:
        execute = psycopg.Cursor.execute

        def traced(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen(str(query))
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", traced)
    built = builder(store, fake_time)
    call = request(CallBuilder("one.1", number="050123456"))
    first = built.build(call)
    assert statements == ["WITH", "INSERT"]  # the whole context, then the call's row
    statements.clear()
    again = built.build(call)
    assert statements == ["WITH"]  # the row exists: nothing to write
    assert first["call_id"] == again["call_id"] is not None
    assert first["customer"]["id"] == helpdesk["jan"]


def test_a_row_created_between_the_read_and_the_insert_is_found(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    call = CallBuilder("race.1").ring(ANNA, START + 1)
    store.calls.apply(call.events)  # the writer got there first...
    built = builder(store, fake_time)
    read = store.pop_read._read
    # ... but after the pop's read looked.
    monkeypatch.setattr(store.pop_read, "_read", lambda c, p: {**read(c, p), "call_id": None})
    context = built.build(request(call))
    assert context["call_id"] == store.queries.find_call("main", "race.1")["id"]  # type: ignore[index]
    assert context["call_id_pending"] is False


def test_a_live_call_of_the_customer_is_not_history_until_it_ends(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    """A second line of the same customer, ringing a colleague: nobody's history yet, and
    not every operator's to see (docs/security.md); once it ended, it is."""
    second = CallBuilder("second.line", number="050123456").ring(ANNA, START + 1)
    store.calls.apply(second.events)
    built = PopContextBuilder(store.pop_read, clock=fake_time, today=lambda: TODAY)
    pop = request(CallBuilder("first.line", number="050123456"))
    assert [h["id"] for h in built.build(pop)["history"] if h["type"] == "call"] == []
    customer = built.customer_context(helpdesk["jan"])
    assert customer is not None and customer["history"] == []
    store.calls.apply(second.end(START + 9, Outcome.MISSED).events)
    (item,) = built.build(pop)["history"]
    assert (item["type"], item["outcome"]) == ("call", "missed")
    customer = built.customer_context(helpdesk["jan"])
    assert customer is not None and [h["id"] for h in customer["history"]] == [item["id"]]


# SQLite only: PostgreSQL locks rows, not the database.
@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def test_a_busy_write_lock_costs_the_pop_its_id_for_a_moment_not_its_customer(
    store: Store, store_url: str, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    assert store_url.startswith("sqlite")
    existing = CallBuilder("lock.0", number="050123456").ring(ANNA, START + 1)
    existing.end(START + 5, Outcome.MISSED)  # history: an ended call
    store.calls.apply(existing.events)
    other = sqlite3.connect(make_url(store_url).database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the record writer, in the middle of a batch
    try:
        built = PopContextBuilder(
            store.pop_read, clock=fake_time, today=lambda: TODAY, lock_wait=0.05
        )
        call = request(CallBuilder("lock.1", number="050123456"))
        started = time.monotonic()
        context = built.build(call)
        waited = time.monotonic() - started
        assert context["call_id"] is None and context["call_id_pending"] is True
        assert context["degraded"] is False
        assert context["customer"]["id"] == helpdesk["jan"]
        assert len(context["history"]) == 1 and context["contracts"]
        assert waited < 2.5  # its own short wait, not the store's 5 s
        # A call whose row exists needs no lock: its pop has its id.
        assert built.build(request(existing))["call_id"] is not None
        with store.engine.connect() as connection:  # the store's own wait is back
            timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert timeout == 5000
    finally:
        other.execute("ROLLBACK")
        other.close()
    call_id = built.call_id(call)  # what the service asks once the pop is out
    assert call_id is not None
    store.calls.apply(CallBuilder("lock.1", number="050123456").ring(ANNA, START + 1).events)
    assert store.queries.find_call("main", "lock.1")["id"] == call_id  # type: ignore[index]
    assert built.call_id(call) == call_id


def test_times_are_utc_whatever_the_database_sessions_time_zone(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    postgres = store.engine.dialect.name == "postgresql"

    def kathmandu(dbapi_connection: Any, record: Any) -> None:
        if postgres:  # +05:45: any slip in reading offsets shows
            cursor = dbapi_connection.cursor()
            cursor.execute("SET TIME ZONE 'Asia/Kathmandu'")
            cursor.close()
            dbapi_connection.commit()

    past = past_call(store, "tz.1", START - 86400 + 0.25, "050123456", "in Kathmandu")
    event.listen(store.engine, "connect", kathmandu)
    store.engine.dispose()
    if postgres:
        with store.engine.connect() as connection:
            zone = connection.exec_driver_sql("SHOW TIME ZONE").scalar()
        assert zone == "Asia/Kathmandu"
    context = builder(store, fake_time).build(request(CallBuilder("tz.2", number="050123456")))
    assert [(h["id"], h["started_at"]) for h in context["history"]] == [
        (past, "2026-11-25T23:23:03.250Z")
    ]
    upcoming = next(a for a in context["agreements"] if a["id"] == helpdesk["open"])
    assert upcoming["deadline"] == "2026-11-28T12:00:00.000Z"
    assert upcoming["created_at"] == "2026-11-26T23:23:03.000Z"


def test_contracts_are_judged_on_the_sites_day_not_the_servers() -> None:
    """START (Thursday 26 November, 23:23 UTC) is Friday in Brussels and in Auckland,
    still Thursday in New York: the site's zone says which day a contract must cover."""
    from cti_bridge.pop.context import local_today

    clock = lambda: START  # noqa: E731
    assert local_today(clock, "Europe/Brussels")() == date(2026, 11, 27)
    assert local_today(clock, "America/New_York")() == date(2026, 11, 26)
    assert local_today(clock, "Pacific/Auckland")() == date(2026, 11, 27)
    assert local_today(lambda: START + 3600, "Pacific/Auckland")() == date(2026, 11, 27)
    assert local_today(lambda: START - 12 * 3600, "Pacific/Auckland")() == date(2026, 11, 27)
    assert local_today(lambda: START - 13 * 3600, "Pacific/Auckland")() == date(2026, 11, 26)


def test_with_own_history_the_context_marks_who_may_see_each_earlier_call(
    store: Store, fake_time: FakeTime, helpdesk: dict[str, Any]
) -> None:
    earlier = (
        CallBuilder("earlier", number="050123456")
        .ring(ANNA, START + 1)
        .answer(ANNA, START + 2)
        .end(START + 9, Outcome.ANSWERED)
    )
    store.calls.apply(earlier.events)
    built = PopContextBuilder(
        store.pop_read,
        clock=fake_time,
        today=lambda: TODAY,
        seen_by=lambda call_id: involved_in(store, call_id),
    )
    (item,) = built.build(request(CallBuilder("now", number="050123456")))["history"]
    assert item["seen_by"] == ["anna"]
    plain = PopContextBuilder(store.pop_read, clock=fake_time, today=lambda: TODAY)
    (item,) = plain.build(request(CallBuilder("now", number="050123456")))["history"]
    assert "seen_by" not in item  # "shared": nothing to mark
