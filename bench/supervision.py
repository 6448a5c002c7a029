"""Supervisors' pushes: a queue-changing AMI event leaving the PBX's socket to the
``queue_update`` that shows it on a supervisor's socket (issue 11), with the pops of
bench/pop_latency.py running beside it.

    python bench/supervision.py [--database sqlite postgresql] [--operators 500]
        [--supervisors 50] [--queues 10] [--rate 50] [--seconds 60] [--customers 1000000]
        [--agents batched|single] [--screen-processes 1]

Everything around the daemon is pop_latency's: ``cti-bridge run --config FILE`` in its
own process, bench/amiserver.py's raw AMI server and the WebSocket screens in this one,
``--operators`` operator screens, the million customers, the same call (trace pjsip/01:
``QueueCallerJoin``, the operator's ``AgentCalled``/``DialBegin``, 1 s later
``QueueCallerLeave``/``AgentConnect``, 2 s after that the hang-up), ``--rate`` calls per
second round-robin over the operators. Added here: the calls go to ``--queues`` queues
(``q01``…, round-robin, so every operator is a member of one queue), and
``--supervisors`` supervisor accounts have a screen open, which listens on the
``supervisors`` topics: ``/ws?token=...&agents=batched`` as the console's Team view and
the wallboard open it (the operators' changes as ``agents_update`` batches, a few a
second), or with ``--agents single`` a plain ``/ws?token=`` (one ``agent_update`` per
changed operator, PRODUCT's default). With ``--screen-processes N`` (N >= 1) the
supervisor screens run in N processes of their own, so that this process's own lag
(the PBX, the operator screens) does not delay what the supervisors' sockets read; 0
keeps them in this process, as before. All the processes stamp with the same monotonic
clock (``time.perf_counter``: CLOCK_MONOTONIC on Linux).

Latency of one push = for each supervisor socket and each caller, the time the first
``queue_update`` of the caller's queue whose ``waiting`` holds its linkedid was read,
minus the time the write with its ``QueueCallerJoin`` went to the PBX socket ("join"); and
the first later one without it, minus the time of the write with its
``QueueCallerLeave`` ("leave"). The pushes are coalesced per queue (docs/queues.md: the
first at once, then at most one per 0.3 s, built when sent), so a change that falls
inside a window waits for its end: expect a spread from a few ms up to about 0.3 s plus
the delivery. Also printed: ``queue_update``s per second per queue on each socket, the
shortest gap between two of one queue (the coalescing's bound), the agent messages
(and agents in them) per second per supervisor socket, and the pops' p50/p99 in the
same run (pop_latency's measure, compare with docs/performance.md section 3). The first
``--warmup`` seconds are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import benchlib
import popdata
from amiserver import RawPBX, RawPBXSession
from argon2 import PasswordHasher
from pop_latency import Screen, free_port, get_json, summarise, wait_for
from twisted.internet import defer, protocol, stdio, task, threads
from twisted.web.websocket import WebSocketClientEndpoint

from cti_bridge.store import open_store
from cti_bridge.testing.store import scratch_postgres

# The bus's compact JSON (``cti_bridge.bus.encode``), as the screens' sockets forward it.
QUEUE_UPDATE = '{"type":"queue_update"'
AGENT_UPDATE = '{"type":"agent_update"'
AGENTS_UPDATE = '{"type":"agents_update"'


class SupervisorScreen(Screen):
    """One supervisor's screen: for every queue, when each linkedid first appeared in
    its waiting list and when it first went from it. Only ``queue_update`` frames are
    parsed, ``agents_update`` batches only for their length (single ``agent_update``s are
    counted), so that the measuring side keeps up."""

    def __init__(self, username: str) -> None:
        super().__init__(username, {})
        self.waiting: dict[str, frozenset[str]] = {}
        self.joined: dict[str, float] = {}  # linkedid -> first queue_update with it
        self.left: dict[str, float] = {}  # linkedid -> first queue_update without it again
        self.updates: list[tuple[float, str]] = []  # (read at, queue) of every queue_update
        self.agent_updates: list[tuple[float, int]] = []  # (read at, agents in it)
        self.kinds: dict[str, int] = defaultdict(int)  # frames by type

    def textMessageReceived(self, data: str) -> None:
        now = time.perf_counter()
        self.messages += 1
        self.kinds[data[9 : data.find('"', 9)] if data.startswith('{"type":"') else "?"] += 1
        if data.startswith(AGENT_UPDATE):
            self.agent_updates.append((now, 1))
            return
        if data.startswith(AGENTS_UPDATE):
            self.agent_updates.append((now, len(json.loads(data)["agents"])))
            return
        if not data.startswith(QUEUE_UPDATE):  # hello, phone_status: counted once, above
            if not self.hello.called and json.loads(data).get("type") == "hello":
                self.hello.callback(None)
            return
        queue = json.loads(data)["queue"]
        name = queue["name"]
        now_waiting = frozenset(c["linkedid"] for c in queue["waiting"])
        before = self.waiting.get(name, frozenset())
        self.waiting[name] = now_waiting
        self.updates.append((now, name))
        for linkedid in now_waiting - before:
            self.joined.setdefault(linkedid, now)
        for linkedid in before - now_waiting:
            self.left.setdefault(linkedid, now)


def add_supervisors(url: str, count: int) -> dict[str, str]:
    """``count`` supervisor accounts (no device), each with a token: username -> token."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    store = open_store(url, accounts={"hasher": cheap})
    out = {}
    try:
        for k in range(1, count + 1):
            username = f"sup{k:03d}"
            info = store.accounts.add_operator(
                username, role="supervisor", password="bench-password-1"
            )
            out[username] = store.accounts.create_token(info.id, lifetime=86_400)
    finally:
        store.close()
    return out


