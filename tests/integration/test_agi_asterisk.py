"""The AGI caller lookup on a real Asterisk 22: the dialplan's AGI(${CTI_LOOKUP_AGI}) runs
``dialplans/agi/caller_lookup.py`` as a FastAGI server on the host (the chroot's Python has
no pyst2), which asks cti-bridge's ``/api/agi/lookup`` (served here on the test reactor from
a real SQLite store); the variables are read back from AMI VarSet events, the queue
priority and language from the caller's QueueCallerJoin. With the lookup service down, or
the AGI server itself down, the call still reaches the queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.protocol import ServerFactory
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site

from cti_bridge.agi.lookup import AgiLookupResource, CallerProfiles
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import in_thread, prepared_store
from tests.support.paths import AGI_SCRIPT

SCRIPT = AGI_SCRIPT
TOKEN = "agi-test-token-3f9a1c27e5"
CTI_VARIABLES = (
    *("CTI_LOOKUP", "CTI_CUSTOMER_ID", "CTI_CUSTOMER_NAME", "CTI_LANGUAGE"),
    *("CTI_TIER", "CTI_PRIORITY", "QUEUE_PRIO", "AGISTATUS"),
)


def fastagi_server(url: str) -> Generator[str, None, None]:
    """The script serving FastAGI on a free port; yields its agi:// URL."""
    env = {
        **os.environ,
        "CTI_BRIDGE_URL": url,
        "CTI_AGI_TOKEN": TOKEN,
        "CTI_AGI_TIMEOUT": "0.5",
        "CTI_AGI_CONFIG": "/nonexistent",
    }
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--fastagi", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("caller_lookup: FastAGI on "), line
        yield f"agi://{line.rsplit(' ', 1)[-1]}/caller_lookup"
    finally:
        process.terminate()
        process.wait(10)


def place_and_watch(pbx: AsteriskInstance, number: str, name: str, agi: str) -> dict[str, Any]:
    """Place a support-line call with CTI_LOOKUP_AGI=agi; return the caller channel's CTI
    variables and its QueueCallerJoin (blocking: runs in a thread)."""
    with pbx.ami(events="on", timeout=10) as ami:
        tag = pbx.place_call("3200", number, name, hold=4, variables={"CTI_LOOKUP_AGI": agi})
        seen: list[dict[str, str]] = []
        marked = ami.wait_for(
            lambda m: (
                m.get("Event") == "VarSet"
                and m.get("Variable") == "CTI_SIM_CALL"
                and m.get("Value") == tag
            ),
            20,
            seen,
            "the call's tag",
        )
        channel = marked["Channel"]
        join = ami.wait_for(
            lambda m: m.get("Event") == "QueueCallerJoin" and m.get("Channel") == channel,
            20,
            seen,
            "QueueCallerJoin",
        )
        variables = {
            m["Variable"]: m.get("Value", "")
            for m in seen
            if m.get("Event") == "VarSet"
            and m.get("Channel") == channel
            and m.get("Variable") in CTI_VARIABLES
        }
        return {"variables": variables, "join": join}


class Lookup:
    def __init__(self, pbx: AsteriskInstance, url: str, store: Any):
        self.pbx, self.url, self.store = pbx, url, store


@pytest_twisted.async_yield_fixture
async def lookup(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Lookup]:
    _, store = prepared_store(tmp_path)
    today = datetime.now(UTC).date()
    jan = store.customers.add_customer(
        "Jan Peeters", numbers=["+3250123456"], language="fr", tier="premium"
    )
    store.customers.add_contract(jan, valid_from=today - timedelta(days=1), covered=["phone"])
    store.customers.add_customer(
        'Dubois "&" ${Fils}', numbers=["050765432"], language="nl", tier="basic"
    )
    profiles = CallerProfiles(store.callers)
    root, api, agi = Resource(), Resource(), Resource()
    root.putChild(b"api", api)
    api.putChild(b"agi", agi)
    agi.putChild(b"lookup", AgiLookupResource(lambda n: deferToThread(profiles.lookup, n), TOKEN))
    site = Site(root)
    site.noisy = False
    factory = cast("ServerFactory[Any]", site)  # Factory[P] is invariant in P
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    await in_thread(asterisk.set_operator, "1001", ring=30, talk=1)
    await in_thread(asterisk.set_operator, "1002", ring=30, talk=1)
    yield Lookup(asterisk, f"http://127.0.0.1:{address.port}", store)
    await maybeDeferred(port.stopListening)
    store.close()
    await in_thread(asterisk.wait_idle, 30, 10)


