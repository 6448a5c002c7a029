"""Fencing in the database (``store/fences.py``): the PBXs' tokens, raised and never
lowered, and the writes that matter refused with a stale one - call records and callback
attempts - on the memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from cti_bridge.lease import FenceRefused
from cti_bridge.store import Store, open_store
from cti_bridge.store.db import writing
from cti_bridge.store.fences import check_fence
from cti_bridge.testing.store import START, queue_call_answered
from cti_bridge.testing.store_contract import every_backend
from tests.support.agreements import claim

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

NOW = datetime.fromtimestamp(START, UTC)


@every_backend
def test_a_fence_is_raised_never_lowered(store: Store) -> None:
    fences = store.fences
    assert fences.current_fence("main") is None
    assert fences.raise_fence("main", 3, "node-a") == 3
    assert fences.raise_fence("main", 5, "node-b") == 5
    assert fences.raise_fence("main", 4, "node-a") == 5  # the stale holder changes nothing
    assert fences.raise_fence("main", 5, "node-b") == 5  # again: harmless
    assert fences.raise_fence("branch", 1, "node-a") == 1  # each PBX its own
    with pytest.raises(FenceRefused):  # the same token for another holder: a lost counter
        fences.raise_fence("main", 5, "node-a")
    assert fences.current_fence("main") == 5
    assert fences.current_fence("main") == 5


@every_backend
def test_a_record_write_with_a_stale_token_is_refused_and_writes_nothing(store: Store) -> None:
    store.fences.raise_fence("main", 1, "node-a")
    store.fences.raise_fence("main", 2, "node-b")  # node-b took over
    events = queue_call_answered().events
    with pytest.raises(FenceRefused) as refused:
        store.calls.apply(events, fences={"main": 1})
    assert (refused.value.pbx, refused.value.token, refused.value.current) == ("main", 1, 2)
    assert store.queries.list_calls() == []
    assert store.calls.apply(events, fences={"main": 2}) == 1  # the current owner's pass
    assert len(store.queries.list_calls()) == 1


@every_backend
def test_a_pbx_never_granted_refuses_every_token(store: Store) -> None:
    with pytest.raises(FenceRefused):
        store.calls.apply(queue_call_answered().events, fences={"main": 1})


@every_backend
def test_without_a_token_nothing_is_checked(store: Store) -> None:
    """One node, the in-process bus: as before fencing existed."""
    store.fences.raise_fence("main", 9, "node-b")
    assert store.calls.apply(queue_call_answered().events) == 1
    assert store.calls.apply(queue_call_answered("other").events, fences={}) == 1


@every_backend
def test_closing_stale_records_is_fenced_too(store: Store) -> None:
    store.fences.raise_fence("main", 1, "node-a")
    store.calls.apply(queue_call_answered().events[:3], fences={"main": 1})  # still open
    store.fences.raise_fence("main", 2, "node-b")
    later = START + 3600
    with pytest.raises(FenceRefused):
        store.calls.close_stale("main", [], later, fence=1)
    assert store.queries.list_calls()[0]["ended_at"] is None
    assert store.calls.close_stale("main", [], later, fence=2) == 1


@every_backend
def test_an_attempt_claimed_with_a_stale_token_is_refused(store: Store) -> None:
    book = store.agreements
    agreement = book.add_agreement("callback", callback_number="050123456", due_at=NOW)
    store.fences.raise_fence("main", 1, "node-a")
    store.fences.raise_fence("main", 2, "node-b")
    ids = {"operator": None, "node": "node-a", "pbx": "main", "channel_id": "c", "action_id": "a"}
    with pytest.raises(FenceRefused):
        book.claim_attempt(agreement, 1, now=NOW, fence=1, **ids)  # type: ignore[arg-type]
    assert book.open_attempts() == []
    assert claim(book, agreement, 1, NOW) is True  # no fencing in use: as before
    book.finish_attempt(agreement, 1, "busy", now=NOW, next_attempt_at=NOW)
    later = NOW + timedelta(minutes=1)
    assert book.claim_attempt(agreement, 2, now=later, fence=2, **ids) is True  # type: ignore[arg-type]


@every_backend
def test_an_attempts_outcome_with_a_stale_token_is_refused(store: Store) -> None:
    book = store.agreements
    agreement = book.add_agreement("callback", callback_number="050123456", due_at=NOW)
    store.fences.raise_fence("main", 1, "node-a")
    assert claim(book, agreement, 1, NOW) is True
    store.fences.raise_fence("main", 2, "node-b")
    with pytest.raises(FenceRefused):
        book.finish_attempt(agreement, 1, "busy", now=NOW, fence=1)
    assert [a.number for a in book.open_attempts()] == [1]  # left for the new owner
    assert book.finish_attempt(agreement, 1, "busy", now=NOW, fence=2) is not None
    assert book.open_attempts() == []


@pytest.mark.parametrize(
    "store_db", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_takeover_waits_for_the_old_owners_write_under_way(store_url: str) -> None:
    """``FOR SHARE``: the new owner's raise waits for a write that checked the old token
    until it commits; a write that checks after the raise is refused."""
    store = open_store(store_url, pool_size=3)
    try:
        store.fences.raise_fence("main", 1, "node-a")
        raised: list[float] = []
        with writing(store.sessions) as session:  # node-a's write, under way
            check_fence(session.connection(), "main", 1)
            taker = threading.Thread(
                target=lambda: raised.append(
                    (store.fences.raise_fence("main", 2, "node-b"), time.monotonic())[1]
                )
            )
            taker.start()
            time.sleep(0.3)
            assert raised == []  # waiting for the write to end
            committed = time.monotonic()
        taker.join(5)
        assert raised and raised[0] >= committed
        with pytest.raises(FenceRefused), writing(store.sessions) as session:
            check_fence(session.connection(), "main", 1)
    finally:
        store.close()
