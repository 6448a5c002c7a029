"""End-to-end event throughput: AMI bytes to records and pops (issue 5, #2).

    python bench/pipeline.py [--repeat N] [--database sqlite|postgresql] [--profile]
                             [--no-filter]

The real daemon (``cti_bridge.app.daemon.Daemon``: AMI client and protocol, parser, call
pipeline and model, record writer, pop engine, bus, web) on the real reactor, connected
over loopback TCP to a raw AMI server in another process (bench/amiserver.py) that
writes the burst trace's events N times as fast as the socket takes them, every copy
with its own Uniqueids/Linkedids so that every copy's 40 calls are new calls. Two
operators are bound to the trace's devices, so every queue call is popped (context built
in the database pool, pushed on the bus) and recorded (RecordWriter, its own pool).

The daemon parses only the events its call model consumes (plus the client's own); the
rest are skipped unread, as on a live link. ``--no-filter`` makes the benchmark's own
listener want every event, which turns the filter off: the daemon as it was before.
Figures count every event the PBX wrote, from the first event the pipeline handled to
the last one:

* ``cti-bridge (reactor thread CPU)``: events per CPU second of the reactor thread -
  the one core the event path runs on (pool threads not counted);
* ``cti-bridge (wall, records draining)``: events per wall second meanwhile, with the
  record and pop threads competing for the GIL;
* ``cti-bridge (wall, until every record is written)``: up to the writer's flush.

With --profile the reactor thread runs under cProfile (slower; the shares are what
count) and the top functions and a per-component split are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import benchlib
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from cti_bridge.ami.parser import AMIParser, EventFilter, Message
from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import Daemon
from cti_bridge.log import configure_logging
from cti_bridge.pop import PopService
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import open_store
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import scratch_postgres

OPERATORS = {"anna": "Local/1001@agents", "bart": "Local/1002@agents"}


class Stopwatch:
    """The last AMI listener: sees each event after the pipeline has handled it.

    It wants what the pipeline wants (``wanted_events`` is set by ``run``), so that it
    does not turn the link's filter off; ``None`` (``--no-filter``) wants everything.
    """

    wanted_events: frozenset[str] | None = None
    wanted_variables: frozenset[str] | None = None

    def __init__(self, expected: int, profile: cProfile.Profile | None) -> None:
        self.expected = expected
        self.count = 0
        self.profile = profile
        self.first_wall = self.first_cpu = 0.0
        self.last_wall = self.last_cpu = 0.0
        self.first_process = self.last_process = 0.0
        self.done: Deferred[None] = Deferred()

    def ami_event(self, msg: Message, received_at: float) -> None:
        self.count += 1
        if self.count == 1:
            self.first_wall, self.first_cpu = time.perf_counter(), time.thread_time()
            self.first_process = time.process_time()
            if self.profile is not None:
                self.profile.enable()
        if self.count == self.expected:
            if self.profile is not None:
                self.profile.disable()
            self.last_wall, self.last_cpu = time.perf_counter(), time.thread_time()
            self.last_process = time.process_time()
            self.done.callback(None)


def prepare_database(url: str) -> None:
    upgrade(url)
    store = open_store(url)
    try:
        for username, device in OPERATORS.items():
            if store.accounts.get_operator(username) is None:
                store.accounts.add_operator(
                    username, role="operator", password="bench-password-1", devices=[device]
                )
    finally:
        store.close()


def delivered_per_copy(as_configured: bool, wanted: EventFilter | None) -> int:
    """Events of one copy of the stream that the link builds and delivers."""
    drop = frozenset({"Newexten"}) if as_configured else frozenset()
    stream, count = benchlib.event_stream(benchlib.BURST.read_bytes(), 1, drop=drop)
    if wanted is None:
        return count
    return len(AMIParser(expect_banner=False, wanted=wanted).feed(stream))


def start_pbx(repeat: int, as_configured: bool) -> tuple[subprocess.Popen[str], int, int]:
    drop = ["--drop", "Newexten"] if as_configured else []
    pbx = subprocess.Popen(
        [sys.executable, str(benchlib.BENCH / "amiserver.py"), "--repeat", str(repeat), *drop],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert pbx.stdout is not None
    words = pbx.stdout.readline().split()
    if not words or words[0] != "port":
        pbx.kill()
        sys.exit("bench/amiserver.py did not start")
    return pbx, int(words[1]), int(words[3])


COMPONENTS = [
    ("ami parser", "cti_bridge/ami/parser"),
    ("ami link (protocol, client)", "cti_bridge/ami/"),
    ("pipeline", "cti_bridge/calls/pipeline"),
    ("call model", "cti_bridge/calls/"),
    ("record writer (reactor side)", "cti_bridge/store/"),
    ("pop engine", "cti_bridge/pop/"),
    ("members board", "cti_bridge/queues/"),
    ("bus", "cti_bridge/bus/"),
    ("web", "cti_bridge/web/"),
    ("twisted", "twisted/"),
    ("structlog/logging", "structlog/"),
]


def report_profile(profile: cProfile.Profile) -> None:
    stats = pstats.Stats(profile)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for (filename, _, _), value in stats.stats.items():  # type: ignore[attr-defined]
        fallback = "builtins (str/dict/list methods...)" if filename == "~" else "other"
        name = next((n for n, marker in COMPONENTS if marker in filename), fallback)
        shares[name] = shares.get(name, 0.0) + value[2]
    print(f"# profile (reactor thread, own time, {total:.2f} s under cProfile):")
    for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"#   {seconds / total * 100:5.1f}%  {name}")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    print("# top functions by own time:")
    for line in out.getvalue().splitlines():
        if line.strip() and not line.startswith(("   Ordered", "         ")):
            print(f"#   {line.rstrip()}")


async def run(reactor: Any, args: argparse.Namespace, url: str, figures: dict[str, float]) -> None:
    pbx, port, expected = start_pbx(args.repeat, args.as_configured)
    profile = cProfile.Profile() if args.profile else None
    try:
        config = parse_config(
            {
                "web": {"host": "127.0.0.1", "port": 0},
                "database": {"url": url},
                "pbx": [
                    {
                        "name": "bench",
                        "port": port,
                        "username": "cti",
                        "secret": "bench",
                        "auth": "plain",
                    }
                ],
            }
        )
        daemon = Daemon(config, reactor)
        if args.consumers != "all":
            # Diagnosis only: which consumers' reactor-side work (and pool threads) cost what.
            keep = {"none": (), "records": ("submit",), "pops": ("handle",)}[args.consumers]
            for pipe in daemon.pipelines.values():
                pipe.consumers = [c for c in pipe.consumers if c.__name__ in keep]
        pipe = daemon.pipelines["bench"]
        watch = Stopwatch(0, profile)
        if not args.no_filter:
            watch.wanted_events = pipe.wanted_events
            watch.wanted_variables = pipe.wanted_variables
        client = daemon.clients["bench"]
        client.add_listener(watch)
        delivered = delivered_per_copy(args.as_configured, client.wanted) * args.repeat
        watch.expected = delivered
        await daemon.start()
        await watch.done
        flushed_at = None
        await daemon.node.part("records", RecordWriter).flush()
        flushed_at = time.perf_counter()
        pipeline = daemon.pipelines["bench"].status()
        skipped = client.status()["events_skipped"]
        writer = daemon.node.part("records", RecordWriter).status()
        pops = daemon.node.part("pop", PopService).status()
        await daemon.stop()
    finally:
        pbx.terminate()
        pbx.wait()
    wall = watch.last_wall - watch.first_wall
    cpu = watch.last_cpu - watch.first_cpu
    print(
        f"# events: {expected} written by the PBX, {pipeline['events']} built and delivered, "
        f"{skipped} skipped unread; calls started "
        f"{pipeline['calls_started']}, ended "
        f"{sum(pipeline['calls_ended'].values())} {pipeline['calls_ended']}; domain events "
        f"{pipeline['domain_events']}; model/consumer errors {pipeline['model_errors']}/"
        f"{pipeline['consumer_errors']}"
    )
    print(
        f"# records: {writer['written']} events written in {writer['batches']} batches, "
        f"{writer['dropped']} dropped; pops: {pops['pops']} screen_pop, {pops['updates']} "
        f"updates, {pops['withdrawn']} withdrawn, {pops['builds']} context builds, "
        f"{pops.get('call_ids_late', 0)} without their call id at first"
    )
    process = watch.last_process - watch.first_process
    print(
        f"# reactor thread CPU {cpu:.2f} s, whole process CPU {process:.2f} s (all threads),"
        f" wall {wall:.2f} s; records flushed "
        f"{flushed_at - watch.last_wall:.2f} s after the last event"
    )
    if pipeline["events"] != delivered or pipeline["model_errors"]:
        sys.exit("the pipeline did not see every event cleanly: figures not valid")
    if profile is not None:
        report_profile(profile)
        return
    figures.update(
        {
            "cti-bridge (reactor thread CPU)": expected / cpu,
            "cti-bridge (wall, records draining)": expected / wall,
            "cti-bridge (wall, until every record is written)": expected
            / (flushed_at - watch.first_wall),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=300, help="copies of the burst trace")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="diagnosis: sys.setswitchinterval() (seconds) for the daemon's threads",
    )
    parser.add_argument(
        "--as-configured",
        action="store_true",
        help="leave out Newexten, as config/asterisk/manager.conf has Asterisk do",
    )
    parser.add_argument(
        "--no-filter",
        action="store_true",
        help="parse and deliver every event (the benchmark's listener wants all of them)",
    )
    parser.add_argument(
        "--consumers",
        choices=["all", "none", "records", "pops"],
        default="all",
        help="diagnosis: keep only these consumers of the domain events (default: all)",
    )
    args = parser.parse_args()
    configure_logging("warning", sys.stderr)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    benchlib.context(
        stream=f"12-burst.ami events x {args.repeat} (distinct calls), loopback TCP"
        + (", without Newexten (as configured)" if args.as_configured else "")
        + (", no event filter" if args.no_filter else ", the model's events parsed"),
        database=args.database,
        pbx="bench/amiserver.py in its own process",
        gil_switch_interval=f"{sys.getswitchinterval() * 1000:g} ms",
    )
    results: dict[str, list[float]] = {}
    for round_ in range(1 if args.profile else args.rounds):
        print(f"# round {round_ + 1}:", flush=True)
        for name, value in one_round(args).items():
            results.setdefault(name, []).append(value)
            print(f"#   {name}: {value:.0f}", flush=True)
    for name, values in results.items():
        print(f"# {name}: best of {len(values)} {max(values):.0f}, median {median(values):.0f}")
    for name, values in results.items():
        benchlib.line(name, max(values), "events/s")


def one_round(args: argparse.Namespace) -> dict[str, float]:
    """One daemon, one stream, in a child process (a reactor runs once per process)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        figures: dict[str, float] = {}
        code = 0
        try:
            with tempfile.TemporaryDirectory() as tmp:
                if args.database == "sqlite":
                    url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
                    react(args, url, figures)
                else:
                    with scratch_postgres("cti_bench") as url:
                        react(args, url, figures)
        except BaseException as failed:
            print(f"# round failed: {failed!r}", flush=True)
            code = 1
        os.write(write, json.dumps(figures).encode())
        sys.stdout.flush()
        os._exit(code)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit("a round failed")
    return dict(json.loads(data or b"{}"))


def react(args: argparse.Namespace, url: str, figures: dict[str, float]) -> None:
    prepare_database(url)
    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor, args, url, figures)))
    except SystemExit as done:
        if done.code:
            raise


if __name__ == "__main__":
    main()
