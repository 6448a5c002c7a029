"""``/api/agi/lookup`` served by the real daemon (real HTTP, real SQLite): on with a service
token from ``[agi] token_env``, refusing operators' tokens; off (404) without one. The AGI
script then asks it the way the dialplan's AGI does."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.sim import SimulatedPBX
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    http,
    in_thread,
    login,
    prepared_store,
    started_daemon,
)
from tests.support.paths import AGI_SCRIPT

TOKEN = "daemon-agi-token-7c1e0b9d"
SCRIPT = AGI_SCRIPT


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("caller_lookup_daemon", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def daemon_with(tmp_path: Path, token: str | None, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    if token is None:
        monkeypatch.delenv("CTI_AGI_TOKEN", raising=False)
    else:
        monkeypatch.setenv("CTI_AGI_TOKEN", token)
    url, store = prepared_store(tmp_path)
    store.accounts.add_operator("anna", role="operator", password=PASSWORD)
    jan = store.customers.add_customer(
        "Jan Peeters", numbers=["050123456"], language="nl", tier="premium"
    )
    store.customers.add_contract(
        jan, valid_from=datetime.now(UTC).date() - timedelta(days=1), covered=["phone"]
    )
    store.close()
    sim = SimulatedPBX(reactor, seed=1)
    port = sim.listen(0)
    agi = None if token is None else {"token_env": "CTI_AGI_TOKEN"}
    daemon = await started_daemon(
        daemon_config(url, "127.0.0.1", port, sim.username, sim.secret, agi=agi)
    )
    daemon.sim = sim  # type: ignore[attr-defined]
    return daemon


@pytest_twisted.async_yield_fixture
async def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Daemon]:
    running = await daemon_with(tmp_path, TOKEN, monkeypatch)
    yield running
    await running.stop()
    await running.sim.stop()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_the_lookup_answers_the_service_token_only(daemon: Daemon) -> None:
    url = daemon.url + "api/agi/lookup?number=" + quote("+32 50 12 34 56")
    status, body = await http("GET", url, token=TOKEN)
    assert status == 200
    assert body["known"] is True and body["name"] == "Jan Peeters"
    assert body["priority"] == 10 and body["language"] == "nl"
    assert (await http("GET", url))[0] == 401
    operator_token = await login(daemon, "anna")
    assert (await http("GET", url, token=operator_token))[0] == 401
    status, body = await http("GET", daemon.url + "api/agi/lookup?number=0499", token=TOKEN)
    assert (status, body["known"]) == (200, False)


@pytest_twisted.ensureDeferred
async def test_the_script_asks_the_daemon(daemon: Daemon) -> None:
    script = load_script()
    settings = {"url": daemon.url, "token": TOKEN, "timeout": "2"}
    profile = await in_thread(script.lookup, "050123456", settings)
    assert script.variables_for(profile)["CTI_PRIORITY"] == "10"


@pytest_twisted.ensureDeferred
async def test_without_a_token_the_lookup_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await daemon_with(tmp_path, None, monkeypatch)
    try:
        status, body = await http(
            "GET", running.url + "api/agi/lookup?number=050123456", token=TOKEN
        )
        assert status == 404 and "not enabled" in body["error"]
    finally:
        await running.stop()
        await running.sim.stop()  # type: ignore[attr-defined]
