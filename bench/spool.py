"""What the records' spool costs per call event.

    .venv/bin/python bench/spool.py [--calls 2000] [--flush 200] [--rounds 3] [--dir DIR]

Contenders (CPU time of this process, best of ``--rounds``; wall time for the fsync):

* ``add+done`` on the reactor: the writer's share of every event while the database
  answers (a ticket made, then let go; nothing reaches the disk);
* ``append`` in the spool's thread during an outage: encoding the event (its whole call
  snapshot) as a checksummed JSON line and writing it, ``--flush`` events per write and
  fsync (about one flush interval's worth at 1,000 events/s);
* ``replay``: reading a segment back at start-up (checksum, JSON, the event rebuilt).

The events are queue calls answered (7 domain events each, ~1.1 KB a line). ``--dir``
defaults to a temporary folder on /tmp (say where it is: tmpfs fsyncs cost nothing).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import context, interleaved, line
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from cti_bridge.records.spool import Spool, SpoolFiles, encode_line
from cti_bridge.testing.store import START, queue_call_answered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--flush", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the spool folders go (default /tmp)")
    args = parser.parse_args()
    events = [e for i in range(args.calls) for e in queue_call_answered(f"b-{i}", START + i).events]
    base = Path(tempfile.mkdtemp(prefix="cti-bench-spool-", dir=args.dir))
    line_bytes = sum(len(encode_line(e)) for e in events[:700]) / 700
    context(events=len(events), flush=args.flush, directory=base, line_bytes=f"{line_bytes:.0f}")
    fsyncs: list[float] = []

    def add_done() -> None:
        files = SpoolFiles(base / "unused", max_bytes=1 << 30)  # never opened: no file work
        spool = Spool(files, Clock(), lambda work: succeed(None))
        for event in events:
            spool.done(spool.add(event))

    def append() -> Path:
        folder = Path(tempfile.mkdtemp(dir=base))
        files = SpoolFiles(folder, max_bytes=1 << 40, segment_bytes=1 << 40)
        files.open()
        for start in range(0, len(events), args.flush):
            t0 = time.perf_counter()
            files.append(events[start : start + args.flush])
            fsyncs.append(time.perf_counter() - t0)
        files.close()
        return folder

    written = append()

    def replay() -> None:
        files = SpoolFiles(written, max_bytes=1 << 40)
        found = files.open()
        files.close()
        assert found.events == len(events) and found.damaged == 0

    results = interleaved(
        [("add+done", add_done), ("append", append), ("replay", replay)], args.rounds
    )
    for name, rounds in results.items():
        print(f"# {rounds.spread()}")
        line(f"{name} per event", rounds.best / len(events) * 1e6, "us")
    per_write = sorted(fsyncs)
    line(
        f"one write+fsync of {args.flush} events (wall, median)",
        per_write[len(per_write) // 2] * 1e3,
        "ms",
    )
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