async def connect(reactor: Any, web_port: int, screen: Screen, token: str, query: str = "") -> None:
    url = f"ws://127.0.0.1:{web_port}/ws?token={token}{query}"
    endpoint = WebSocketClientEndpoint.new(reactor, url)
    await endpoint.connect(screen)


def agents_query(args: argparse.Namespace) -> str:
    return "&agents=batched" if args.agents == "batched" else ""


def boss_result(boss: SupervisorScreen) -> dict[str, Any]:
    return {
        "joined": boss.joined,
        "left": boss.left,
        "updates": boss.updates,
        "agent_updates": boss.agent_updates,
        "messages": boss.messages,
        "kinds": dict(boss.kinds),
    }


def screens_process(spec_file: str) -> None:
    """``--screens-child SPEC``: this process holds some supervisor screens. It prints
    ``ready`` once every screen said hello, keeps reading until its stdin closes, then
    writes what each screen saw to the spec's ``out`` (JSON) and exits."""
    spec = json.loads(Path(spec_file).read_text())

    async def run(reactor: Any) -> None:
        bosses = []
        for username, token in spec["supervisors"].items():
            boss = SupervisorScreen(username)
            await connect(reactor, spec["web_port"], boss, token, spec["query"])
            bosses.append(boss)
        await defer.gatherResults([b.hello for b in bosses])
        print("ready", flush=True)
        done: defer.Deferred[None] = defer.Deferred()
        stdio.StandardIO(_UntilClosed(done), reactor=reactor)  # type: ignore[no-untyped-call]
        await done
        # The sockets go with the process (closing them here only races the daemon's
        # pings: Twisted's client answers a ping while closing with an error).
        Path(spec["out"]).write_text(json.dumps([boss_result(b) for b in bosses]))

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


