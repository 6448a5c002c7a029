"""The record writer does not starve a pop of its call id on SQLite (issue 13: under a
flood, pops went out with ``call_id`` null for a moment).

SQLite has one write lock and no queue for it; the writers of one process queue on a
lock of ours first (``store/db.py``), which now lets them in in the order they came, so
the record writer, committing a batch and asking again at once, no longer goes before a
pop that waited: a pop waits for at most the batch under way, and ``LOCK_WAIT`` (1 s)
is far above that.
"""

from __future__ import annotations

import threading
import time

import pytest

from cti_bridge.pop.context import LOCK_WAIT
from cti_bridge.store import Store
from cti_bridge.store.db import _FairLock
from cti_bridge.testing.store import START, CallBuilder, queue_call_answered

pytest_plugins = ["cti_bridge.testing.store_fixtures"]


def test_the_write_queue_lets_writers_in_in_the_order_they_came() -> None:
    """The record writer commits a batch and asks again at once; a pop that waited must
    come first (``threading.Lock`` gives no such promise: the thread that released it
    usually takes it again before a waiter wakes)."""
    queue = _FairLock()
    for _ in range(20):
        assert queue.acquire(timeout=1)  # the writer's batch
        order: list[str] = []

        def pop(order: list[str]) -> None:
            assert queue.acquire(timeout=5)
            order.append("pop")
            queue.release()

        waiter = threading.Thread(target=pop, args=(order,))
        waiter.start()
        while queue.waiting == 0:  # the pop waits
            time.sleep(0.001)
        queue.release()  # the batch committed ...
        assert queue.acquire(timeout=5)  # ... and the writer's next one asks at once
        order.append("batch")
        queue.release()
        waiter.join(5)
        assert order == ["pop", "batch"]
    assert not queue.locked()


def test_a_writer_that_waited_too_long_leaves_the_queue() -> None:
    queue = _FairLock()
    assert queue.acquire(timeout=1)
    assert queue.acquire(timeout=0.05) is False  # as SQLite's busy timeout: given up
    assert queue.waiting == 0
    queue.release()
    assert not queue.locked()
    assert queue.acquire(timeout=0.05)


@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def test_a_flood_of_record_batches_never_keeps_a_pop_from_its_call_id(store: Store) -> None:
    """Injects: a writer applying 50-call batches back to back while 40 pops ask for
    their rows. Survives: every pop has its id."""
    stop = threading.Event()
    batches = [0]

    def flood() -> None:
        n = 0
        while not stop.is_set():
            events = []
            for _ in range(50):
                n += 1
                events += queue_call_answered(f"flood.{n}", at=START + n).events
            store.calls.apply(events)
            batches[0] += 1

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    try:
        while batches[0] < 2:
            time.sleep(0.01)
        started = batches[0]
        ids = []
        for k in range(40):
            call = CallBuilder(f"pop.{k}", at=START + 10_000 + k, number="050123456").call
            ids.append(store.calls.ensure_call(call, LOCK_WAIT))
            time.sleep(0.01)
        during = batches[0] - started
    finally:
        stop.set()
        writer.join(30)
    assert during >= 5  # the writer was busy all along
    assert None not in ids and len(set(ids)) == 40
