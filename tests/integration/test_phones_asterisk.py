"""The operators' phones on a real Asterisk 22: a SIPp phone registers lab endpoint 1003
(no static contact), ``/healthz`` ``phones`` says registered; it unregisters (REGISTER
``Expires: 0``) and ``/healthz`` says unregistered; the static lab phones are listed by
``PJSIPShowEndpoints`` and unreachable while no SIPp answers their qualify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted

from cti_bridge.testing.asterisk import AsteriskInstance
from cti_bridge.testing.sipp import sip_register
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    in_thread,
    prepared_store,
    started_daemon,
)


def phone(health: dict[str, Any], device: str) -> dict[str, Any] | None:
    for found in health["phones"]["pbx"]["main"]["phones"]:
        if found["device"] == device:
            return dict(found)
    return None


@pytest_twisted.ensureDeferred
async def test_a_phone_registers_and_unregisters(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    url, store = prepared_store(tmp_path)
    store.accounts.add_operator("chris", role="operator", password=PASSWORD, devices=["PJSIP/1003"])
    config = daemon_config(
        url, asterisk.ami_host, asterisk.ami_port, asterisk.username, asterisk.secret, auth="plain"
    )
    daemon = await started_daemon(config)
    port = None
    try:

        def state() -> str | None:
            found = phone(daemon.health(), "PJSIP/1003")
            return None if found is None else str(found["state"])

        await eventually(lambda: state() == "unregistered", 20, "1003 unregistered at start")
        assert daemon.health()["phones"]["pbx"]["main"]["endpoint_list"] == "listed"
        assert daemon.health()["phones"]["status"] == "degraded"
        assert daemon.health()["status"] == "ok"  # the phones do not count

        port = await in_thread(sip_register, asterisk, "1003", 300)
        await eventually(lambda: state() == "registered", 10, "1003 registered")
        found = phone(daemon.health(), "PJSIP/1003")
        assert found is not None and found["operator"] == "chris" and found["since"]

        await in_thread(sip_register, asterisk, "1003", 0, port)
        port = None
        await eventually(lambda: state() == "unregistered", 10, "1003 unregistered")
    finally:
        if port is not None:
            await in_thread(sip_register, asterisk, "1003", 0, port)
        await daemon.stop()
        store.close()
