"""The whole daemon on the simulated PBX: calls recorded and served over HTTP, tokens,
roles, health. Real reactor, real TCP, real SQLite; the PBX is the demo simulator.

Every test here is also a scan (issue 13): the daemon logs at DEBUG into one stream
(``configure_logging``: structlog, the standard library and Twisted's log), and after
the test neither the AMI secret nor the operators' password is in any log line, any
API answer the test got, or the pages (``/``, ``/wallboard``, ``/healthz``, ``/metrics``).
"""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.sim import SimulatedPBX
from cti_bridge.store import Store
from tests.integration.integration_support import (
    ANSWERS,
    PASSWORD,
    daemon_config,
    eventually,
    http,
    login,
    prepared_store,
    sleep,
    started_daemon,
)

pytest_plugins = ["tests.support.log_capture"]  # log_stream

SPEED = 4.0  # simulated seconds per real second
OPERATORS = [("PJSIP/1001", "Anna"), ("PJSIP/1002", "Bart")]


class Setup:
    def __init__(self, sim: SimulatedPBX, daemon: Daemon, store: Store):
        self.sim, self.daemon, self.store = sim, daemon, store

    async def ended_call(self, number: str, token: str) -> dict[str, Any]:
        """The newest ended call from ``number``, as the API serves it."""
        url = self.daemon.url + f"api/calls?number={quote(number)}"

        async def fetch() -> dict[str, Any] | None:
            status, body = await http("GET", url, token=token)
            assert status == 200, body
            return next((c for c in body["calls"] if c["ended_at"]), None)

        found: list[dict[str, Any]] = []
        deadline = reactor.seconds() + 15
        while not found:
            call = await fetch()
            if call is not None:
                found.append(call)
            elif reactor.seconds() > deadline:
                raise AssertionError(f"no ended call from {number}")
            else:
                await sleep(0.05)
        return found[0]


def leaked(secrets: dict[str, str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """(secret, where) for each secret found in a text."""
    found = []
    for name, value in secrets.items():
        found += [(name, where) for where, text in texts.items() if value in text]
    return found


def scan_for_secrets(sim: SimulatedPBX, logs: io.StringIO) -> None:
    texts = {"log": logs.getvalue(), **{f"answer {n}": a for n, a in enumerate(ANSWERS)}}
    assert '"event": "http request"' in texts["log"]  # the daemon's lines were captured
    assert leaked({"AMI secret": sim.secret, "password": PASSWORD}, texts) == []


@pytest_twisted.async_yield_fixture
async def setup(tmp_path: Path, log_stream: io.StringIO) -> AsyncIterator[Setup]:
    ANSWERS.clear()
    sim = SimulatedPBX(reactor, seed=11, speed=SPEED, operators=OPERATORS)
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)  # for seeding and checks; the daemon opens its own
    store.accounts.add_operator(
        "anna", role="operator", password=PASSWORD, name="Anna", devices=["PJSIP/1001"]
    )
    store.accounts.add_operator(
        "bart", role="operator", password=PASSWORD, name="Bart", devices=["PJSIP/1002"]
    )
    store.accounts.add_operator("sofie", role="supervisor", password=PASSWORD)
    daemon = await started_daemon(daemon_config(url, "127.0.0.1", port, sim.username, sim.secret))
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    for page in ("", "wallboard", "healthz", "metrics", "api/openapi.json"):
        await http("GET", daemon.url + page)  # scanned with the test's answers
    yield Setup(sim, daemon, store)
    await daemon.stop()
    scan_for_secrets(sim, log_stream)
    await sim.stop()
    store.close()


@pytest_twisted.ensureDeferred
async def test_a_queue_call_is_recorded_without_anyone_typing(setup: Setup) -> None:
    token = await login(setup.daemon, "anna")
    setup.sim.place_call(
        "queue_answered",
        caller=("050123456", "Marie <b>Dubois</b>"),
        operator="PJSIP/1001",
        ring=2.0,
        talk=4.0,
    )
    call = await setup.ended_call("0032 50 12 34 56", token)  # any format finds it
    assert call["outcome"] == "answered"
    assert call["direction"] == "inbound"
    assert call["queue"] == "support"
    assert call["answered_by"] == "anna"
    assert set(call["rang"]) == {"anna", "bart"}  # ringall: Bart rang and was cancelled
    assert call["caller_number"] == "+3250123456"
    assert call["caller_number_raw"] == "050123456"
    assert call["caller_name"] == "Marie <b>Dubois</b>"  # text, stored as sent
    # Durations come from arrival times here (no Timestamp headers): 2 s of ringing and
    # 4 s of talk on the simulated clock, run SPEED times faster.
    assert 1.5 / SPEED <= call["wait_seconds"] <= 2.5 / SPEED + 0.5
    assert 3.5 / SPEED <= call["talk_seconds"] <= 4.5 / SPEED + 0.5
    status, same = await http("GET", setup.daemon.url + f"api/calls/{call['id']}", token=token)
    assert status == 200 and same["linkedid"] == call["linkedid"]


@pytest_twisted.ensureDeferred
async def test_abandoned_and_missed_calls(setup: Setup) -> None:
    token = await login(setup.daemon, "sofie")
    setup.sim.place_call("queue_abandoned", caller=("0470123456", "Luc Claes"), patience=3.0)
    abandoned = await setup.ended_call("0470123456", token)
    # One after the other: while the queue rings Bart, a direct call to him finds him busy
    # (and that call is "failed", not "missed").
    setup.sim.place_call(
        "direct_missed", caller=("+3293456789", "Bakkerij"), operator="PJSIP/1002", patience=2.0
    )
    missed = await setup.ended_call("093456789", token)
    assert (abandoned["outcome"], abandoned["answered_by"]) == ("abandoned", None)
    assert abandoned["talk_seconds"] is None
    assert (missed["outcome"], missed["queue"], missed["rang"]) == ("missed", None, ["bart"])


@pytest_twisted.ensureDeferred
async def test_every_api_call_needs_a_valid_token(setup: Setup) -> None:
    base = setup.daemon.url
    for path in ("api/calls", "api/calls/1", "api/me"):
        status, body = await http("GET", base + path)
        assert status == 401, (path, body)
        status, body = await http("GET", base + path, token="forged-token")
        assert status == 401, (path, body)
    status, body = await http(
        "POST", base + "api/login", {"username": "anna", "password": "wrong password"}
    )
    assert (status, body) == (401, {"error": "wrong username or password"})
    status, body = await http("POST", base + "api/login", {"username": "anna"})
    assert status == 400
    status, body = await http(
        "GET", base + "api/calls?limit=100000", token=await login(setup.daemon, "anna")
    )
    assert status == 400 and "limit" in body["error"]


@pytest_twisted.ensureDeferred
async def test_login_failures_are_rate_limited(setup: Setup) -> None:
    url = setup.daemon.url + "api/login"
    codes = []
    for _ in range(5):
        status, _body = await http("POST", url, {"username": "bart", "password": "nope-nope"})
        codes.append(status)
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]
    # Even the right password is refused while throttled: guessing gains nothing.
    status, _body = await http("POST", url, {"username": "bart", "password": PASSWORD})
    assert status == 429


