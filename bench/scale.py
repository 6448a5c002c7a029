"""Scale: memory with 2,000 concurrent calls, and memory per completed call (issue 5, #4).

    python bench/scale.py [--concurrent 2000] [--completed 100000]

The reactor-side state of one PBX link - parser, call pipeline and model, the record
writer's queue, the pop engine's per-call state - fed the queue call of trace pjsip/01
(bench/popdata.py's template: customer queues, one of 500 operators rings and answers,
the customer hangs up) with new ids for every call. Only the events the model acts on
are fed (the template's VarSet/Newexten/... noise changes no state). The record writer
writes to an in-memory sink and the pop context is built at once, so that nothing waits
on a database: what stays in memory is what these components keep.

Figures: ``tracemalloc`` (Python objects still allocated, after ``gc.collect()``) and the
process RSS (which seldom shrinks: freed memory stays in the allocator's arenas).

1. 2,000 calls live at once (rung and answered, not ended): memory per live call.
2. Calls one after another (each ends): memory after 1,000, 20,000 (the model's bounded
   memory of ended Linkedids is full from there), 50,000 and 100,000 completed calls.
"""

from __future__ import annotations

import argparse
import gc
import os
import tracemalloc
from typing import Any

import benchlib
import popdata
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from cti_bridge.ami.parser import AMIParser
from cti_bridge.app.pipeline import CallPipeline
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.calls.model import CallModel
from cti_bridge.pop.core import OperatorRef
from cti_bridge.pop.service import PopService
from cti_bridge.store.writer import RecordWriter

OPERATORS = 500
#: Events the call model has a handler for: the rest of a call's events change nothing.
MODEL_EVENTS = frozenset(CallModel("x")._handlers)


class Sink:
    """The record writer's database, in memory and instant: nothing piles up in it."""

    def __init__(self) -> None:
        self.events = 0

    def apply(self, events: Any) -> int:
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

    link = Link()
    checkpoints = sorted({1000, 20_000, 50_000, args.completed} & set(range(args.completed + 1)))
    figures: dict[int, tuple[float, float]] = {}
    start, _ = measure()
    for n in range(args.completed):
        s = link.script(1_000_000 + n)
        link.feed(s.ring)
        link.feed(s.answer)
        link.feed(s.end)
        if n + 1 in checkpoints:
            figures[n + 1] = measure()
            mem, rss = figures[n + 1]
            print(
                f"# after {n + 1} completed calls: tracemalloc {mem - start:+.2f} MiB, RSS "
                f"{rss:.1f} MiB; {link.sizes()}",
                flush=True,
            )
    first, last = figures[checkpoints[0]], figures[checkpoints[-1]]
    full = figures.get(20_000, first)
    if checkpoints[-1] <= 20_000:
        raise SystemExit("--completed must be over 20000 for the per-call figure")
    benchlib.line(
        f"cti-bridge memory growth {checkpoints[0]} -> {checkpoints[-1]} completed calls",
        last[0] - first[0],
        "MiB",
    )
    per = (last[0] - full[0]) * 2**20 / max(1, checkpoints[-1] - 20_000)
    benchlib.line("cti-bridge memory growth per completed call after 20000", per, "bytes")
    print(
        f"# RSS after {checkpoints[0]}: {first[1]:.1f} MiB, after {checkpoints[-1]}: "
        f"{last[1]:.1f} MiB; records written {link.sink.events} events"
    )


if __name__ == "__main__":
    main()
