"""The PBX and its link fail under the daemon, on the real Asterisk 22; nothing is lost.

Each scenario says what it injects and asserts what survived:

* Asterisk SIGKILLed (a crash: no ``Shutdown``, no hang-ups) or restarted (``core restart
  now``) while a burst of calls is up: the link comes back by itself, every call that
  happened has exactly one record, and every call that was cut is closed; after a crash
  its end was not seen, so it is marked ``ended_at_approximate``.
* The link stalls (the connection stays up, no byte flows: a black-holed route, through
  ``FaultProxy``): the keep-alive drops it within ``ping_interval + ping_timeout`` and
  redials; a call that ended unseen meanwhile is closed as approximate, one still up
  carries on in the same record.
* The PBX half-closes the link (a FIN towards the daemon): seen at once, redialled.
* The PBX hangs (SIGSTOP): dropped by the keep-alive, rejoined when it wakes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import structlog
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.store import Store
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    in_thread,
    poll_in_thread,
    prepared_store,
    started_daemon,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.reliability import record

log = structlog.get_logger("tests.faults")

PING_INTERVAL, PING_TIMEOUT = 1.0, 2.0


@dataclass
class Setup:
    pbx: AsteriskInstance
    daemon: Daemon
    store: Store

    def calls_from(self, number: str) -> list[dict[str, Any]]:
        return self.store.queries.list_calls(number=number, limit=10)

    def link_ok(self) -> bool:
        return bool(self.daemon.health()["ami"]["status"] == "ok")

    async def records(
        self, numbers: list[str], ready: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, dict[str, Any]]:
        """Each number's only record, once ``ready`` holds for all of them."""

        def find() -> dict[str, dict[str, Any]] | None:
            found = {n: self.calls_from(n) for n in numbers}
            if all(len(calls) == 1 and ready(calls[0]) for calls in found.values()):
                return {n: calls[0] for n, calls in found.items()}
            return None

        return await poll_in_thread(find, 60, what)

    async def place(self, numbers: list[str], hold: int) -> None:
        for number in numbers:
            await in_thread(self.pbx.place_call, "3200", number, f"Klant {number[-2:]}", hold=hold)


async def _setup(pbx: AsteriskInstance, tmp_path: Path, port: int | None = None) -> Setup:
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "1001"), ("bart", "1002")):
        store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{device}@agents"]
        )
    config = daemon_config(
        url,
        pbx.ami_host,
        port or pbx.ami_port,
        pbx.username,
        pbx.secret,
        auth="plain",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    )
    setup = Setup(pbx, await started_daemon(config), store)
    await eventually(setup.link_ok, 20, "AMI link up")
    return setup


async def _teardown(setup: Setup) -> None:
    await setup.daemon.stop()
    setup.store.close()


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@pytest_twisted.async_yield_fixture
async def own_pbx(
    asterisk_factory: Callable[..., AsteriskInstance], tmp_path: Path
) -> AsyncIterator[Setup]:
    """A PBX of the test's own (it is killed), and a daemon on it."""
    pbx = await in_thread(asterisk_factory)
    setup = await _setup(pbx, tmp_path)
    yield setup
    await _teardown(setup)


