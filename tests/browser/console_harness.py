"""The test side of the browser tests: the daemon subprocess and Chromium.

``ConsoleServer`` runs ``console_server.py`` (a real daemon on the simulated PBX, see
there), ``asterisk_daemon.AsteriskDaemon`` the daemon on the real Asterisk; each is a
``DaemonProcess``, spoken to over its stdin/stdout; a reader thread only moves its stdout
lines into queues (the test process runs no reactor). ``Browsers`` launches Debian's Chromium
through Playwright, one browser process with a fresh profile per operator, so two
operators' screens share nothing (no cookies, no storage, no sockets).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 30.0


class DaemonProcess:
    """A daemon script in its own process, spoken to in JSON lines: it prints
    ``{"ready": URL, "password": ...}`` once it serves, answers each command with one line
    and reports events (lines with ``"event"``) in between."""

    def __init__(
        self,
        argv: list[str],
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.log_path = data_dir / "daemon.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=cwd,
        )
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seen_events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.ready = self._answer(START_TIMEOUT, "start")
        except AssertionError:
            self.ready = {"ok": False, "error": "no answer"}
        if "ready" not in self.ready:
            problem = f"the daemon did not start: {self.ready}\n{self.stderr()}"
            self.process.kill()  # ours, by its own handle
            self.process.wait(timeout=5)
            self._log.close()
            raise AssertionError(problem)
        self.url: str = self.ready["ready"]
        self.password: str = self.ready["password"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            (self._events if "event" in message else self._answers).put(message)
        self._answers.put({"ok": False, "error": "the daemon process ended"})

    def stderr(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def _answer(self, timeout: float, doing: str) -> dict[str, Any]:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the daemon ({doing})\n{self.stderr()}") from None

    def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self.process.stdin.flush()
        answer = self._answer(10.0, cmd)
        assert answer.get("ok"), f"{cmd} failed: {answer}"
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("quit")
                self.process.wait(timeout=15)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    # -- the HTTP API, as an integrator would use it -----------------------------------

    def api(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def login(self, username: str) -> str:
        status, body = self.api(
            "POST", "/api/login", body={"username": username, "password": self.password}
        )
        assert status == 200, body
        token: str = body["token"]
        return token

    def eventually(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


class ConsoleServer(DaemonProcess):
    """``console_server.py``: the daemon on the simulated PBX (see there)."""

    def __init__(self, data_dir: Path, *, dialer: bool = False):
        extra = ["--dialer"] if dialer else []
        argv = [sys.executable, str(HERE / "console_server.py"), "--data-dir", str(data_dir)]
        super().__init__([*argv, *extra], data_dir)

    def call(self, scenario: str, caller: tuple[str, str], **options: Any) -> str:
        """Place a call on the simulated PBX now; returns its linkedid."""
        answer = self.command("call", scenario=scenario, caller=list(caller), options=options)
        linkedid: str = answer["linkedid"]
        return linkedid

    def ring(self, device: str, linkedid: str, timeout: float = 10.0) -> dict[str, Any]:
        """The moment ``device`` started ringing for the call (the pop's trigger)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self._seen_events:
                if event.get("device") == device and event.get("linkedid") == linkedid:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{device} never rang for {linkedid}")
            try:
                self._seen_events.append(self._events.get(timeout=left))
            except queue.Empty:
                continue


def chromium_problem() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return (
            f"{CHROMIUM} is missing: install Debian's Chromium "
            "(apt-get install -y chromium chromium-driver); never `playwright install`"
        )
    return None
