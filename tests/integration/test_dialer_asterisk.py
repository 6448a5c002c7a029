"""The callback dialer on a real Asterisk 22, counted on the PBX side.

Callbacks are made through the API (``POST /api/agreements``) by Anna, who owns them; the
dialer rings her simulated phone (AstDB ``agentsim``) and, once she answers, the
``[callback]`` context dials the customer in ``[pstn-out]`` (docs/asterisk.md: who
answers, who is busy, who does not exist). What the PBX itself rang and dialled comes
from the dial audit in the dialplan (``AsteriskInstance.dial_audit()``), never from
cti-bridge's own tables, and every test compares the two.

The daemon runs in this process here (the reactor of pytest-twisted); the crash and the
two-daemon tests are in ``test_dialer_processes.py``, with daemons of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import Daemon
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.store import Store
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.dialer_support import (
    CUSTOMER_RING_SECONDS,
    config_data,
    dialer_section,
    iso,
)
from tests.integration.integration_support import (
    PASSWORD,
    eventually,
    http,
    in_thread,
    login,
    poll_in_thread,
    prepared_store,
    sleep,
    started_daemon,
)

#: [dialer] retry_seconds in these tests (one value: every retry waits this long).
RETRY = timedelta(seconds=2)


class Live:
    def __init__(self, pbx: AsteriskInstance, daemon: Daemon, store: Store, token: str):
        self.pbx, self.daemon, self.store, self.token = pbx, daemon, store, token

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await http(method, self.daemon.url + path, body, token=self.token)
        assert status in (200, 201), (status, data)
        return data

    async def callback(self, number: str) -> int:
        created = await self.api(
            "POST", "api/agreements", {"kind": "callback", "callback_number": number}
        )
        assert created["owner"] == "anna" and created["next_attempt_at"] is not None
        agreement_id: int = created["id"]
        return agreement_id

    async def agreement(self, agreement_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self.api("GET", f"api/agreements/{agreement_id}")
        return found

    async def until(self, agreement_id: int, done: Any, what: str, timeout: float = 60) -> Any:
        """The agreement (API) once ``done(agreement)`` holds."""
        deadline = self.daemon.reactor.seconds() + timeout
        while True:
            agreement = await self.agreement(agreement_id)
            if done(agreement):
                return agreement
            if self.daemon.reactor.seconds() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}; last seen {agreement}")
            await sleep(0.1)


@pytest_twisted.async_yield_fixture
async def live(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Live]:
    await in_thread(asterisk.clear_dial_audit)
    await in_thread(asterisk.set_global, "CALLBACK_RING_SECONDS", CUSTOMER_RING_SECONDS)
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "1001"), ("bart", "1002")):
        store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{device}@agents"]
        )
    config = parse_config(
        config_data(url, asterisk, node="real-a", dialer=dialer_section(retry_seconds=[2]))
    )
    daemon = await started_daemon(config)
    try:
        await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "AMI link up")
        board = daemon.node.part("members", MembersBoard)
        await eventually(
            lambda: any(
                s.operator == "anna" and s.state == "available"
                for s in board.operator_states("main")
            ),
            20,
            "Anna available on the members board",
        )
        yield Live(asterisk, daemon, store, await login(daemon, "anna"))
    finally:
        await daemon.stop()
        store.close()
        await in_thread(asterisk.wait_idle, 40, 20)
        await in_thread(asterisk.set_global, "CALLBACK_RING_SECONDS", "30")


def _ended(number: int) -> Any:
    def done(agreement: dict[str, Any]) -> bool:
        attempts = agreement["attempts"]
        return len(attempts) >= number and attempts[number - 1]["outcome"] is not None

    return done


def _settled(agreement: dict[str, Any]) -> bool:
    """Nothing more to dial: flagged, or answered (the operator closes it)."""
    return agreement["status"] in ("failed", "open") and agreement["next_attempt_at"] is None


@pytest.mark.parametrize(
    ("number", "dialled", "outcome"),
    [
        ("+32478554433", "0478554433", "busy"),
        ("+3225123456", "025123456", "no_answer"),
        ("+3293334455", "093334455", "failed"),  # congestion
        ("+3227777777", "027777777", "failed"),  # does not exist (CHANUNAVAIL)
        ("+3228880000", "028880000", "failed"),  # does not exist, a trunk's 404 (cause 1)
    ],
    ids=["busy", "no-answer", "congestion", "does-not-exist", "does-not-exist-404"],
)
@pytest_twisted.ensureDeferred
async def test_a_customer_not_reached_is_tried_again_after_the_retry_then_flagged(
    live: Live, number: str, dialled: str, outcome: str
) -> None:
    await in_thread(live.pbx.set_operator, "1001", ring=1, talk=30)
    agreement_id = await live.callback(number)

    first = await live.until(agreement_id, _ended(1), "attempt 1 ended")
    one = first["attempts"][0]
    assert (one["number"], one["outcome"], one["operator"]) == (1, outcome, "anna")
    assert one["node"] == "real-a" and one["pbx"] == "main" and one["channel_id"]
    one_ended = iso(one["ended_at"])
    assert one_ended is not None
    # The next attempt waits the retry interval after this one's end (policy), never less.
    if len(first["attempts"]) == 1:
        assert first["status"] == "open"
        next_at = iso(first["next_attempt_at"])
        assert next_at is not None
        assert abs((next_at - one_ended) - RETRY) < timedelta(milliseconds=10)

    final = await live.until(agreement_id, _settled, "attempts exhausted", timeout=90)
    assert [a["outcome"] for a in final["attempts"]] == [outcome, outcome]
    two = final["attempts"][1]
    two_started = iso(two["started_at"])
    assert two_started is not None and two_started >= one_ended + RETRY
    assert two["channel_id"] != one["channel_id"]
    assert (final["status"], final["flagged"]) == ("failed", True)
    flagged = [e for e in final["history"] if e["kind"] == "flagged"]
    assert len(flagged) == 1 and "attempts_exhausted" in str(flagged[0]["details"])

    await in_thread(live.pbx.wait_idle, 30)
    audit = await in_thread(live.pbx.dial_audit)
    assert audit.rung == {(agreement_id, 1): ("1001",), (agreement_id, 2): ("1001",)}
    assert audit.dialled == {(agreement_id, 1): (dialled,), (agreement_id, 2): (dialled,)}


@pytest_twisted.ensureDeferred
async def test_a_callback_the_customer_answers_ends_the_dialling(live: Live) -> None:
    # Anna answers after 1 s; the customer (any other 0... number) after 3 s more and
    # talks until Anna hangs up.
    await in_thread(live.pbx.set_operator, "1001", ring=1, talk=6)
    agreement_id = await live.callback("+32470123456")

    answered = await live.until(agreement_id, _ended(1), "attempt 1 ended")
    (attempt,) = answered["attempts"]
    assert (attempt["outcome"], attempt["operator"]) == ("answered", "anna")
    assert answered["next_attempt_at"] is None and answered["status"] == "open"
    assert answered["flagged"] is False

    # The callback is recorded like any call, and the attempt finds it.
    def recorded() -> dict[str, Any] | None:
        calls = [c for c in live.store.queries.list_calls(limit=20) if c["ended_at"]]
        mine = [c for c in calls if c["linkedid"] == attempt["channel_id"]]
        return mine[0] if mine else None

    call = await poll_in_thread(recorded, 40, "the callback's call record")
    assert call["direction"] == "outbound"
    again = await live.agreement(agreement_id)
    assert again["attempts"][0]["call_id"] == call["id"]

    closed = await live.api(
        "PATCH", f"api/agreements/{agreement_id}", {"status": "done", "disposition": "solved"}
    )
    assert (closed["status"], closed["disposition"]) == ("done", "solved")

    await in_thread(live.pbx.wait_idle, 30)
    audit = await in_thread(live.pbx.dial_audit)
    assert audit.rung == {(agreement_id, 1): ("1001",)}
    assert audit.dialled == {(agreement_id, 1): ("0470123456",)}


@pytest_twisted.ensureDeferred
async def test_an_operator_who_does_not_answer_is_not_followed_by_the_customer(
    live: Live,
) -> None:
    # Anna's phone rings 30 s, longer than [dialer] operator_ring_seconds (3 s).
    await in_thread(live.pbx.set_operator, "1001", ring=30, talk=1)
    agreement_id = await live.callback("+32470123456")

    first = await live.until(agreement_id, _ended(1), "attempt 1 ended")
    one = first["attempts"][0]
    assert one["outcome"] == "operator_no_answer"
    one_ended = iso(one["ended_at"])
    assert one_ended is not None
    if len(first["attempts"]) == 1:
        next_at = iso(first["next_attempt_at"])
        assert next_at is not None
        assert abs((next_at - one_ended) - RETRY) < timedelta(milliseconds=10)

    final = await live.until(agreement_id, _settled, "attempts exhausted", timeout=90)
    assert [a["outcome"] for a in final["attempts"]] == ["operator_no_answer"] * 2
    two_started = iso(final["attempts"][1]["started_at"])
    assert two_started is not None and two_started >= one_ended + RETRY
    assert (final["status"], final["flagged"]) == ("failed", True)

    await in_thread(live.pbx.wait_idle, 30)
    audit = await in_thread(live.pbx.dial_audit)
    assert audit.rung == {(agreement_id, 1): ("1001",), (agreement_id, 2): ("1001",)}
    assert audit.dialled == {}  # the customer was never dialled