@pytest.mark.parametrize("fault", ["sigkill", "restart"])
@pytest_twisted.ensureDeferred
async def test_pbx_killed_or_restarted_mid_burst_records_every_call_once(
    own_pbx: Setup, fault: str
) -> None:
    """Injects: SIGKILL (or ``core restart now``) of Asterisk with two calls talking and
    three waiting in the queue. Survives: one record per call, before, during and after;
    the cut calls closed by the system; after a crash incomplete and their end marked
    approximate (the PBX vanished without a word), after a restart with the end the PBX
    reported (it hung the channels up itself before it went)."""
    s = own_pbx
    before = ["0485000001", "0485000002"]
    for ext in ("1001", "1002"):
        await in_thread(s.pbx.set_operator, ext, ring=1, talk=2)
    await s.place(before, hold=30)
    await s.records(before, lambda c: c["ended_at"] is not None, "the calls before the fault")

    burst = [f"04850000{n}" for n in range(11, 16)]
    for ext in ("1001", "1002"):
        await in_thread(s.pbx.set_operator, ext, ring=1, talk=300)
    await s.place(burst, hold=300)
    up = await s.records(burst, lambda c: True, "a record for every call of the burst")

    def two_talking() -> bool | None:
        answered = [c for n in burst for c in s.calls_from(n) if c["answered_at"]]
        return len(answered) == 2 or None

    await poll_in_thread(two_talking, 30, "two calls of the burst answered")
    assert all(c["ended_at"] is None for c in up.values())

    cut_at = time.time()
    if fault == "sigkill":
        await in_thread(s.pbx.crash)
        await eventually(lambda: s.daemon.health()["status"] == "degraded", 10, "degraded")
        assert not s.link_ok()
        await in_thread(s.pbx.boot_again)
    else:
        await in_thread(s.pbx.restart)
    back_at = time.time()
    await eventually(s.link_ok, 30, "the link back")
    linked_at = time.time()

    ended = await s.records(burst, lambda c: c["ended_at"] is not None, "the burst closed")
    for number, call in ended.items():
        assert call["hung_up_by"] == "system", number
        # A crash: the resync found the calls gone, their ends unseen. A restart: the
        # PBX hung every channel up before it went (the events came), then Shutdown.
        assert call["ended_at_approximate"] is (fault == "sigkill"), number
        if fault == "sigkill":
            assert call["complete"] is False, number
        assert cut_at - 1 <= _at(call["ended_at"]) <= back_at + 1, (number, call["ended_at"])
    outcomes = sorted(c["outcome"] for c in ended.values())
    assert outcomes == ["abandoned"] * 3 + ["answered"] * 2
    assert sorted(c["answered_by"] for c in ended.values() if c["answered_by"]) == [
        "anna",
        "bart",
    ]
    for number in before:  # untouched by the fault, and still one record each
        (call,) = s.calls_from(number)
        assert (call["complete"], call["ended_at_approximate"]) == (True, False)

    after = ["0485000099"]
    for ext in ("1001", "1002"):
        await in_thread(s.pbx.set_operator, ext, ring=1, talk=2)
    await s.place(after, hold=30)
    (call,) = (await s.records(after, lambda c: c["ended_at"] is not None, "after")).values()
    assert (call["outcome"], call["complete"], call["ended_at_approximate"]) == (
        "answered",
        True,
        False,
    )
    numbers = [*before, *burst, *after]
    stored = sum(len(s.calls_from(n)) for n in numbers)
    record(
        f"Asterisk {'SIGKILLed' if fault == 'sigkill' else 'restarted (core restart now)'}"
        " mid-burst",
        injected="2 calls talking, 3 queued; the PBX "
        + ("killed, then booted again" if fault == "sigkill" else "restarted"),
        expected="link back by itself; every call recorded once; cut calls closed"
        + (", their end marked approximate" if fault == "sigkill" else ", end as reported"),
        records_expected=len(numbers),
        records_stored=stored,
        duplicates=stored - len(numbers),
        cut_calls_closed=len(ended),
        approximate_ends=sum(bool(c["ended_at_approximate"]) for c in ended.values()),
        link_back_after_s=round(linked_at - cut_at, 1),
    )


def _channel_of(pbx: AsteriskInstance, linkedid: str) -> str:
    """The name of the channel whose Uniqueid is ``linkedid``: the call's caller."""
    for line in pbx.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if fields[-1] == linkedid:
            return fields[0]
    raise AssertionError(f"no channel {linkedid} on the PBX")