async def call_through(lookup: Lookup, url: str, number: str, name: str) -> dict[str, Any]:
    servers = fastagi_server(url)
    agi = next(servers)
    try:
        return await in_thread(place_and_watch, lookup.pbx, number, name, agi)
    finally:
        servers.close()


@pytest_twisted.ensureDeferred
async def test_a_known_premium_caller_gets_language_and_priority(lookup: Lookup) -> None:
    seen = await call_through(lookup, lookup.url, "+3250123456", "Jan Peeters")
    variables = seen["variables"]
    assert variables["CTI_LOOKUP"] == "known"
    assert variables["CTI_CUSTOMER_NAME"] == "Jan Peeters"
    assert variables["CTI_LANGUAGE"] == "fr"
    assert variables["CTI_TIER"] == "premium"
    assert variables["CTI_PRIORITY"] == variables["QUEUE_PRIO"] == "10"
    assert variables["CTI_CUSTOMER_ID"].isdigit()
    assert variables["AGISTATUS"] == "SUCCESS"
    assert seen["join"]["Queue"] == "support"
    assert seen["join"]["Language"] == "fr"  # CHANNEL(language) from the lookup


@pytest_twisted.ensureDeferred
async def test_hostile_stored_name_reaches_the_channel_reduced(lookup: Lookup) -> None:
    seen = await call_through(lookup, lookup.url, "050765432", "Marie")
    variables = seen["variables"]
    assert variables["CTI_CUSTOMER_NAME"] == "Dubois Fils"
    assert variables["CTI_PRIORITY"] == "1"  # known, no contract
    assert seen["join"]["Language"] == "nl"


@pytest_twisted.ensureDeferred
async def test_an_unknown_caller_goes_to_the_queue_with_default_priority(
    lookup: Lookup,
) -> None:
    seen = await call_through(lookup, lookup.url, "092345678", "Somebody")
    assert seen["variables"]["CTI_LOOKUP"] == "unknown"
    assert seen["variables"]["QUEUE_PRIO"] == "0"
    assert "CTI_CUSTOMER_NAME" not in seen["variables"]
    assert seen["join"]["Queue"] == "support" and seen["join"]["Language"] == "nl"


@pytest_twisted.ensureDeferred
async def test_with_cti_bridge_down_the_call_still_reaches_the_queue(lookup: Lookup) -> None:
    started = time.monotonic()
    seen = await call_through(lookup, "http://127.0.0.1:9", "+3250123456", "Jan Peeters")
    assert seen["variables"]["CTI_LOOKUP"] == "failed"
    assert seen["variables"]["AGISTATUS"] == "SUCCESS"
    assert "QUEUE_PRIO" not in seen["variables"] and "CTI_LANGUAGE" not in seen["variables"]
    assert seen["join"]["Queue"] == "support"
    assert seen["join"]["Language"] == "nl"
    assert time.monotonic() - started < 20


@pytest_twisted.ensureDeferred
async def test_with_the_agi_server_down_the_call_still_reaches_the_queue(
    lookup: Lookup,
) -> None:
    seen = await in_thread(
        place_and_watch, lookup.pbx, "+3250123456", "Jan Peeters", "agi://127.0.0.1:9/x"
    )
    assert seen["variables"].get("AGISTATUS") == "FAILURE"
    assert "CTI_LOOKUP" not in seen["variables"]
    assert seen["join"]["Queue"] == "support"
