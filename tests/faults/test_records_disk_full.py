"""The disk full under the SQLite database and the records' spool (issue 13).

What is injected: a daemon (``cti-bridge run``, its own process) on SQLite, the database
file and the spool (in its default place, ``<file>-spool``) on a small tmpfs of their own.
A few seconds into a burst of calls from the simulated PBX (a process of its own) the
file system is filled by another file until ``ENOSPC`` and kept full (the filler takes
every block freed meanwhile) until every call of the burst has ended and a while after;
then the file is removed.

What must survive:

* while full, ``/healthz`` is degraded and says why in words: the records'
  ``last_error`` is SQLite's "database or disk is full" (or its I/O error), the
  spool's "No space left on device"; the daemon stays up;
* no corruption: SQLite's ``PRAGMA integrity_check`` is ``ok``, and every line the
  spool holds is whole (the daemon reads them back without a damaged line);
* recovery without a restart once space returns: every call the PBX made is recorded
  exactly once, ended, and ``/healthz`` is ok again with the spool empty.

Not covered, by design: a crash *while* the disk is full loses the events that neither
the database nor the spool could take (they were in memory only); docs/storage.md says so.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti_bridge.store import upgrade
from tests.faults.records_support import SimProcess, daemon_for, records_in, spool_status
from tests.integration.dialer_support import wait_until
from tests.support.reliability import record
from tests.support.small_disk import small_tmpfs

CALLS = 30
EVERY = 0.5
FULL_AFTER = 4.0  # seconds into the burst
DISK = "24m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own (root mounts it: the suite runs as root here and in CI)."""
    with small_tmpfs(tmp_path / "disk", DISK) as mount:
        yield mount


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    process = SimProcess(tmp_path / "sim")
    try:
        yield process
    finally:
        process.stop()


class KeptFull:
    """Another file that takes every block the file system frees (SQLite gives some
    back when a transaction fails), until ``release``: the disk stays full."""

    def __init__(self, disk: Path) -> None:
        self.path = disk / "filler"
        self._out = self.path.open("wb", buffering=0)
        self._stop = threading.Event()
        self._take()
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()

    def _take(self) -> None:
        for size in (65536, 4096, 512):
            try:
                while True:
                    self._out.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC

    def _keep(self) -> None:
        while not self._stop.wait(0.02):
            self._take()

    def release(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._out.close()
        self.path.unlink()


def test_a_full_disk_is_reported_survived_and_recovered_from(
    tmp_path: Path, small_disk: Path, sim: SimProcess
) -> None:
    url = f"sqlite:///{small_disk / 'cti.sqlite3'}"
    upgrade(url)
    # The spool where it is by default, next to the SQLite file: on the same disk.
    spool_dir = Path(f"{small_disk / 'cti.sqlite3'}-spool")
    daemon = daemon_for(tmp_path, "full", url, sim, spool_dir=spool_dir)
    try:
        daemon.start()
        sim.burst(CALLS, EVERY)
        time.sleep(FULL_AFTER)
        full = KeptFull(small_disk)

        def reported() -> dict[str, object] | None:
            health = daemon.health()
            database = health.get("database", {})
            records, spool = database.get("records", {}), database.get("spool", {})
            error = str(records.get("last_error") or "")
            if health.get("status") != "degraded" or not error:
                return None
            if "No space left" not in str(spool.get("last_error") or ""):
                return None
            return {"records": error, "spool": spool["last_error"]}

        errors = wait_until(reported, 60, "/healthz degraded, saying why")
        assert "full" in str(errors["records"]) or "I/O" in str(errors["records"])
        wait_until(sim.idle, 60, "every call of the burst ended")
        placed = sim.placed()
        assert len(placed) == CALLS
        time.sleep(3)
        assert daemon.health()["status"] == "degraded"
        assert daemon.process is not None and daemon.process.poll() is None  # still up

        full.release()
        wait_until(
            lambda: (
                len(records_in(url)) >= CALLS
                and spool_status(daemon).get("pending") == 0
                and spool_status(daemon).get("unspooled") == 0
            ),
            90,
            f"every call recorded once space returned\n{daemon.output()}",
        )
        rows = records_in(url)
        linkedids = [row["linkedid"] for row in rows]
        assert sorted(linkedids) == sorted(placed) and len(set(linkedids)) == len(linkedids)
        assert [row for row in rows if row["ended_at"] is None or row["outcome"] is None] == []
        wait_until(lambda: daemon.health().get("status") == "ok", 30, "/healthz ok again")
        spool = spool_status(daemon)
        assert spool["damaged"] == 0 and spool["write_errors"] > 0
        with sqlite3.connect(small_disk / "cti.sqlite3") as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        output = daemon.output(200_000)
        assert "call record spool cannot write" in output
        assert (  # the spool wrote again, or the database took everything first
            "call record spool writes again" in output
            or "call record spool: nothing left to write" in output
        )
        record(
            "The disk full (SQLite and the spool on a small tmpfs)",
            injected="the filesystem of the database and the spool filled mid-burst, then"
            " space returned",
            expected="clear errors, degraded, no corruption (integrity_check ok), every call"
            " once after the space returns, no restart",
            records_expected=CALLS,
            records_stored=len(rows),
            duplicates=len(rows) - len(set(linkedids)),
            spool_write_errors=spool["write_errors"],
            integrity_check="ok",
        )
    finally:
        daemon.stop()