@pytest_twisted.ensureDeferred
async def test_a_stalled_link_is_dropped_by_the_keepalive_and_redialled(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """Injects: the AMI connection goes silent both ways (sockets open, no FIN, no RST)
    with two calls up; one of them ends on the PBX during the silence. Survives: the
    keep-alive drops the link within ``ping_interval + ping_timeout`` (the measured time
    is logged), the daemon redials, the call that ended unseen is closed as approximate,
    the other one carries on in its record and ends normally."""
    with FaultProxy(asterisk.ami_host, asterisk.ami_port) as proxy:
        s = await _setup(asterisk, tmp_path, port=proxy.port)
        try:
            await in_thread(asterisk.set_operator, "1001", ring=1, talk=300)
            await in_thread(asterisk.set_operator, "1002", ring=1, talk=300)
            numbers = ["0485000021", "0485000022"]
            await s.place(numbers, hold=300)
            up = await s.records(numbers, lambda c: bool(c["answered_at"]), "both calls answered")

            stalled_at = reactor.seconds()
            proxy.stall()
            gone = await in_thread(_channel_of, asterisk, up[numbers[0]]["linkedid"])
            await in_thread(asterisk.cli, f"channel request hangup {gone}")
            await eventually(lambda: not s.link_ok(), PING_INTERVAL + PING_TIMEOUT + 5, "drop")
            detected = reactor.seconds() - stalled_at
            log.info("stall detected", seconds=round(detected, 2))
            # The bound the keep-alive promises, with room for a loaded machine.
            assert detected <= PING_INTERVAL + PING_TIMEOUT + 2.0, detected
            await eventually(s.link_ok, 30, "the link redialled")
            assert proxy.connections == 2

            ended = await s.records(
                numbers[:1], lambda c: c["ended_at"] is not None, "the unseen end closed"
            )
            call = ended[numbers[0]]
            assert (call["hung_up_by"], call["ended_at_approximate"]) == ("system", True)
            (alive,) = s.calls_from(numbers[1])
            assert alive["ended_at"] is None  # still up: the same record carries on

            await in_thread(asterisk.cli, "channel request hangup all")
            done = await s.records(
                numbers[1:], lambda c: c["ended_at"] is not None, "the other call's end"
            )
            last = done[numbers[1]]
            # Its end was seen; it is incomplete (events of the silence may be missing).
            assert (last["outcome"], last["ended_at_approximate"]) == ("answered", False)
            assert last["complete"] is False
            assert len(s.calls_from(numbers[0])) == 1
            record(
                "AMI link stalls (socket open, no bytes)",
                injected="the connection black-holed both ways by a proxy; a call hung up"
                " meanwhile",
                expected=f"keep-alive drops it within ping_interval + ping_timeout"
                f" ({PING_INTERVAL:g} + {PING_TIMEOUT:g} s); redial; unseen end approximate",
                detected_after_s=round(detected, 2),
                unseen_end="closed, approximate",
                call_still_up="same record, ended normally",
                duplicates=sum(len(s.calls_from(n)) for n in numbers) - len(numbers),
            )
        finally:
            await _teardown(s)
            await in_thread(asterisk.wait_idle, 30, 5)


@pytest_twisted.ensureDeferred
async def test_a_half_closed_link_is_redialled(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    """Injects: a FIN from the PBX's side of the AMI connection (its other direction open).
    Survives: the link is seen down at once (before any keep-alive), redialled, and a call
    placed afterwards is recorded."""
    with FaultProxy(asterisk.ami_host, asterisk.ami_port) as proxy:
        s = await _setup(asterisk, tmp_path, port=proxy.port)
        try:
            closed_at = reactor.seconds()
            proxy.half_close()
            await eventually(lambda: not s.link_ok(), PING_INTERVAL, "the FIN noticed")
            half = reactor.seconds() - closed_at
            log.info("half-close detected", seconds=round(half, 3))
            await eventually(s.link_ok, 30, "the link redialled")
            assert proxy.connections == 2
            await in_thread(asterisk.set_operator, "1001", ring=1, talk=2)
            await in_thread(asterisk.set_operator, "1002", ring=1, talk=2)
            await s.place(["0485000031"], hold=30)
            (call,) = (
                await s.records(["0485000031"], lambda c: c["ended_at"] is not None, "recorded")
            ).values()
            assert (call["outcome"], call["complete"]) == ("answered", True)
            record(
                "AMI link half-closed by the PBX",
                injected="a FIN towards the daemon, the other way left open",
                expected="seen at once (no keep-alive needed); redial; calls recorded",
                detected_after_ms=round(half * 1000),
                call_after="recorded, complete",
            )
        finally:
            await _teardown(s)
            await in_thread(asterisk.wait_idle, 30, 5)


@pytest_twisted.ensureDeferred
async def test_a_hung_pbx_is_dropped_and_rejoined_when_it_wakes(own_pbx: Setup) -> None:
    """Injects: Asterisk stopped dead (SIGSTOP: a deadlocked PBX; its sockets stay open,
    connects still complete in the kernel) with a call up, for a few seconds. Survives:
    the keep-alive drops the link within its bound, redialling does not hang the daemon
    (health says degraded), and when the PBX wakes the link comes back and the call,
    still up, ends in its one record."""
    s = own_pbx
    await in_thread(s.pbx.set_operator, "1001", ring=1, talk=300)
    await in_thread(s.pbx.set_operator, "1002", ring=1, talk=300)
    await s.place(["0485000041"], hold=300)
    await s.records(["0485000041"], lambda c: bool(c["answered_at"]), "the call answered")
    frozen_at = reactor.seconds()
    await in_thread(s.pbx.freeze)
    try:
        await eventually(lambda: not s.link_ok(), PING_INTERVAL + PING_TIMEOUT + 5, "drop")
        detected = reactor.seconds() - frozen_at
        log.info("hung PBX detected", seconds=round(detected, 2))
        assert detected <= PING_INTERVAL + PING_TIMEOUT + 2.0, detected
        assert s.daemon.health()["status"] == "degraded"
    finally:
        await in_thread(s.pbx.thaw)
    await eventually(s.link_ok, 60, "the link back after the PBX woke")
    (call,) = s.calls_from("0485000041")
    assert call["ended_at"] is None  # it was never gone from the PBX
    await in_thread(s.pbx.cli, "channel request hangup all")
    (done,) = (
        await s.records(["0485000041"], lambda c: c["ended_at"] is not None, "its end")
    ).values()
    assert (done["outcome"], done["ended_at_approximate"]) == ("answered", False)
    record(
        "Asterisk hung (SIGSTOP)",
        injected="the PBX process stopped dead with a call up, then woken",
        expected="dropped within ping_interval + ping_timeout, degraded, rejoined, the call"
        " one record",
        detected_after_s=round(detected, 2),
        call="one record, ended normally",
    )
