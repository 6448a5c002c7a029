"""Scale: memory with 2,000 concurrent calls, and memory per completed call (issue 5, #4).

    python bench/scale.py [--concurrent 2000] [--completed 100000]

The reactor-side state of one PBX link - parser, call pipeline and model, the record
writer's queue, the pop engine's per-call state - fed the queue call of trace pjsip/01
(bench/popdata.py's template: customer queues, one of 500 operators rings and answers,
the customer hangs up) with new ids for every call. Only the events the model acts on
are fed (the template's VarSet/Newexten/... noise changes no state). The record writer
writes to an in-memory sink and the pop context is built at once, so that nothing waits
on a database: what stays in memory is what these components keep.

Figures, always after ``gc.collect()``:

1. 2,000 calls live at once (rung and answered, not ended): ``tracemalloc`` (bytes of
   Python objects still allocated) per live call, and the process RSS.
2. Calls one after another (each ends): after 1,000, 20,000 (the model's bounded memory
   of ended Linkedids is full from there), 50,000 and 100,000 completed calls, the
   memory blocks Python holds (``sys.getallocatedblocks()``: every live object's block,
   exact and cheap), the objects the collector tracks, and RSS. ``--tracemalloc`` also
   traces bytes here, at ten times the run time.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc
from typing import Any

import benchlib
import popdata
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from cti_bridge.ami.parser import AMIParser
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.pop.core import OperatorRef
from cti_bridge.pop.service import PopService
from cti_bridge.records.writer import RecordWriter

OPERATORS = 500
#: Events the call model has a handler for: the rest of a call's events change nothing.
MODEL_EVENTS = frozenset(CallModel("x")._handlers)


class Sink:
    """The record writer's database, in memory and instant: nothing piles up in it."""

    def __init__(self) -> None:
        self.events = 0

    def apply(self, events: Any, **kwargs: Any) -> int:
        self.events += len(events)
        return len(events)

    def close_stale(self, *args: Any, **kwargs: Any) -> int:
        return 0


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Link:
    """Parser -> pipeline -> (writer, pops), as the daemon wires them, minus the I/O."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.sink = Sink()
        self.writer = RecordWriter(self.sink, self.clock, lambda work: succeed(work()))
        operators = {
            f"PJSIP/op{k:04d}": OperatorRef(k, f"op{k:04d}") for k in range(1, OPERATORS + 1)
        }

        def build(request: Any) -> dict[str, Any]:
            return {"call_id": 1, "caller": {"number": "+32470000000"}, "customer": None}

        self.bus = MemoryBus(self.clock)
        self.pops = PopService(
            self.clock, self.bus, lambda work: succeed(work()), build, lambda: operators
        )
        self.pops.start()
        self.pipeline = CallPipeline(CallModel("bench"), [self.writer.submit, self.pops.handle])
        self.parser = AMIParser(expect_banner=False)
        self.template = popdata.CallTemplate()

    def feed(self, data: bytes) -> None:
        now = self.clock.seconds()
        for msg in self.parser.feed(data):
            if msg.get("Event") in MODEL_EVENTS:
                self.pipeline.ami_event(msg, now)
        self.clock.advance(0.001)

    def script(self, n: int) -> popdata.CallScript:
        return self.template.call(n, n % OPERATORS + 1, popdata.customer_number(n + 1), "C")

    def sizes(self) -> str:
        model = self.pipeline.model.state_sizes()
        return (
            f"model {model}, writer pending {self.writer.status()['pending']}, "
            f"pop calls {self.pops.core.calls()}"
        )


def measure() -> tuple[float, float]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20, rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--completed", type=int, default=100_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also in the long run")
    args = parser.parse_args()
    benchlib.context(
        feed="pjsip/01 queue call with new ids per call; model events only",
        memory="tracemalloc current after gc.collect(); RSS from /proc/self/statm",
    )
    tracemalloc.start()

    link = Link()
    scripts = [link.script(n) for n in range(args.concurrent)]
    base, base_rss = measure()
    for s in scripts:
        link.feed(s.ring)
        link.feed(s.answer)
    live, live_rss = measure()
    held = link.pipeline.model.state_sizes()["calls"]
    print(f"# {held} calls live: {link.sizes()}")
    for s in scripts:
        link.feed(s.end)
    after, after_rss = measure()
    print(f"# all ended: {link.sizes()}")
    if held != args.concurrent:
        raise SystemExit(f"expected {args.concurrent} live calls, the model holds {held}")
    per_call = (live - base) * 2**20 / held
    benchlib.line(f"cti-bridge memory for {held} live calls", live - base, "MiB")
    benchlib.line("cti-bridge memory per live call", per_call / 1024, "KiB")
    print(f"# RSS {base_rss:.1f} -> {live_rss:.1f} -> {after_rss:.1f} MiB (base, live, ended)")
    print(f"# tracemalloc after they all ended: {after - base:+.2f} MiB over base")
    del scripts, link

    if not args.tracemalloc:
        tracemalloc.stop()
    link = Link()
    checkpoints = sorted({1000, 20_000, 50_000, args.completed} & set(range(args.completed + 1)))
    if checkpoints[-1] <= 20_000:
        raise SystemExit("--completed must be over 20000 for the per-call figure")
    figures: dict[int, tuple[int, int, float, float]] = {}
    for n in range(args.completed):
        s = link.script(1_000_000 + n)
        link.feed(s.ring)
        link.feed(s.answer)
        link.feed(s.end)
        if n + 1 in checkpoints:
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] / 2**20 if args.tracemalloc else 0.0
            blocks, objects = sys.getallocatedblocks(), len(gc.get_objects())
            figures[n + 1] = (blocks, objects, rss_mib(), traced)
            print(
                f"# after {n + 1} completed calls: {blocks} blocks, {objects} tracked objects,"
                f" RSS {figures[n + 1][2]:.1f} MiB"
                + (f", tracemalloc {traced:.2f} MiB" if args.tracemalloc else "")
                + f"; {link.sizes()}",
                flush=True,
            )
    first, full, last = figures[checkpoints[0]], figures[20_000], figures[checkpoints[-1]]
    calls_after_full = checkpoints[-1] - 20_000
    benchlib.line(
        f"cti-bridge blocks held, {checkpoints[0]} -> {checkpoints[-1]} completed calls",
        last[0] - first[0],
        "blocks",
    )
    benchlib.line(
        "cti-bridge growth per completed call after 20000",
        (last[0] - full[0]) / calls_after_full,
        "blocks",
    )
    benchlib.line(
        f"cti-bridge RSS growth {checkpoints[0]} -> {checkpoints[-1]} completed calls",
        last[2] - first[2],
        "MiB",
    )
    print(f"# records written: {link.sink.events} events")


if __name__ == "__main__":
    main()
