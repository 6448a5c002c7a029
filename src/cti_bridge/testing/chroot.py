"""The cached Debian sid root and what its instances share: the lock, the proc mount,
clean-up after killed runs, the process that forks Asterisk, and free loopback ports.

Several test processes (CI, engineers, benchmarks) use one root at the same time; all
coordination between them is in this module, under one lock file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

DEFAULT_ROOT = Path("/var/cache/cti-bridge/asterisk-sid")
ROOT_STAMP = ".cti-bridge-root"
INSTANCES = "var/lib/cti-instances"
ASTERISK = "/usr/sbin/asterisk"


class AsteriskError(RuntimeError):
    """Asterisk could not be prepared, started, reached or stopped; the message says why."""


def asterisk_root() -> Path:
    """The cached root: ``$CTI_ASTERISK_ROOT`` or the default that scripts/asterisk-root uses."""
    return Path(os.environ.get("CTI_ASTERISK_ROOT") or DEFAULT_ROOT)


def root_problem(root: Path) -> str | None:
    """Why ``root`` cannot run Asterisk, or None when it is a complete cached root."""
    if not (root / ROOT_STAMP).is_file():
        return f"{root} is not a complete Asterisk root (run scripts/asterisk-root)"
    if not (root / ASTERISK.lstrip("/")).is_file():
        return f"{root} has no {ASTERISK}"
    return None


@contextlib.contextmanager
def instances_lock(root: Path) -> Iterator[None]:
    """Serialises instance set-up/teardown across processes (proc mount, stale clean-up)."""
    base = root / INSTANCES
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def live_instances(root: Path) -> list[Path]:
    live = []
    for directory in (root / INSTANCES).iterdir():
        owner = read_pid(directory / "owner") if directory.is_dir() else None
        if owner is not None and pid_alive(owner):
            live.append(directory)
    return live


def reap_stale_instances(root: Path) -> None:
    """Remove instances whose owner died without stopping them (killed test run)."""
    live = set(live_instances(root))
    for directory in (root / INSTANCES).iterdir():
        if not directory.is_dir() or directory in live:
            continue
        pid = read_pid(directory / "asterisk.pid")
        if pid is not None and runs_in(pid, root):
            kill_group(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def runs_in(pid: int, root: Path) -> bool:
    try:
        return Path(f"/proc/{pid}/root").resolve() == root
    except OSError:
        return False


def kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def proc_mounted(root: Path) -> bool:
    target = str(root / "proc")
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if line.strip())


def ensure_proc(root: Path) -> None:
    if not proc_mounted(root):
        run(["mount", "-t", "proc", "proc", str(root / "proc")])


def release_proc(root: Path) -> None:
    if proc_mounted(root):
        run(["umount", str(root / "proc")])


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise AsteriskError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")


_SETPRIV = shutil.which("setpriv")
_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn(argv: list[str], output: Path) -> subprocess.Popen[bytes]:
    """Start Asterisk so that it gets SIGKILL when the test process dies.

    ``PR_SET_PDEATHSIG`` (set by ``setpriv``) fires when the *thread* that forked dies, so
    every instance is forked by one spawner thread that lives as long as the process: an
    instance started from a short-lived thread (``deferToThread``) is not killed with it.
    """
    global _spawner  # noqa: PLW0603 - one spawner thread per process
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(1, "asterisk-spawner")
    if _SETPRIV:
        argv = [_SETPRIV, "--pdeathsig", "KILL", *argv]

    def start() -> subprocess.Popen[bytes]:
        with output.open("wb") as log:
            return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    return _spawner.submit(start).result()


def free_ports(kind: socket.SocketKind, count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1, held open together so that none repeats."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_udp_range(count: int) -> int:
    """An even start of ``count`` free UDP ports on 127.0.0.1, below the ephemeral range
    (RTP ranges of instances, media ports of SIPp)."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(20000, 32000 - count, 2)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(start, start + count):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return start
    raise AsteriskError("no free UDP port range between 20000 and 32000")
