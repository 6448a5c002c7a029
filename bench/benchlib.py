"""What every benchmark here shares: the environment, the trace stream, timing, output.

Output format (issue 5): one line per contender, ``<contender>: <value> <unit>``; every
other line starts with ``#``. Timing is CPU time of this process (``time.process_time``)
unless a benchmark says otherwise: the machine is shared, and CPU time does not count the
slices another process took from us, while wall time does. Each figure is the best of
several rounds (the least disturbed one); the spread is printed as context.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TRACES = ROOT / "tests" / "fixtures" / "ami-traces"
BURST = TRACES / "12-burst.ami"
BENCH_PYTHON = BENCH / ".venv" / "bin" / "python"


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (its parents are)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing: "asterisk" of asterisk.manager
        return False


def ensure_modules(*modules: str) -> list[str]:
    """Re-run this script in bench/.venv when a peer library is missing here.

    The peers (panoramisk, pyst2) are not cti-bridge dependencies; ``bench/setup``
    installs them with cti-bridge itself into bench/.venv. Returns the modules that are
    still missing (when bench/.venv does not exist either) so the caller can skip them.
    """
    missing = [m for m in modules if not _importable(m)]
    here = Path(sys.executable) == BENCH_PYTHON
    if missing and BENCH_PYTHON.exists() and not here and not os.environ.get("CTI_BENCH_REEXEC"):
        os.environ["CTI_BENCH_REEXEC"] = "1"
        os.execv(str(BENCH_PYTHON), [str(BENCH_PYTHON), *sys.argv])
    return missing


def context(**extra: object) -> None:
    """The ``#`` lines that say where a figure was measured."""
    load = os.getloadavg()
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"# python {platform.python_version()} ({sys.executable})")
    print(f"# cpu: {cpu}; {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f}")
    for key, value in extra.items():
        print(f"# {key}: {value}")
    sys.stdout.flush()


def split_banner(trace: bytes) -> tuple[bytes, bytes]:
    """``(banner line, rest)``; the banner only comes once per connection."""
    if trace.startswith(b"Asterisk Call Manager"):
        end = trace.index(b"\n") + 1
        return trace[:end], trace[end:]
    return b"", trace


def repeated_stream(trace: bytes, repeat: int) -> bytes:
    """One connection's bytes: the banner, then the trace's messages ``repeat`` times."""
    banner, body = split_banner(trace)
    if not body.endswith(b"\r\n\r\n") and not body.endswith(b"\n\n"):
        body += b"\r\n"
    return banner + body * repeat


def chunked(data: bytes, size: int) -> list[bytes]:
    """Reads as a socket delivers them: ``size`` bytes, cut anywhere."""
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class Rounds:
    """CPU and wall seconds of every round of one contender."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.cpu)

    def spread(self) -> str:
        med = statistics.median(self.cpu)
        worst = max(self.cpu)
        return (
            f"cpu best {self.best:.3f}s median {med:.3f}s worst {worst:.3f}s "
            f"(+{(worst / self.best - 1) * 100:.0f}%), wall best {min(self.wall):.3f}s"
        )


def time_once(run: Callable[[], object]) -> tuple[float, float, object]:
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu, wall, result


def interleaved(
    contenders: Sequence[tuple[str, Callable[[], object]]],
    rounds: int,
    check: Callable[[str, object], None] | None = None,
) -> dict[str, Rounds]:
    """Round-robin over the contenders (rotating who goes first), so a burst of load
    from the other users of the machine does not land on one contender only."""
    results = {name: Rounds(name) for name, _ in contenders}
    for r in range(rounds):
        order = list(contenders[r % len(contenders) :]) + list(contenders[: r % len(contenders)])
        for name, run in order:
            cpu, wall, result = time_once(run)
            if check is not None:
                check(name, result)
            results[name].cpu.append(cpu)
            results[name].wall.append(wall)
            print(f"#   round {r + 1} {name}: cpu {cpu:.3f}s wall {wall:.3f}s", flush=True)
    return results


def line(contender: str, value: float, unit: str) -> None:
    shown = f"{value:,.0f}".replace(",", "") if value >= 100 else f"{value:.3g}"
    print(f"{contender}: {shown} {unit}", flush=True)


def percentiles(samples: Iterable[float], points: Sequence[float]) -> list[float]:
    ordered = sorted(samples)
    if not ordered:
        return [float("nan") for _ in points]
    out = []
    for p in points:
        k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        out.append(ordered[k])
    return out


_IDS = re.compile(rb"\b(1\d{9})\.(\d+)\b")


def event_blocks(trace: bytes, drop: frozenset[str] = frozenset()) -> list[bytes]:
    """The trace's events (each with its blank line), without the connection's own
    messages (login and logoff responses, FullyBooted, SuccessfulAuth) nor ``drop``."""
    _, body = split_banner(trace)
    out = []
    for block in body.split(b"\r\n\r\n"):
        if not block.startswith(b"Event: "):
            continue
        name = block[7 : block.find(b"\r\n")] if b"\r\n" in block else block[7:]
        if name in (b"FullyBooted", b"SuccessfulAuth") or name.decode() in drop:
            continue
        out.append(block + b"\r\n\r\n")
    return out


def distinct_copy(blocks: list[bytes], copy: int) -> bytes:
    """The events once more as new calls: every Uniqueid/Linkedid-shaped id gets its
    seconds moved by ``copy`` million, so no call of one copy is a call of another."""
    if copy == 0:
        return b"".join(blocks)

    def shift(match: re.Match[bytes]) -> bytes:
        return b"%d.%s" % (int(match.group(1)) + copy * 1_000_000, match.group(2))

    return _IDS.sub(shift, b"".join(blocks))


def event_stream(
    trace: bytes, repeat: int, drop: frozenset[str] = frozenset()
) -> tuple[bytes, int]:
    """``repeat`` distinct copies of the trace's events and how many events that is."""
    blocks = event_blocks(trace, drop)
    return b"".join(distinct_copy(blocks, k) for k in range(repeat)), len(blocks) * repeat


class LoopLag:
    """How late a timer of ``interval`` seconds fires on a reactor: its loop lag.

    ``samples`` holds ``(perf_counter time, lag in ms)`` for every tick."""

    def __init__(self, reactor: Any, interval: float) -> None:
        from twisted.internet import task

        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._last = time.perf_counter()
        self._timer = task.LoopingCall(self._tick)
        self._timer.clock = reactor

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start(self.interval, now=False)

    def stop(self) -> None:
        if self._timer.running:
            self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append((now, max(0.0, now - self._last - self.interval) * 1000.0))
        self._last = now