@pytest_twisted.ensureDeferred
async def test_operators_change_only_calls_they_handled(setup: Setup) -> None:
    anna = await login(setup.daemon, "anna")
    bart = await login(setup.daemon, "bart")
    sofie = await login(setup.daemon, "sofie")
    setup.sim.place_call(
        "direct_answered",
        caller=("0485667788", "Wim Peeters"),
        operator="PJSIP/1001",
        ring=1.0,
        talk=1.0,
    )
    call = await setup.ended_call("0485667788", anna)
    url = setup.daemon.url + f"api/calls/{call['id']}"

    status, body = await http("PATCH", url, {"notes": "bart was here"}, token=bart)
    assert status == 403, body
    status, body = await http(
        "PATCH",
        url,
        {"notes": "Router reset; works.", "category": "router", "disposition": "solved"},
        token=anna,
    )
    assert status == 200, body
    assert (body["notes"], body["category"], body["disposition"]) == (
        "Router reset; works.",
        "router",
        "solved",
    )
    status, body = await http("PATCH", url, {"disposition": "maybe"}, token=anna)
    assert status == 400 and "disposition" in body["error"]
    status, body = await http("PATCH", url, {"outcome": "missed"}, token=sofie)
    assert status == 400  # the PBX's facts are not editable
    status, body = await http("PATCH", url, {"category": "escalation"}, token=sofie)
    assert status == 200 and body["notes"] == "Router reset; works."
    stored = setup.store.queries.get_call(call["id"])
    assert (stored["notes"], stored["category"], stored["disposition"]) == (
        "Router reset; works.",
        "escalation",
        "solved",
    )


@pytest_twisted.ensureDeferred
async def test_health_follows_the_pbx_link(setup: Setup) -> None:
    status, body = await http("GET", setup.daemon.url + "healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["ami"]["pbx"]["main"]["state"] == "connected"
    assert body["database"]["status"] == "ok" and body["bus"]["status"] == "ok"
    setup.sim.shutdown(restart=True)  # Event: Shutdown, then the links close
    await eventually(lambda: setup.daemon.health()["status"] == "degraded", 10, "degraded")
    status, body = await http("GET", setup.daemon.url + "healthz")
    assert status == 503 and body["ami"]["status"] == "degraded"
    # The simulator keeps listening: the client reconnects and resyncs by itself.
    await eventually(lambda: setup.daemon.health()["status"] == "ok", 20, "recovered")
    status, body = await http("GET", setup.daemon.url + "metrics")
    assert status == 200 and 'cti_ami_connected{pbx="main"} 1.0' in body


@pytest_twisted.ensureDeferred
async def test_stopping_leaves_no_database_threads(setup: Setup) -> None:
    daemon = setup.daemon
    token = await login(daemon, "anna")  # the shared pool
    assert await daemon.run_pop_work(lambda: 42) == 42  # the pops' own pool
    status, _ = await http("GET", daemon.url + "api/calls", token=token)
    assert status == 200
    assert daemon.pool.workers > 0 and daemon.pop_pool.workers > 0
    await daemon.stop()
    ours = [t.name for t in threading.enumerate() if "cti-bridge-" in t.name]
    assert ours == []