class _UntilClosed(protocol.Protocol):
    def __init__(self, done: defer.Deferred[None]) -> None:
        self.done = done

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class ScreenProcesses:
    """The supervisor screens in ``count`` processes of their own (``screens_process``)."""

    def __init__(self, count: int, web_port: int, supervisors: dict[str, str], query: str):
        self.tmp = Path(tempfile.mkdtemp(prefix="cti-bench-screens-"))
        names = list(supervisors)
        self.children: list[tuple[subprocess.Popen[str], Path]] = []
        for k in range(count):
            mine = {u: supervisors[u] for u in names[k::count]}
            spec = self.tmp / f"spec{k}.json"
            out = self.tmp / f"out{k}.json"
            spec.write_text(
                json.dumps(
                    {"supervisors": mine, "web_port": web_port, "query": query, "out": str(out)}
                )
            )
            child = subprocess.Popen(
                [sys.executable, __file__, "--screens-child", str(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.children.append((child, out))

    def wait_ready(self) -> None:
        for child, _ in self.children:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a screens process did not start: {line!r}")

    async def collect(self, reactor: Any) -> list[dict[str, Any]]:
        for child, _ in self.children:
            assert child.stdin is not None
            child.stdin.close()
        await wait_for(
            reactor,
            lambda: all(c.poll() is not None for c, _ in self.children),
            60,
            "end of the screens processes",
        )
        results: list[dict[str, Any]] = []
        for _, out in self.children:
            results.extend(json.loads(out.read_text()))
        return results


async def measure(
    reactor: Any,
    args: argparse.Namespace,
    url: str,
    operators: dict[str, tuple[str, str]],
    supervisors: dict[str, str],
) -> dict[str, Any]:
    sessions: list[RawPBXSession] = []
    pbx_port = reactor.listenTCP(0, RawPBX(sessions.append), interface="127.0.0.1")
    web_port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="cti-bench-"))
    config = tmp / "cti-bridge.toml"
    config.write_text(  # pop_latency's configuration
        f"""
[web]
host = "127.0.0.1"
port = {web_port}
[database]
url = "{url}"
[log]
level = "warning"
[[pbx]]
name = "bench"
host = "127.0.0.1"
port = {pbx_port.getHost().port}
username = "cti"
secret = "bench"
auth = "plain"
"""
    )
    log = (tmp / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "cti-bridge"), "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_for(reactor, lambda: sessions and sessions[0].ready_at, 60, "AMI login")
        pbx = sessions[0]
        arrivals: dict[tuple[str, str], float] = {}
        screens = []
        for username, (_, token) in operators.items():
            screen = Screen(username, arrivals)
            await connect(reactor, web_port, screen, token)
            screens.append(screen)
        bosses = []
        others: ScreenProcesses | None = None
        if args.screen_processes > 0 and supervisors:
            others = ScreenProcesses(
                args.screen_processes, web_port, supervisors, agents_query(args)
            )
            await threads.deferToThread(others.wait_ready)
        else:
            for username, token in supervisors.items():
                boss = SupervisorScreen(username)
                await connect(reactor, web_port, boss, token, agents_query(args))
                bosses.append(boss)
        await defer.gatherResults([s.hello for s in [*screens, *bosses]])
        where = f"in {args.screen_processes} processes of their own" if others else "here"
        print(
            f"#   {len(screens)} operator and {len(supervisors)} supervisor screens "
            f"connected (supervisors {where}, agents {args.agents})"
        )
        lag = benchlib.LoopLag(reactor, 0.01)
        lag.start()
        written: dict[tuple[str, str], float] = {}
        joins: dict[str, tuple[float, str]] = {}  # linkedid -> (written at, queue)
        leaves: dict[str, float] = {}

        def send_leave(linkedid: str, data: bytes) -> None:
            leaves[linkedid] = time.perf_counter()
            pbx.send(data)

        template = popdata.CallTemplate()
        rng = random.Random(5)
        devices = [device for device, _ in operators.values()]
        total = int(args.rate * args.seconds)
        started = time.perf_counter()
        cpu_at_start = cpu_seconds(daemon.pid)
        for n in range(total):
            due = started + n / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await task.deferLater(reactor, delay, lambda: None)
            if rng.random() < 0.8:
                number = popdata.customer_number(rng.randint(1, args.customers))
            else:
                number = f"+3249{rng.randint(0, 9_999_999):07d}"
            operator = n % len(devices) + 1
            queue = f"q{n % args.queues + 1:02d}"
            script = template.call(n, operator, number, f"Caller {n}")
            ring, answer, end = (
                part.replace(b"support-sip", queue.encode())
                for part in (script.ring, script.answer, script.end)
            )
            at = time.perf_counter()
            written[(script.linkedid, script.device)] = at
            joins[script.linkedid] = (at, queue)
            pbx.send(ring)
            reactor.callLater(1.0, send_leave, script.linkedid, answer)
            reactor.callLater(3.0, pbx.send, end)
        await task.deferLater(reactor, 5.0, lambda: None)
        ended = time.perf_counter()
        daemon_cpu = cpu_seconds(daemon.pid) - cpu_at_start
        health = await get_json(reactor, f"http://127.0.0.1:{web_port}/healthz")
        pops = health.get("pops") or health.get("web", {}).get("pops") or {}
        print(f"#   daemon's own pop figures: {json.dumps(pops)[:400]}", flush=True)
        for part in ("supervision", "members"):
            shown = health.get(part) or health.get("parts", {}).get(part)
            print(f"#   daemon's {part}: {json.dumps(shown)[:400]}", flush=True)
        lag.stop()
        for screen in [*screens, *bosses]:
            if screen.transport is not None:
                screen.transport.loseConnection()
        seen = [boss_result(b) for b in bosses]
        if others is not None:
            seen = await others.collect(reactor)
        return {
            "written": written,
            "arrivals": arrivals,
            "started": started,
            "ended": ended,
            "traffic_end": started + total / args.rate,
            "lag": lag.samples,
            "daemon_cpu": daemon_cpu,
            "joins": joins,
            "leaves": leaves,
            "bosses": seen,
        }
    finally:
        daemon.terminate()
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        errors = [
            line
            for line in (tmp / "daemon.log").read_text().splitlines()
            if '"level": "error"' in line
        ]
        if errors:
            print(f"#   daemon logged {len(errors)} errors, e.g. {errors[0][:300]}")
        await pbx_port.stopListening()


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and system (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_latencies(result: dict[str, Any], cutoff: float) -> None:
    """The supervisors' figures: event written -> queue_update read, and the rates."""
    name = result["name"]
    if not result["bosses"]:
        print(f"# {name}: no supervisor screens")
        return
    joins, leaves = result["joins"], result["leaves"]
    samples: dict[str, list[float]] = {"join": [], "leave": []}
    missing = {"join": 0, "leave": 0}
    for boss in result["bosses"]:
        for linkedid, (at, _) in joins.items():
            if at < cutoff:
                continue
            got = boss["joined"].get(linkedid)
            if got is None:
                missing["join"] += 1
            else:
                samples["join"].append((got - at) * 1000.0)
            left_at = leaves.get(linkedid)
            if left_at is None:
                continue
            gone = boss["left"].get(linkedid)
            if gone is None or gone < left_at:
                missing["leave"] += 1  # never shown as gone (or only before it left)
            else:
                samples["leave"].append((gone - left_at) * 1000.0)
    everything = samples["join"] + samples["leave"]
    for kind, values in samples.items():
        p50, p99 = benchlib.percentiles(values, [50, 99])
        print(
            f"# {name}: {kind}: {len(values)} (caller, supervisor) pairs, "
            f"{missing[kind]} never shown; p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
    under = [v for v in everything if v < 50.0]
    print(
        f"# {name}: of all {len(everything)}, {len(under) / max(1, len(everything)):.0%} "
        f"under 50 ms (a push at once), the rest waited for the 0.3 s window"
    )
    p50, p99, top = benchlib.percentiles(everything, [50, 99, 100])
    benchlib.line(f"cti-bridge queue_update p50 ({name})", p50, "ms")
    benchlib.line(f"cti-bridge queue_update p99 ({name})", p99, "ms")
    benchlib.line(f"cti-bridge queue_update max ({name})", top, "ms")

    window = result["traffic_end"] - cutoff
    per_queue: list[float] = []
    busiest = 0
    gaps: list[float] = []
    agents: list[float] = []  # agent messages per second, per supervisor socket
    agents_in: list[float] = []  # agents in them per second
    for boss in result["bosses"]:
        counts: dict[str, int] = defaultdict(int)
        per_second: dict[tuple[str, int], int] = defaultdict(int)
        last: dict[str, float] = {}
        for at, queue in boss["updates"]:
            if cutoff <= at <= result["traffic_end"]:
                counts[queue] += 1
                per_second[(queue, int(at - cutoff))] += 1
                if queue in last:
                    gaps.append((at - last[queue]) * 1000.0)
            last[queue] = at
        per_queue.extend(c / window for c in counts.values())
        busiest = max(busiest, max(per_second.values(), default=0))
        inside = [
            (at, n) for at, n in boss["agent_updates"] if cutoff <= at <= result["traffic_end"]
        ]
        agents.append(len(inside) / window)
        agents_in.append(sum(n for _, n in inside) / window)
    g1, g50 = benchlib.percentiles(gaps, [1, 50])
    print(
        f"# {name}: queue_update per queue per supervisor: mean "
        f"{statistics.fmean(per_queue):.2f}/s (min {min(per_queue):.2f}, max "
        f"{max(per_queue):.2f}) over {len(per_queue)} (supervisor, queue) pairs; at most "
        f"{busiest} in one second; gap between two of one queue: shortest "
        f"{min(gaps):.0f} ms, p1 {g1:.0f} ms, p50 {g50:.0f} ms"
    )
    print(
        f"# {name}: agent messages per supervisor: mean {statistics.fmean(agents):.1f}/s "
        f"carrying {statistics.fmean(agents_in):.1f} agents/s; "
        f"frames per supervisor socket in all: "
        f"{statistics.fmean(b['messages'] for b in result['bosses']):.0f}"
    )
    kinds: dict[str, int] = defaultdict(int)
    for boss in result["bosses"]:
        for kind, count in boss["kinds"].items():
            kinds[kind] += count
    each = {k: round(v / len(result["bosses"])) for k, v in sorted(kinds.items())}
    print(f"# {name}: frames per supervisor socket by type: {json.dumps(each)}")
    benchlib.line(
        f"cti-bridge queue_update rate per queue ({name})", statistics.fmean(per_queue), "/s"
    )
    busy = result["daemon_cpu"] / (result["ended"] - result["started"])
    print(
        f"# {name}: the daemon's CPU from the first call to the end: "
        f"{result['daemon_cpu']:.1f} s in {result['ended'] - result['started']:.0f} s"
    )
    benchlib.line(f"cti-bridge daemon CPU ({name})", 100 * busy, "% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--operators", type=int, default=500)
    parser.add_argument("--supervisors", type=int, default=50)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--agents", choices=["batched", "single"], default="batched")
    parser.add_argument("--screen-processes", type=int, default=1)
    parser.add_argument("--screens-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.screens_child:
        screens_process(args.screens_child)
        return
    benchlib.context(
        load=f"{args.rate:g} calls/s over {args.queues} queues for {args.seconds:g} s, "
        f"{args.operators} operators and {args.supervisors} supervisors connected "
        f"(agents {args.agents}), {args.customers} customers",
        daemon="cti-bridge run --config (own process); PBX and operator screens in this "
        f"process, supervisor screens in {args.screen_processes or 'this'} process(es)",
    )
    for name in args.database:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "sqlite":
                run_one(name, args, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            else:
                with scratch_postgres("cti_bench_sup") as url:
                    run_one(name, args, url)


def run_one(name: str, args: argparse.Namespace, url: str) -> None:
    t0 = time.perf_counter()
    popdata.load_customers(url, args.customers)
    operators = popdata.add_operators(url, args.operators)
    supervisors = add_supervisors(url, args.supervisors)
    settled = popdata.settle(url)
    print(
        f"# {name}: database ready in {time.perf_counter() - t0:.0f} s "
        f"(bulk load written out: {settled})",
        flush=True,
    )
    result: dict[str, Any] = {"name": name}

    async def go(reactor: Any) -> None:
        result.update(await measure(reactor, args, url, operators, supervisors))

    pid = os.fork()
    if pid == 0:  # the reactor runs once per process: one child per database
        try:
            task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
        except SystemExit as done:
            if done.code:
                os._exit(int(done.code))
        print(f"# {name}: load average after the run {os.getloadavg()[0]:.2f}")
        summarise(name, args, result)
        push_latencies(result, result["started"] + args.warmup)
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"{name}: the measurement failed")


if __name__ == "__main__":
    main()
