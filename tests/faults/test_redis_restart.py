"""Redis restarted under two daemon processes: the PBX keeps its one owner, every call is
recorded once, pops cross nodes again, and the leases are taken again safely.

Injects, against a real Asterisk 22, a PostgreSQL database of the test's own and a
redis-server of the test's own (the shared one is never touched): two ``cti-bridge run``
nodes (``role = "all"``), an operator's screen on the node that does *not* own the PBX
(its pops cross Redis), then Redis stopped for three leases and started again empty (no
persistence: leases and fencing counters gone), then the owner SIGKILLed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.websocket import WebSocketClientEndpoint

from cti_bridge.store import Store, open_store, upgrade
from cti_bridge.testing.asterisk import AsteriskInstance
from cti_bridge.testing.store import cheap_hasher, scratch_postgres
from tests.integration.dialer_support import DaemonProcess, config_data, free_port
from tests.integration.integration_support import PASSWORD, eventually, in_thread, poll_in_thread
from tests.integration.pop_support import Screen
from tests.support.private_redis import PrivateRedis
from tests.support.reliability import record

OUTAGE_SECONDS = 15.0  # three 5 s leases
NUMBERS = ("0485000051", "0485000052", "0485000053", "0485000054")


class Sampler:
    """Which node owns ``main``, read from both nodes' ``/healthz`` every 0.2 s in a thread
    of its own, for the whole test: the proof that the PBX never had two owners (or none
    for long)."""

    def __init__(self, nodes: list[DaemonProcess]) -> None:
        self.nodes = nodes
        self.samples: list[tuple[float, tuple[bool, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            owns = tuple("main" in n.health().get("node", {}).get("owns", []) for n in self.nodes)
            self.samples.append((time.monotonic(), owns))
            self._stop.wait(0.2)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _login(url: str, username: str) -> str:
    body = json.dumps({"username": username, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        url + "api/login", body, {"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token: str = json.loads(response.read())["token"]
        return token


async def _screen(node: DaemonProcess, username: str) -> Screen:
    token = await in_thread(_login, node.url, username)
    screen = Screen(username)
    url = node.url.replace("http://", "ws://") + f"ws?token={token}"
    await WebSocketClientEndpoint.new(reactor, url).connect(screen)
    await eventually(lambda: screen.of("hello"), 10, f"{username}'s hello")
    return screen


@pytest.fixture
def nodes() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    try:
        yield started
    finally:
        for node in started:
            node.stop()


@pytest_twisted.ensureDeferred
async def test_redis_restarted_the_owner_keeps_the_pbx_and_every_call_is_recorded_once(
    asterisk_factory: Callable[..., AsteriskInstance],
    nodes: list[DaemonProcess],
    tmp_path: Path,
) -> None:
    pbx: AsteriskInstance = await in_thread(asterisk_factory)
    for ext in ("1001", "1002"):
        await in_thread(pbx.set_operator, ext, ring=2, talk=2)
    redis = PrivateRedis(tmp_path)
    redis.start()
    with scratch_postgres("cti_redis_restart") as url:
        upgrade(url)
        store: Store = open_store(url, accounts={"hasher": cheap_hasher()})
        screen: Screen | None = None
        try:
            for username, ext in (("anna", "1001"), ("bart", "1002")):
                store.accounts.add_operator(
                    username, role="operator", password=PASSWORD, devices=[f"Local/{ext}@agents"]
                )
            for name in ("node-a", "node-b"):
                config = config_data(url, pbx, node=name, web_port=free_port())
                config["bus"] = {"url": redis.url}
                config["node"]["role"] = "all"
                config["dialer"]["enabled"] = False
                nodes.append(DaemonProcess(tmp_path, name, config))
            a, b = nodes
            await in_thread(a.start)
            await poll_in_thread(
                lambda: "main" in a.health().get("node", {}).get("owns", []) or None,
                20,
                "node-a owns the PBX",
            )
            await in_thread(b.start)
            screen = await _screen(b, "anna")  # on the node without the PBX link

            def recorded(number: str) -> list[dict[str, Any]]:
                return [c for c in store.queries.list_calls(number=number) if c["ended_at"]]

            async def call(number: str) -> dict[str, Any]:
                await in_thread(pbx.place_call, "3200", number, "Klant", hold=30)
                (done,) = await poll_in_thread(
                    lambda: recorded(number) or None, 60, f"the record of {number}"
                )
                return done

            with Sampler(nodes) as sampler:
                await call("0485000051")
                await eventually(lambda: screen.about("0485000051"), 10, "a pop across Redis")
                before = store.fences.current_fence("main")

                redis.stop()
                stopped = time.monotonic()
                await poll_in_thread(
                    lambda: a.health().get("bus", {}).get("status") == "degraded" or None,
                    10,
                    "node-a sees Redis gone",
                )
                during = await call("0485000052")  # the owner still records
                left = OUTAGE_SECONDS - (time.monotonic() - stopped)
                if left > 0:
                    await in_thread(time.sleep, left)
                assert "main" in a.health()["node"]["owns"]
                assert a.health()["node"]["leases"]["main"]["kept_without_bus"] is True

                redis.start()  # empty: no lease, no counter
                await poll_in_thread(
                    lambda: (
                        all(n.health().get("bus", {}).get("status") == "ok" for n in nodes) or None
                    ),
                    30,
                    "both nodes on Redis again",
                )
                await poll_in_thread(
                    lambda: not a.health()["node"]["leases"]["main"]["kept_without_bus"] or None,
                    15,
                    "node-a holds the lease on Redis again",
                )
                after_restart = store.fences.current_fence("main")
                await call("0485000053")
                await eventually(lambda: screen.about("0485000053"), 10, "pops cross again")

                killed_at = time.monotonic()
                await in_thread(a.kill)
                await poll_in_thread(
                    lambda: "main" in b.health().get("node", {}).get("owns", []) or None,
                    20,
                    "node-b takes the PBX over",
                )
                takeover = time.monotonic() - killed_at
                await call("0485000054")  # recorded by the new owner
            taken_over = store.fences.current_fence("main")
            records = {n: len(store.queries.list_calls(number=n)) for n in NUMBERS}
        finally:
            if screen is not None:
                screen.close()
            store.close()
            for node in nodes:
                node.stop()
            redis.stop()

    assert during["outcome"] == "answered"
    assert before is not None and after_restart is not None and taken_over is not None
    assert before < after_restart < taken_over  # never a token seen before
    assert records == dict.fromkeys(NUMBERS, 1)  # each call once, across both handovers
    assert takeover < 10, takeover  # a lease (5 s) and a retry, on a loaded machine
    owners = [owns for _, owns in sampler.samples if any(owns)]
    assert all(not (x and y) for x, y in owners), "two owners at once"
    before_kill = [owns for at, owns in sampler.samples if at < killed_at]
    assert all(owns == (True, False) for owns in before_kill), "the PBX changed hands"
    record(
        "Redis restarted (empty) under two nodes, then the owner SIGKILLed",
        injected=f"Redis stopped {OUTAGE_SECONDS:g} s (3 leases), started without its data;"
        " then SIGKILL of the owner",
        expected="the owner keeps the PBX and records; one owner at a time; tokens only grow;"
        " pops cross nodes again; the other node takes over",
        records_expected=len(NUMBERS),
        records_stored=sum(records.values()),
        duplicates=sum(records.values()) - len(NUMBERS),
        owner_changes_before_kill=0,
        two_owners_seen=0,
        fencing_tokens=f"{before} -> {after_restart} -> {taken_over}",
        takeover_after_kill_s=round(takeover, 1),
    )
