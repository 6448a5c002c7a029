"""A redis-server of a test's own, on a free port, so that it can be killed and restarted
without disturbing the shared Redis other tests use."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["PrivateRedis"]


class PrivateRedis:
    """A redis-server of this test's own, so that it can be killed and restarted."""

    def __init__(self, folder: Path | Any) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
