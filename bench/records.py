"""Call records per second, sustained, through RecordWriter (issue 5, #5).

    python bench/records.py [--database sqlite postgresql] [--seconds 20] [--lanes 1]

The production wiring (``RecordWriter.in_thread_pool`` on ``CallStore``, 2 threads) on
the real reactor. A feeder submits whole calls - the 7 domain events of a queue call
answered after two rings, as the model emits them (``testing.store.queue_call_answered``),
interleaved like concurrent calls - every 10 ms, keeping about ``--backlog`` events
queued, so the writer is never idle and never drowned. Sustained rate = calls whose every
event was written during the last ``--seconds`` seconds (after ``--warmup``), per second.

Meanwhile a 1 ms ``LoopingCall`` notes how late it runs: the reactor's loop lag. If any
database work ran on the reactor it would show here as lag of that work's length.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from twisted.internet import defer, task

from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import open_store
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import START, queue_call_answered, scratch_postgres

EVENTS_PER_CALL = len(queue_call_answered("x").events)


class GcPauses:
    """Collections (in any thread) and how long each held the interpreter."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._started) * 1e3))

    def summary(self) -> str:
        if not self.pauses:
            return "no collections"
        longest = max(self.pauses, key=lambda p: p[1])
        full = sum(1 for g, _ in self.pauses if g == 2)
        return (
            f"{len(self.pauses)} collections ({full} full), longest {longest[1]:.1f} ms "
            f"(generation {longest[0]})"
        )


async def run(reactor: Any, url: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    upgrade(url)
    store = open_store(url, pool_size=args.lanes + 2)
    writer = RecordWriter.in_thread_pool(store.calls, reactor, threads=2, lanes=args.lanes)
    submitted_calls = 0
    calls = out.pop("calls")
    ran_dry: defer.Deferred[None] = defer.Deferred()

    def feed() -> None:
        # Only submit() runs here: the calls were built before the reactor started.
        nonlocal submitted_calls
        room = max(0, (args.backlog - writer.status()["pending"]) // EVENTS_PER_CALL)
        batch = calls[submitted_calls : submitted_calls + min(room, 200)]
        if not batch and submitted_calls >= len(calls) and not ran_dry.called:
            ran_dry.callback(None)  # the window ends here: the writer would idle from now
        for step in range(EVENTS_PER_CALL):
            for events in batch:
                writer.submit(events[step])
        submitted_calls += len(batch)

    feeder = task.LoopingCall(feed)
    feeder.clock = reactor
    lag = benchlib.LoopLag(reactor, 0.001)
    feeder.start(0.01)
    lag.start()
    collections = GcPauses()
    await task.deferLater(reactor, args.warmup, lambda: None)
    if ran_dry.called:
        raise SystemExit("--calls too small for this machine: the feeder ran dry in warm-up")
    written0, lags0, t0 = writer.status()["written"], len(lag.samples), time.perf_counter()
    window_over = task.deferLater(reactor, args.seconds, lambda: None)
    await defer.DeferredList([window_over, ran_dry], fireOnOneCallback=True, consumeErrors=True)
    written1, t1 = writer.status()["written"], time.perf_counter()
    window_over.cancel()
    out["short"] = ran_dry.called
    out["window"] = t1 - t0
    window = [ms for _, ms in lag.samples[lags0:]]
    feeder.stop()
    await writer.flush()
    lag.stop()
    status = writer.status()
    await writer.stop()
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT count(*) FROM calls").scalar_one()
    store.close()
    out.update(
        rate=(written1 - written0) / EVENTS_PER_CALL / (t1 - t0),
        lags=window,
        status=status,
        submitted=submitted_calls,
        rows=rows,
        gc=collections.summary(),
    )


def one(name: str, url: str, args: argparse.Namespace) -> None:
    calls = [
        queue_call_answered(f"bench-{n}", at=START + n * 0.01).events for n in range(args.calls)
    ]
    # The harness's own calls are no garbage: keep the collector from scanning them
    # (a full collection over them would show up as loop lag that is ours, not the writer's).
    gc.freeze()
    out: dict[str, Any] = {"calls": calls}
    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor, url, args, out)))
    except SystemExit as done:
        if done.code:
            raise
    status = out["status"]
    if out["rows"] != out["submitted"] or status["failed"] or status["dropped"]:
        raise SystemExit(f"{name}: {out['rows']} records for {out['submitted']} calls: {status}")
    p50, p99, top = benchlib.percentiles(out["lags"], [50, 99, 100])
    if out["short"]:
        print(
            f"# {name}: the {args.calls} calls ran out before --seconds; "
            f"window shortened to {out['window']:.1f} s"
        )
    print(
        f"# {name}: {out['submitted']} calls, {status['written']} events in "
        f"{status['batches']} batches; loop lag p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {top:.2f} ms over {len(out['lags'])} ticks; garbage collector: {out['gc']}"
    )
    benchlib.line(f"cti-bridge records ({name})", out["rate"], "calls/s")
    benchlib.line(f"cti-bridge reactor max loop lag while writing ({name})", top, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument(
        "--calls", type=int, default=60_000, help="calls built beforehand (about 4 KB each)"
    )
    args = parser.parse_args()
    benchlib.context(
        writer=f"RecordWriter.in_thread_pool, 2 threads, {args.lanes} lane(s)",
        call=f"queue call answered: {EVENTS_PER_CALL} domain events",
    )
    # The reactor can only run once per process: one child per database.
    for name in args.database:
        pid = os.fork()
        if pid:
            _, status = os.waitpid(pid, 0)
            if status:
                raise SystemExit(f"{name}: failed")
            continue
        code = 0
        try:
            with tempfile.TemporaryDirectory() as tmp:
                if name == "sqlite":
                    one(name, f"sqlite:///{Path(tmp) / 'records.sqlite3'}", args)
                else:
                    with scratch_postgres("cti_bench_records") as url:
                        one(name, url, args)
        except SystemExit as failed:
            print(failed)
            code = 1
        os._exit(code)


if __name__ == "__main__":
    main()
