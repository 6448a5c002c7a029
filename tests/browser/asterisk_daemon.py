"""The real cti-bridge daemon on the session's real Asterisk 22, for browser tests.

Run as a module (``python -m tests.browser.asterisk_daemon``) it is the daemon process:
the integration tests' own set-up (``tests/integration/integration_support.py``:
``prepared_store``, ``daemon_config``, ``started_daemon``) with the operators of the lab's
queues (anna on ``Local/1001@agents``, bart on ``Local/1002@agents``), chris on
``PJSIP/1003`` (a lab endpoint with no static contact: unregistered until a phone
registers) and the supervisor sofie. It says ``{"ready": URL, "password": ...}`` once the
AMI link is up and resynchronised, then answers ``{"cmd": "status"}`` (``/healthz``'s
figures) and ``{"cmd": "quit"}`` on stdin, like ``console_server.py``. The AMI secret comes
in ``CTI_AMI_SECRET`` (``secret_env``), as an installation would pass it.

Why a process of its own: the test drives Chromium with Playwright's synchronous API and
the daemon needs a running reactor (see ``console_server.py``).

Imported by a test, it gives the fixtures' parts: ``AsteriskDaemon`` (that process) and
``QueueEvents``, the test's own AMI listener, which notes when it read each queue event
(``time.time()``), so a test measures the wallboard from the PBX's event, not from a
sleep or from the Originate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.testing.asterisk import AMIClosed, AsteriskInstance, RawAMI
from tests.browser.console_harness import DaemonProcess
from tests.support.paths import REPO

#: (username, role, devices): the lab's queue members, a phone that never registered,
#: the supervisor who watches the wallboard.
ACCOUNTS: tuple[tuple[str, str, list[str]], ...] = (
    ("anna", "operator", ["Local/1001@agents"]),
    ("bart", "operator", ["Local/1002@agents"]),
    ("chris", "operator", ["PJSIP/1003"]),
    ("sofie", "supervisor", []),
)
QUEUE_EVENTS = frozenset({"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"})
#: The lab's queue members (config/asterisk/queues.conf), in both queues.
MEMBERS = {"1001": "Local/1001@agents/n", "1002": "Local/1002@agents/n"}


class AsteriskDaemon(DaemonProcess):
    """The daemon process on ``pbx``, with its own SQLite file in ``data_dir``."""

    def __init__(self, pbx: AsteriskInstance, data_dir: Path):
        argv = [sys.executable, "-m", "tests.browser.asterisk_daemon", "--data-dir", str(data_dir)]
        argv += ["--ami-host", pbx.ami_host, "--ami-port", str(pbx.ami_port)]
        argv += ["--ami-user", pbx.username]
        env = {**os.environ, "CTI_AMI_SECRET": pbx.secret}
        super().__init__(argv, data_dir, env=env, cwd=REPO)

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.command("status")["health"]
        return health


class QueueEvents:
    """The test's own AMI connection (``Events: agent``), read in a thread: every
    ``QueueCaller*`` event with the wall-clock time it was read."""

    def __init__(self, pbx: AsteriskInstance):
        self._ami: RawAMI = pbx.ami(events="agent")
        self._seen: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._read, daemon=True, name="queue-events")
        self._thread.start()

    def _read(self) -> None:
        while not self._stopping:
            try:
                message = self._ami.read(time.monotonic() + 0.5)
            except TimeoutError:
                continue
            except (AMIClosed, OSError):
                return
            at = time.time()
            if message.get("Event") in QUEUE_EVENTS:
                with self._lock:
                    self._seen.append((at, message))
                    self._lock.notify_all()

    def wait(self, events: frozenset[str], number: str, timeout: float = 30.0) -> float:
        """When the first of ``events`` about the caller ``number`` was read (epoch s)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for at, message in self._seen:
                    if message["Event"] in events and message.get("CallerIDNum") == number:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {sorted(events)} for {number} within {timeout} s")
                self._lock.wait(left)

    def close(self) -> None:
        self._stopping = True
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self._ami.close()


@pytest.fixture
def pbx_daemon(asterisk: AsteriskInstance, tmp_path: Path) -> Iterator[AsteriskDaemon]:
    """The test's own daemon on the session's Asterisk. Afterwards the PBX is as the next
    test expects it: members unpaused, no simulated phones, no channel left."""
    try:
        daemon = AsteriskDaemon(asterisk, tmp_path)
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        for ext, interface in MEMBERS.items():
            asterisk.cli(f"queue unpause member {interface}")
            asterisk.clear_operator(ext)
        asterisk.wait_idle(30, 1)


@pytest.fixture
def queue_events(asterisk: AsteriskInstance) -> Iterator[QueueEvents]:
    events = QueueEvents(asterisk)
    try:
        yield events
    finally:
        events.close()


# -- the daemon process ---------------------------------------------------------------------


def _say(transport: Any, message: dict[str, Any]) -> None:
    line = json.dumps(message).encode() + b"\n"
    if transport is not None:
        transport.write(line)
    else:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> None:
    # Imported here: the test process only needs the classes above.
    from twisted.internet import defer, stdio
    from twisted.protocols.basic import LineReceiver

    from cti_bridge.log import configure_logging
    from tests.integration.integration_support import (
        PASSWORD,
        daemon_config,
        eventually,
        prepared_store,
        started_daemon,
    )

    configure_logging("warning", sys.stderr)
    url, store = prepared_store(Path(args.data_dir))
    for username, role, devices in ACCOUNTS:
        store.accounts.add_operator(
            username, role=role, password=PASSWORD, name=username.title(), devices=devices
        )
    store.close()
    config = daemon_config(
        url,
        args.ami_host,
        args.ami_port,
        args.ami_user,
        None,
        auth="plain",
        secret_env="CTI_AMI_SECRET",
    )
    daemon = await started_daemon(config)
    done: defer.Deferred[None] = defer.Deferred()

    class Commands(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            try:
                what = json.loads(line).get("cmd")
                if what == "status":
                    answer = {"ok": True, "health": daemon.health()}
                elif what == "quit":
                    answer = {"ok": True}
                    if not done.called:
                        done.callback(None)
                else:
                    answer = {"ok": False, "error": f"unknown command {what!r}"}
            except Exception as error:  # the test sees it and fails with the reason
                answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            _say(self.transport, answer)

        def connectionLost(self, reason: object = None) -> None:
            if not done.called:  # the test process went away: stop too
                done.callback(None)

    try:
        await eventually(
            lambda: (
                daemon.health()["ami"]["status"] == "ok" and daemon.pipelines["main"].resyncs > 0
            ),
            30,
            "the AMI link up and resynchronised",
        )
    except AssertionError as error:
        _say(None, {"ok": False, "error": str(error), "health": daemon.health()})
        await daemon.stop()
        return
    commands = Commands()
    stdio.StandardIO(commands)
    _say(commands.transport, {"ready": daemon.url, "password": PASSWORD})
    await done
    await daemon.stop()


def main() -> None:
    from twisted.internet import defer, task

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ami-host", required=True)
    parser.add_argument("--ami-port", type=int, required=True)
    parser.add_argument("--ami-user", required=True)
    args = parser.parse_args()
    task.react(lambda _reactor: defer.ensureDeferred(_serve(args)))


if __name__ == "__main__":
    main()
