"""Records per second through RecordWriter, on SQLite and PostgreSQL.

    .venv/bin/python bench/store_writer.py [--calls 3000] [--lanes 1] [--batch 500]

Each call is a queue call answered (7 domain events: start, two rings, answer, two ring
ends, end), as the call model emits them; the events of ``--concurrent`` calls at a time
are interleaved, as a PBX with that many calls in progress sends them.
Everything is submitted at once (a burst), then the clock runs until the writer has
flushed: the figure is the sustained write rate with batching at its best. The
PostgreSQL database is a scratch one on 127.0.0.1:5432, dropped afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import open_store
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import START, queue_call_answered, scratch_postgres


def events(calls: int, concurrent: int) -> list[Any]:
    """``concurrent`` calls at a time, their events interleaved as a PBX would send them."""
    per_call = [queue_call_answered(f"bench-{n}", at=START + n * 0.1).events for n in range(calls)]
    out: list[Any] = []
    for start in range(0, calls, concurrent):
        group = per_call[start : start + concurrent]
        out += [e[i] for i in range(len(group[0])) for e in group]
    return out


async def measure(reactor: Any, url: str, args: argparse.Namespace) -> tuple[float, int]:
    upgrade(url)
    store = open_store(url, pool_size=args.lanes + 1)
    writer = RecordWriter.in_thread_pool(
        store.calls, reactor, threads=args.lanes, lanes=args.lanes, max_batch=args.batch
    )
    stream = events(args.calls, args.concurrent)
    started = time.perf_counter()
    for event in stream:
        writer.submit(event)
    submitted = time.perf_counter() - started
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.stop()
    records = len(store.queries.list_calls(limit=1))
    store.close()
    assert records == 1
    print(f"  submit(): {submitted / len(stream) * 1e6:.1f} us per event on the reactor")
    return elapsed, len(stream)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
                print(f"{backend}:")
                elapsed, count = await measure(reactor, url, args)
        else:
            with scratch_postgres("cti_store_bench") as url:
                print(f"{backend}:")
                elapsed, count = await measure(reactor, url, args)
        print(
            f"  {args.calls} calls, {count} events in {elapsed:.2f} s: "
            f"{args.calls / elapsed:.0f} records/s, {count / elapsed:.0f} events/s "
            f"(lanes={args.lanes}, batch={args.batch}, concurrent calls={args.concurrent})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrent", type=int, default=100, help="calls in progress at once")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    options = parser.parse_args()
    task.react(lambda reactor: ensureDeferred(main(reactor, options)))
