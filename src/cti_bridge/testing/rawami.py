"""A blocking AMI connection on a plain socket, for the harness and test set-up.

Deliberately independent of cti-bridge's own AMI client (``cti_bridge.ami``): the PBX and
its configuration are checked without the code under test.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping

from cti_bridge.testing.chroot import AsteriskError

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RawAMI:
    """A blocking AMI connection on a plain socket, for harness checks and test set-up.

    Not the product's client (that is ``cti_bridge.ami``): it exists so that the PBX can be
    checked without it. Messages are dicts of each header's first value.
    """

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""
        self._sequence = 0
        self.banner = self._read_banner(time.monotonic() + timeout)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RawAMI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, action: str, headers: Mapping[str, str] | None = None) -> str:
        """Send an action; returns its ActionID. Values with CR/LF are refused."""
        self._sequence += 1
        action_id = f"raw-{self._sequence}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in (headers or {}).items():
            if CONTROL.search(key) or CONTROL.search(value):
                raise ValueError(f"AMI header {key!r} contains control characters")
            lines.append(f"{key}: {value}")
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    def action(
        self, action: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> dict[str, str]:
        """Send an action and return its response (events read meanwhile are dropped)."""
        action_id = self.send(action, headers)
        return self.wait_for(
            lambda m: "Response" in m and m.get("ActionID") == action_id, timeout, what=action
        )

    def login(self, username: str, secret: str, events: str = "on") -> dict[str, str]:
        """Plain-secret login; raises AsteriskError when Asterisk refuses it."""
        response = self.action("Login", {"Username": username, "Secret": secret, "Events": events})
        if response.get("Response") != "Success":
            raise AsteriskError(f"AMI login refused: {response.get('Message')}")
        return response

    def read(self, deadline: float) -> dict[str, str]:
        """The next message; TimeoutError at ``deadline`` (time.monotonic)."""
        while b"\r\n\r\n" not in self._buffer:
            self._fill(deadline)
        block, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        message: dict[str, str] = {}
        for line in block.decode(errors="replace").split("\r\n"):
            key, _, value = line.partition(": ")
            message.setdefault(key, value)
        return message

    def wait_for(
        self,
        match: Callable[[dict[str, str]], bool],
        timeout: float,
        seen: list[dict[str, str]] | None = None,
        what: str = "message",
    ) -> dict[str, str]:
        """Read until a message matches; every message read is appended to ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.read(deadline)
            except TimeoutError:
                raise TimeoutError(f"no AMI {what} within {timeout} s") from None
            if seen is not None:
                seen.append(message)
            if match(message):
                return message

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("AMI read timed out")
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("AMI read timed out") from None
        if not data:
            raise AMIClosed("connection closed by Asterisk")
        self._buffer += data

    def _read_banner(self, deadline: float) -> str:
        while b"\r\n" not in self._buffer:
            self._fill(deadline)
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode(errors="replace")


class AMIClosed(ConnectionError):
    """Asterisk closed the AMI connection."""
