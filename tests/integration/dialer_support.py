"""The callback dialer's real-Asterisk tests: its config, a daemon as a separate process,
and waits on what the store and the PBX say.

The PBX side is read from the dial audit of ``dialplans/helpdesk.conf`` (AstDB
``cti_rung/`` and ``cti_dialled/``, ``AsteriskInstance.dial_audit()``): what Asterisk
itself rang and dialled per agreement and attempt, whatever cti-bridge stored.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cti_bridge.testing.asterisk import AsteriskInstance

T = TypeVar("T")

#: Every day, all day, no holidays: the tests run at any hour and on any date.
ALL_HOURS = dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "00:00-24:00")
#: How long [callback] rings a customer in these tests (the default is 30 s): longer than
#: the 3 s the answering customers of [pstn-out] take, short enough for a test.
CUSTOMER_RING_SECONDS = "6"


def dialer_section(**overrides: Any) -> dict[str, Any]:
    """``[dialer]`` for the tests: short rings and retries, owner first for an hour."""
    section: dict[str, Any] = {
        "enabled": True,
        "context": "callback",
        "number_format": "national",
        "operator_ring_seconds": 3,
        "max_attempts": 2,
        "retry_seconds": [2],
        "owner_grace_seconds": 3600,
        "timezone": "Europe/Brussels",
        "holidays": "",
        "pass_seconds": 0.5,
        "hours": dict(ALL_HOURS),
    }
    section.update(overrides)
    return section


def config_data(
    db_url: str,
    pbx: AsteriskInstance,
    *,
    node: str,
    web_port: int = 0,
    dialer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A daemon's whole config (as ``parse_config`` takes it) against ``pbx``."""
    return {
        "node": {"name": node},
        "web": {"host": "127.0.0.1", "port": web_port, "login_max_failures": 3},
        "database": {"url": db_url},
        "bus": {"url": "memory://"},
        "phone": {"default_region": "BE"},
        "pbx": [
            {
                "name": "main",
                "host": pbx.ami_host,
                "port": pbx.ami_port,
                "username": pbx.username,
                "secret": pbx.secret,
                "auth": "plain",
                "ping_interval": 5,
            }
        ],
        "dialer": dict(dialer or dialer_section()),
    }


def to_toml(data: Mapping[str, Any]) -> str:
    """The little TOML these configs need: tables, arrays of tables, scalars, lists."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"no TOML for {v!r}")

    def table(prefix: str, body: Mapping[str, Any], header: str) -> None:
        lines.append(header)
        nested = []
        for key, v in body.items():
            if isinstance(v, Mapping):
                nested.append((key, v))
            else:
                lines.append(f"{key} = {value(v)}")
        for key, v in nested:
            table(f"{prefix}.{key}", v, f"[{prefix}.{key}]")

    for key, v in data.items():
        if isinstance(v, Mapping):
            table(key, v, f"[{key}]")
        elif isinstance(v, list) and v and isinstance(v[0], Mapping):
            for item in v:
                table(key, item, f"[[{key}]]")
        else:
            raise TypeError(f"top-level {key} must be a table")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll the blocking ``check`` until it returns something (not None/False)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


def iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


class DaemonProcess:
    """``cti-bridge run --config <file>`` as its own process (an administrator's start),
    its output in ``<folder>/<name>.log``; ``kill()`` is SIGKILL, nothing flushed."""

    def __init__(self, folder: Path, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.port = int(config["web"]["port"])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config_path = folder / f"{name}.toml"
        # The records' spool in the test's folder, not in the working directory (its
        # default for a PostgreSQL database).
        database = {"spool_dir": str(folder / f"{name}-spool"), **config.get("database", {})}
        self.config_path.write_text(to_toml({**config, "database": database}))
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until its AMI link is up (``/healthz``)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cti_bridge.app.cli", "run", "--config",
                 str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        wait_until(self._ami_up, timeout, f"{self.name}: the AMI link up\n{self.output()}")

    def _ami_up(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited\n{self.output()}")
        health = self.health()
        return bool(health) and health.get("ami", {}).get("status") == "ok"

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except urllib.error.HTTPError as e:  # 503 while degraded: the body still says why
            data = json.loads(e.read())
            return data
        except OSError:
            return {}

    def dialer_status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.health().get("database", {}).get("dialer", {})
        return found

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def output(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no output)"
