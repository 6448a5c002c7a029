"""The consumer (missed/service.py) on the memory store and a Clock: calls in, agreements
out, in order, and a failing store that never reaches the call pipeline."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from cti_bridge.backoff import Backoff
from cti_bridge.calls.events import HungUpBy, Outcome
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.missed.service import MissedCallService
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.store.numbers import normalize_number
from cti_bridge.testing.store import START, CallBuilder
from tests.support.calls_facts import messages

AGENT = "Local/1001@agents"
MARIE = "+3250123456"
#: The deadline stand-in: the call's moment plus the hours, counted plainly.
HOURS = 3600.0


def plain_deadline(start: datetime, hours: float) -> datetime:
    return datetime.fromtimestamp(start.timestamp() + hours * HOURS, UTC)


def settings(queue: str) -> tuple[bool, float, float]:
    return (queue == "support", 30.0, 4.0)


def run_now(work: Callable[[], Any]) -> Deferred[Any]:
    return maybeDeferred(work)


def service(store: Any, clock: Clock, run: Any = run_now, **kw: Any) -> MissedCallService:
    return MissedCallService(
        store.missed,
        store.callers,
        settings=settings,
        normalize=partial(normalize_number, region="BE"),
        deadline=plain_deadline,
        clock=clock,
        run=run,
        backoff=Backoff(initial=1.0, cap=8.0, jitter=0.0, rng=random.Random(1)),
        **kw,
    )


def abandon(linkedid: str, at: float, *, wait: float = 45.0, number: str = "050123456") -> Any:
    return (
        CallBuilder(linkedid, at=at, number=number)
        .join_queue("support", at + 1)
        .end(at + 1 + wait, Outcome.ABANDONED, wait_ended_at=at + 1 + wait)
    )


def answer(linkedid: str, at: float, number: str = "+32 50 12 34 56") -> Any:
    return (
        CallBuilder(linkedid, at=at, number=number)
        .join_queue("support", at + 1)
        .ring(AGENT, at + 2, queue="support")
        .answer(AGENT, at + 5)
        .end(at + 65, Outcome.ANSWERED, hung_up_by=HungUpBy.OPERATOR)
    )


def feed(consumer: Callable[[Any], None], *calls: Any) -> None:
    for call in calls:
        for event in call.events:
            consumer(event)


@pytest.fixture
def store() -> MemoryStore:
    return open_memory_store()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_abandons_make_one_callback_and_an_answer_keeps_it(store: MemoryStore) -> None:
    marie = store.customers.add_customer("Marie Dubois", numbers=[MARIE])
    missed = service(store, Clock())
    feed(missed.submit, abandon("a.1", START), abandon("a.2", START + 300))
    (made,) = store.agreements.open_agreements(number=MARIE)
    assert made["customer_id"] == marie
    assert made["origin"] == "missed_call"
    assert made["due_at"] == iso(START + 46)  # when Marie gave up
    assert made["deadline"] == iso(START + 46 + 4 * HOURS)
    assert [e["kind"] for e in made["history"]] == ["created", "missed_call"]
    feed(missed.submit, answer("c.1", START + 900))
    assert store.agreements.open_agreements(number=MARIE) == []
    closed = store.agreements.get_agreement(made["id"])
    assert closed is not None and closed["disposition"] == "solved_on_inbound_call"
    assert closed["closed_at"] == iso(START + 905)  # when she was answered
    assert missed.counts() == {
        "created": 1,
        "joined": 1,
        "unchanged": 0,
        "resolved": 1,
        "retries": 0,
        "failed": 0,
        "dropped": 0,
    }


def test_a_new_callback_and_only_a_new_one_tells_the_listeners(store: MemoryStore) -> None:
    missed = service(store, Clock())
    told: list[str] = []
    missed.agreement_listeners.append(lambda: told.append("first"))

    def broken() -> None:
        raise RuntimeError("a listener bug")

    missed.agreement_listeners.append(broken)
    missed.agreement_listeners.append(lambda: told.append("last"))
    feed(missed.submit, abandon("a.1", START))
    assert told == ["first", "last"]  # the broken one costs the others nothing
    feed(missed.submit, abandon("a.2", START + 300), answer("c.1", START + 900))
    assert told == ["first", "last"]  # joined and resolved: nothing new to dial
    assert missed.counts()["created"] == 1 and missed.pending == 0


def test_calls_that_owe_nothing_never_reach_the_store() -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the store was asked {name}")

    book = Untouchable()
    missed = MissedCallService(
        book,
        book,
        settings=settings,
        normalize=partial(normalize_number, region="BE"),
        deadline=plain_deadline,
        clock=Clock(),
        run=run_now,
    )
    short = abandon("a.1", START, wait=10)
    withheld = CallBuilder("a.2", number="anonymous", withheld=True).join_queue("support", START)
    withheld.end(START + 300, Outcome.ABANDONED, wait_ended_at=START + 300)
    elsewhere = CallBuilder("a.3").join_queue("billing", START)
    elsewhere.end(START + 300, Outcome.ABANDONED, wait_ended_at=START + 300)
    feed(missed.submit, short, withheld, elsewhere)
    assert missed.pending == 0 and missed.counts()["failed"] == 0


class Flaky:
    """A book that fails its first ``failures`` calls, then is the memory store's."""

    def __init__(self, store: MemoryStore, failures: int) -> None:
        self.store, self.failures, self.calls = store, failures, 0

    def record_missed_call(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unreachable")
        return self.store.missed.record_missed_call(*args, **kw)

    def resolve_by_call(self, *args: Any) -> list[int]:
        return self.store.missed.resolve_by_call(*args)


def flaky_service(store: MemoryStore, clock: Clock, failures: int) -> MissedCallService:
    return MissedCallService(
        Flaky(store, failures),
        store.callers,
        settings=settings,
        normalize=partial(normalize_number, region="BE"),
        deadline=plain_deadline,
        clock=clock,
        run=run_now,
        max_tries=4,
        backoff=Backoff(initial=1.0, cap=8.0, jitter=0.0, rng=random.Random(1)),
    )


def test_a_failing_store_is_retried_with_back_off_and_the_order_kept(store: MemoryStore) -> None:
    clock = Clock()
    missed = flaky_service(store, clock, failures=2)
    feed(missed.submit, abandon("a.1", START), answer("c.1", START + 900))
    assert store.agreements.list_agreements() == []
    assert missed.status()["status"] == "degraded"
    assert missed.pending == 2  # the answer waits behind the abandon
    clock.advance(1.0)  # first retry after 1 s: fails again
    assert store.agreements.list_agreements() == []
    clock.advance(1.5)
    assert store.agreements.list_agreements() == []
    clock.advance(0.5)  # second retry after 2 s more: the store is back
    (made,) = store.agreements.list_agreements()
    assert made["status"] == "done"  # made, then kept: in the calls' order
    assert missed.status()["status"] == "ok" and missed.pending == 0
    assert missed.counts()["retries"] == 2


def test_work_the_store_keeps_refusing_is_set_aside(store: MemoryStore) -> None:
    clock = Clock()
    missed = flaky_service(store, clock, failures=4)
    feed(missed.submit, abandon("a.1", START), abandon("b.1", START, number="0470123456"))
    clock.pump([1.0, 2.0, 4.0])  # tries 2, 3, 4 of a.1: all refused
    assert missed.counts()["failed"] == 1
    (made,) = store.agreements.list_agreements()  # b.1 went on after it
    assert made["callback_number"] == "+32470123456"
    assert missed.pending == 0 and missed.status()["status"] == "ok"


def test_a_store_that_raises_never_reaches_the_pipeline(store: MemoryStore) -> None:
    """The pipeline isolates its consumers anyway; this one does not even raise."""
    pipeline = CallPipeline(CallModel("main"))
    missed = flaky_service(store, Clock(), failures=100)
    pipeline.add_consumer(missed.submit)
    for i, msg in enumerate(messages("02-queue-abandoned.ami")):  # Marie waits 86 "s"
        pipeline.ami_event(msg, START + i)
    assert pipeline.calls_ended == {"abandoned": 1}
    assert pipeline.consumer_errors == 0 and pipeline.model_errors == 0
    assert missed.pending == 1 and missed.status()["status"] == "degraded"


def test_one_job_at_a_time_and_a_bounded_backlog(store: MemoryStore) -> None:
    started: list[Deferred[Any]] = []
    works: list[Callable[[], Any]] = []

    def manual(work: Callable[[], Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        started.append(d)
        works.append(work)
        return d

    missed = service(store, Clock(), run=manual, max_pending=3)
    feed(missed.submit, abandon("a.1", START), abandon("a.2", START + 60))
    feed(missed.submit, abandon("a.3", START + 120))  # a.1 runs, a.2 and a.3 wait
    assert len(started) == 1 and missed.pending == 3
    feed(missed.submit, abandon("a.4", START + 180))  # full
    assert missed.counts()["dropped"] == 1
    flushed = missed.flush()
    for _ in range(3):
        started[-1].callback(works[-1]())
    assert flushed.called
    (made,) = store.agreements.list_agreements()
    linkedids = [e["details"]["linkedid"] for e in made["history"]]
    assert linkedids == ["a.1", "a.2", "a.3"]


def test_stop_waits_for_the_queue_then_lets_go(store: MemoryStore) -> None:
    clock = Clock()
    missed = flaky_service(store, clock, failures=100)
    feed(missed.submit, abandon("a.1", START))
    stopped = missed.stop(timeout=5.0)
    assert not stopped.called
    feed(missed.submit, abandon("a.2", START + 60))  # refused once stopping
    assert missed.counts()["dropped"] == 1
    clock.advance(5.0)
    assert stopped.called
    assert not clock.getDelayedCalls()  # no retry left behind


def test_after_its_deadline_stop_starts_nothing_new(store: MemoryStore) -> None:
    started: list[Deferred[Any]] = []

    def manual(work: Callable[[], Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        started.append(d)
        return d

    clock = Clock()
    missed = service(store, clock, run=manual)
    feed(missed.submit, abandon("a.1", START), abandon("a.2", START + 60))
    stopped = missed.stop(timeout=5.0)
    clock.advance(5.0)  # a.1 is still in the pool: the store may close now
    assert stopped.called
    started[0].callback(("created", [1]))  # a.1 comes back late
    assert len(started) == 1  # a.2 never went to a store that is closing
