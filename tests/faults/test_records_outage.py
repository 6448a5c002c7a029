"""PostgreSQL stopped mid-burst, and the daemon SIGKILLed during that outage (issue 13).

What is injected: a daemon (``cti-bridge run``, its own process) records a burst of calls
from the simulated PBX (a process of its own, so it outlives the daemon) into a
PostgreSQL server of the test's own. A few seconds into the burst that server is
stopped (``pg_ctl stop -m fast``: every connection cut); the burst goes on and every
call of it ends while the database is away; then the daemon is SIGKILLed (nothing
flushed, its memory lost). The server comes back after ``OUTAGE`` seconds in all, and
the daemon is started again on the same spool directory.

What must survive:

* during the outage ``/healthz`` says degraded (HTTP 503), with the records' error,
  and the spool holds the unwritten events on disk;
* after the restart, every call the PBX made is in the database exactly once (the
  linkedids the simulator wrote down = the records' linkedids, no more, no fewer),
  each ended, with an outcome and ``complete`` (its end came from the spool, not from a
  resync closing a lost call);
* the second run says it replayed what the first left, the spool is empty afterwards,
  and ``/healthz`` is ok again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti_bridge.store import upgrade
from tests.faults.records_support import SimProcess, daemon_for, records_in, spool_status
from tests.integration.dialer_support import DaemonProcess, free_port, wait_until
from tests.support.own_postgres import OwnPostgres, postgres_binaries
from tests.support.reliability import record

CALLS = 40
EVERY = 0.5  # seconds between two calls of the burst: 20 s of arrivals
OUTAGE = 30.0  # seconds from stopping the database to starting it again
STOP_AFTER = 6.0  # seconds into the burst


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if postgres_binaries() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    server = OwnPostgres(free_port()).init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    process = SimProcess(tmp_path / "sim")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()


def test_database_outage_with_a_crash_in_the_middle_loses_and_duplicates_nothing(
    tmp_path: Path, own_postgres: OwnPostgres, sim: SimProcess, daemons: list[DaemonProcess]
) -> None:
    upgrade(own_postgres.url)
    spool = tmp_path / "spool"
    first = daemon_for(tmp_path, "first", own_postgres.url, sim, spool_dir=spool)
    daemons.append(first)
    first.start()
    assert first.health()["status"] == "ok"

    sim.burst(CALLS, EVERY)
    time.sleep(STOP_AFTER)
    written_before = len(records_in(own_postgres.url))  # calls started so far
    own_postgres.stop()
    stopped_at = time.monotonic()

    # Degraded while the database is away; the unwritten events go to disk.
    degraded = wait_until(
        lambda: (h := first.health()).get("status") == "degraded" and h, 30, "/healthz degraded"
    )
    records = degraded["database"]["records"]
    assert records["status"] == "degraded" and records["last_error"]
    wait_until(sim.idle, 60, "every call of the burst ended")
    placed = sim.placed()
    assert len(placed) == CALLS
    on_disk = wait_until(
        lambda: (s := spool_status(first)).get("pending") and not s.get("unspooled") and s,
        10,
        "the unwritten events in the spool",
    )
    assert first.health()["status"] == "degraded"
    first.kill()  # SIGKILL: the backlog in memory is gone; the spool is what is left

    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped_at)))
    own_postgres.start()
    outage = time.monotonic() - stopped_at

    second = daemon_for(tmp_path, "second", own_postgres.url, sim, spool_dir=spool)
    daemons.append(second)
    second.start()
    wait_until(
        lambda: len(records_in(own_postgres.url)) >= CALLS and spool_status(second)["pending"] == 0,
        60,
        f"every call recorded\n{second.output()}",
    )
    rows = records_in(own_postgres.url)
    linkedids = [row["linkedid"] for row in rows]
    assert sorted(linkedids) == sorted(placed)  # every call, no other
    assert len(set(linkedids)) == len(linkedids)  # once each
    unfinished = [row for row in rows if row["ended_at"] is None or row["outcome"] is None]
    assert unfinished == []
    assert [row for row in rows if not row["complete"]] == []  # ends from the spool
    assert "replaying events an earlier run left unwritten" in second.output()
    wait_until(lambda: second.health().get("status") == "ok", 30, "/healthz ok again")
    assert sorted(p.name for p in spool.iterdir()) == ["spool.lock"]
    record(
        "PostgreSQL stopped mid-burst, the daemon SIGKILLed during the outage",
        injected=f"the database stopped {outage:.0f} s during a {CALLS}-call burst; SIGKILL"
        " of the daemon meanwhile; database and daemon started again",
        expected="degraded meanwhile; the spool replayed at start-up; every call once",
        records_expected=CALLS,
        records_stored=len(rows),
        duplicates=len(rows) - len(set(linkedids)),
        written_before_the_outage=written_before,
        events_spooled_at_the_kill=on_disk["pending"],
    )


def test_a_full_spool_refuses_loudly_and_the_memory_backlog_still_gets_written(
    tmp_path: Path, own_postgres: OwnPostgres, sim: SimProcess, daemons: list[DaemonProcess]
) -> None:
    """Injected: the spool's limit (``spool_max_bytes``) far below what a database
    outage of ~10 s produces. Survives: the daemon says so loudly (an error line naming
    the refused calls; ``/healthz`` degraded with ``spool.full`` and the refused count),
    and, as it did not crash, every call is written from memory once the database is
    back; then the spool is empty and ``/healthz`` ok."""
    upgrade(own_postgres.url)
    limit = 8192  # a couple of calls' worth of events
    daemon = daemon_for(
        tmp_path, "small", own_postgres.url, sim, spool_dir=tmp_path / "spool",
        spool_max_bytes=limit,
    )  # fmt: skip
    daemons.append(daemon)
    daemon.start()
    own_postgres.stop()
    stopped_at = time.monotonic()
    sim.burst(12, 0.3)
    wait_until(sim.idle, 60, "every call of the burst ended")
    full = wait_until(
        lambda: (s := spool_status(daemon)).get("full") and not s.get("unspooled") and s,
        10,
        "the spool full",
    )
    assert full["refused"] > 0 and full["bytes"] <= limit and full["status"] == "degraded"
    assert daemon.health()["status"] == "degraded"
    refusals = [
        line for line in daemon.output(500_000).splitlines() if "call record spool full" in line
    ]
    assert refusals and '"calls": ["main/' in refusals[0] and '"level": "error"' in refusals[0]
    time.sleep(max(0.0, 10.0 - (time.monotonic() - stopped_at)))
    own_postgres.start()
    placed = sim.placed()
    wait_until(
        lambda: (
            len(records_in(own_postgres.url)) >= len(placed)
            and spool_status(daemon).get("pending") == 0
        ),
        60,
        f"every call written from memory\n{daemon.output()}",
    )
    linkedids = [row["linkedid"] for row in records_in(own_postgres.url)]
    assert sorted(linkedids) == sorted(placed)
    wait_until(lambda: daemon.health().get("status") == "ok", 30, "/healthz ok again")
    record(
        "The spool full during a database outage",
        injected=f"spool_max_bytes {limit} during a ~10 s outage",
        expected="refusals logged as errors naming the calls, degraded; the daemon alive"
        " writes everything from memory afterwards",
        events_refused_by_the_spool=full["refused"],
        records_expected=len(placed),
        records_stored=len(linkedids),
        duplicates=len(linkedids) - len(set(linkedids)),
    )


def test_a_second_daemon_on_the_same_spool_refuses_to_start(
    tmp_path: Path, sim: SimProcess, daemons: list[DaemonProcess]
) -> None:
    """Injected: a second daemon configured with the running one's spool directory.
    Survives: the first (and its spool); the second exits at start with one line naming
    the directory."""
    url = f"sqlite:///{tmp_path / 'cti.sqlite3'}"
    upgrade(url)
    spool = tmp_path / "spool"
    first = daemon_for(tmp_path, "one", url, sim, spool_dir=spool)
    daemons.append(first)
    first.start()
    second = daemon_for(tmp_path, "two", url, sim, spool_dir=spool)
    daemons.append(second)
    with pytest.raises(AssertionError, match="exited"):
        second.start()
    assert second.process is not None and second.process.returncode != 0
    assert f"cti-bridge: {spool}: in use by another cti-bridge" in second.output()
    assert first.health()["status"] == "ok"
