"""The records' fault tests: a simulated PBX process as the traffic source, daemons as
processes (``cti-bridge run``), and what the database holds at the end."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.integration.dialer_support import DaemonProcess, free_port, wait_until
from tests.support.paths import REPO

__all__ = ["SimProcess", "daemon_for", "records_in", "spool_status"]


class SimProcess:
    """``tests.support.sim_process`` running; ``burst`` starts its calls."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_urlsafe(12)
        self.log = (folder / "sim.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sim_process", "--folder", str(folder),
             f"--secret={self.secret}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        self.port = int(wait_until(self._port, 30, "the simulated PBX listening"))

    def _port(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"sim exited: {(self.folder / 'sim.log').read_text()[-2000:]}")
        path = self.folder / "port"
        return path.read_text() if path.exists() and path.read_text() else None

    def burst(self, calls: int, every: float) -> None:
        (self.folder / "go.tmp").write_text(json.dumps({"calls": calls, "every": every}))
        (self.folder / "go.tmp").rename(self.folder / "go")

    def placed(self) -> list[str]:
        path = self.folder / "calls"
        return path.read_text().split() if path.exists() else []

    def idle(self) -> bool:
        return (self.folder / "idle").exists()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def daemon_for(
    folder: Path,
    name: str,
    db_url: str,
    sim: SimProcess,
    *,
    spool_dir: Path | None,
    **database: Any,
) -> DaemonProcess:
    """A daemon on ``db_url`` and the simulated PBX, its spool in ``spool_dir`` (None:
    no spool, the memory backlog alone)."""
    spool = "" if spool_dir is None else str(spool_dir)
    config = {
        "node": {"name": name},
        "web": {"host": "127.0.0.1", "port": free_port()},
        "database": {"url": db_url, "spool_dir": spool, **database},
        "bus": {"url": "memory://"},
        "phone": {"default_region": "BE"},
        "pbx": [
            {
                "name": "main",
                "host": "127.0.0.1",
                "port": sim.port,
                "username": "cti",
                "secret": sim.secret,
                "ping_interval": 5,
            }
        ],
    }
    return DaemonProcess(folder, name, config)


def spool_status(daemon: DaemonProcess) -> dict[str, Any]:
    found: dict[str, Any] = daemon.health().get("database", {}).get("spool", {})
    return found


def records_in(db_url: str, pbx: str = "main") -> list[dict[str, Any]]:
    """Every call record of ``pbx``, as rows (a connection of the test's own)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT linkedid, outcome, ended_at, complete, hung_up_by FROM calls "
                    "WHERE pbx = :pbx ORDER BY linkedid"
                ),
                {"pbx": pbx},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def watch(seconds: float, every: float = 0.5) -> Iterator[float]:
    """Seconds elapsed, every ``every`` for ``seconds``."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        yield elapsed
        time.sleep(every)
