"""The daemon reads AMI fast enough that Asterisk never drops it for writing too slowly.

Injects: the recorded burst (``timestamped/12-burst.ami``: 40 calls, 3,354 events in 67
s) replayed at ten times its pace by a PBX process of its own (``tests/support/
paced_pbx.py``) that writes as Asterisk's manager does: every message within
``writetimeout`` (100 ms) or the session is dropped. The reader is a real ``cti-bridge
run`` process writing its records to SQLite. Survives: no write waited anywhere near
100 ms (the figures are logged), the link was never dropped, and the 40 calls are
recorded as the trace's README says (``TIMESTAMPED_BURST_COUNTS``), once each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from cti_bridge.store import open_store, upgrade
from cti_bridge.testing.store import cheap_hasher
from tests.integration.dialer_support import DaemonProcess, free_port, wait_until
from tests.support.calls_facts import TIMESTAMPED_BURST_COUNTS
from tests.support.paced_pbx import events
from tests.support.paths import REPO
from tests.support.reliability import record

log = structlog.get_logger("tests.faults")

TRACE = REPO / "tests" / "fixtures" / "ami-traces" / "timestamped" / "12-burst.ami"
SPEED = 10.0


@pytest.fixture
def paced_pbx() -> Iterator[tuple[subprocess.Popen[str], int]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.paced_pbx", "--trace", str(TRACE),
         "--speed", str(SPEED)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("port "), line
        yield server, int(line.split()[1])
    finally:
        server.kill()
        server.wait(10)


def test_a_burst_at_ten_times_its_pace_never_makes_asterisk_wait_100_ms(
    paced_pbx: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    server, port = paced_pbx
    url = f"sqlite:///{tmp_path / 'cti.sqlite3'}"
    upgrade(url)
    store = open_store(url, accounts={"hasher": cheap_hasher()})
    try:
        for username, ext in (("anna", "1001"), ("bart", "1002")):
            store.accounts.add_operator(
                username, role="operator", password="x" * 12, devices=[f"Local/{ext}@agents"]
            )
        config: dict[str, Any] = {
            "node": {"name": "reader"},
            "web": {"host": "127.0.0.1", "port": free_port()},
            "database": {"url": url},
            "bus": {"url": "memory://"},
            "phone": {"default_region": "BE"},
            "pbx": [
                {
                    "name": "main",
                    "host": "127.0.0.1",
                    "port": port,
                    "username": "cti",
                    "secret": "not-checked-by-the-paced-pbx",
                    "auth": "plain",
                }
            ],
        }
        daemon = DaemonProcess(tmp_path, "reader", config)
        try:
            daemon.start()
            assert server.stdout is not None
            figures = json.loads(server.stdout.readline())
            log.info("paced burst read", **figures)
            assert figures["events"] == len(events(TRACE.read_bytes()))
            assert not figures["dropped"] and not figures["closed"], figures
            # Asterisk would drop the reader at 100 ms; far from it, on a loaded machine.
            assert figures["max_write_wait_ms"] < 50, figures

            def all_ended() -> list[dict[str, Any]] | None:
                calls = store.queries.list_calls(limit=100)
                return calls if len(calls) == 40 and all(c["ended_at"] for c in calls) else None

            calls = wait_until(all_ended, 60, "the burst's 40 calls recorded")
            assert daemon.health()["ami"]["status"] == "ok"  # never dropped, never redialled
            reconnects = daemon.health()["ami"]["pbx"]["main"]["reconnect_attempts"]
        finally:
            daemon.stop()
    finally:
        store.close()
    anna, bart, abandoned, timeouts = TIMESTAMPED_BURST_COUNTS  # the README's table
    assert Counter(c["outcome"] for c in calls) == {
        "answered": anna + bart,
        "abandoned": abandoned + timeouts,
    }
    assert Counter(c["answered_by"] for c in calls if c["answered_by"]) == {
        "anna": anna,
        "bart": bart,
    }
    assert len({c["linkedid"] for c in calls}) == 40
    assert reconnects == 0
    record(
        "A slow reader: the burst at 10x",
        injected=f"the timestamped burst ({figures['events']} events, 40 calls) at {SPEED:g}x"
        " its pace, written as Asterisk writes (100 ms writetimeout)",
        expected="no write waits near 100 ms; link never dropped; 40 records as the README",
        longest_write_wait_ms=figures["max_write_wait_ms"],
        most_bytes_unread=figures["max_unsent_bytes"],
        burst_seconds=figures["seconds"],
        records_expected=40,
        records_stored=len(calls),
        reconnects=reconnects,
    )
