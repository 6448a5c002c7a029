"""Screen-pop latency: the ring leaving the PBX's socket to the operator's screen_pop frame
(issue 5, #3).

    python bench/pop_latency.py [--database sqlite postgresql] [--operators 500]
        [--rate 50] [--seconds 60] [--customers 1000000] [--nodes 1 3] [--bus memory redis]

The daemon under test is ``cti-bridge run --config FILE`` in its own process, as in
production. This process is everything around it: the PBX (bench/amiserver.py's raw AMI
server, on loopback) and the operators' screens (``--operators`` WebSocket clients,
Twisted's ``twisted.web.websocket``, each with its own token). Calls start at ``--rate``
per second, round-robin over the operators: each is the recorded queue call of trace
pjsip/01 (customer joins the queue, one operator's phone rings; answered 1 s later,
over 2 s after that), with its own ids, operator and caller - 4 in 5 callers are among
the ``--customers`` customers (bulk loaded, a fifth with a contract), the others unknown.

Latency of one pop = the time its screen_pop frame (matched on linkedid and device) was
read from the operator's socket minus the time the DialBegin that rang that device was
written to the PBX socket; both clocks are this process's ``perf_counter``. The first
``--warmup`` seconds are left out (connection pools, caches). Per database: p50, p99,
max, and the pops that never came. This process's own loop lag (how late a 10 ms timer
fires) is printed beside them: when it is high, the measuring side is part of the figure.

Several nodes (issue 12): ``--nodes 3`` runs one ``cti-bridge run`` with ``[node] role =
"owner"`` (the PBX link to this process's AMI server, the pop builds) and two with ``role
= "web"`` (the screens, split evenly: operator k on web node k mod 2), all on a
redis-server of the benchmark's own (``[bus] url``) and the same scratch database, so
every pop is built on the owner and crosses Redis to the node that holds the screen.
``--nodes 1`` is the single node (``role = "all"``) with every screen; ``--bus`` says
which bus it runs on (``memory``, the default, and/or ``redis``: the same node on its own
redis-server, so the hop's cost shows apart from the extra processes). Each layout runs
in turn on one load of the database. Beside the latencies: the CPU seconds each daemon,
redis-server and this process used while the calls ran (``/proc/<pid>/stat``), and the
nodes' own pop and bus figures from ``/healthz``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib
import popdata
import txredisapi
from amiserver import RawPBX, RawPBXSession
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.web.websocket import WebSocketClientEndpoint, WebSocketTransport

from cti_bridge.testing.store import scratch_postgres

#: The one channel every node publishes on and listens to (``bus/redis.py``, the default
#: prefix): every node receives every message and keeps those for its own subscribers.
BUS_CHANNEL = "cti-bridge:bus"

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # tests.support: the tests' private redis-server

from tests.support.private_redis import PrivateRedis  # noqa: E402


@dataclass(frozen=True)
class Layout:
    """The daemons of one contender: their ``[node] role`` and the bus they share."""

    name: str
    roles: tuple[str, ...]
    redis: bool

    @property
    def web(self) -> list[int]:
        """The nodes that hold screens (by index): the web nodes, else the one node."""
        return [k for k, role in enumerate(self.roles) if role != "owner"]


class RedisTap(txredisapi.SubscriberProtocol):  # type: ignore[misc]  # untyped
    """``--tap``: this process's own subscriber on the nodes' channel, noting when each
    screen_pop was on Redis (the owner's part ends there, the web node's begins)."""

    seen: dict[tuple[str, str], float]
    subscribed: Deferred[None]

    def connectionMade(self) -> Deferred[Any]:
        d: Deferred[Any] = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.subscribe(BUS_CHANNEL)).addCallback(
            self._subscribed
        )
        return d

    def _subscribed(self, _: object) -> None:
        if not self.subscribed.called:
            self.subscribed.callback(None)

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        now = time.perf_counter()
        if "screen_pop" not in message:
            return
        pop = json.loads(json.loads(message)["payload"])
        if pop.get("type") == "screen_pop" and not pop.get("replay"):
            self.seen.setdefault((pop["linkedid"], pop["device"]), now)


async def redis_tap(reactor: Any, port: int, seen: dict[tuple[str, str], float]) -> Any:
    """A :class:`RedisTap` on ``port``, subscribed; returns its factory (to disconnect)."""
    from twisted.internet.endpoints import HostnameEndpoint

    ready: Deferred[None] = Deferred()
    factory = txredisapi.SubscriberFactory()
    factory.protocol = type("Tap", (RedisTap,), {"seen": seen, "subscribed": ready})
    factory.startConnecting(HostnameEndpoint(reactor, "127.0.0.1", port, 5))
    await ready
    return factory


def layouts(nodes: list[int], buses: list[str]) -> list[Layout]:
    """``--nodes`` x ``--bus``: one node on each bus asked for; three on Redis only."""
    out = []
    for count in nodes:
        if count == 1:
            for bus in buses:
                out.append(Layout(f"1 node, {bus} bus", ("all",), bus == "redis"))
        elif count == 3:
            out.append(Layout("owner + 2 web nodes, redis bus", ("owner", "web", "web"), True))
        else:
            raise SystemExit(f"--nodes {count}: 1 or 3")
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every ``postgres`` process (server, backends, workers) by pid."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU ticks of the whole machine so far (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks[:8]) - idle, sum(ticks[:8])


class Screen:
    """One operator's console, as far as the WebSocket goes: notes when pops arrive."""

    def __init__(
        self,
        username: str,
        arrivals: dict[tuple[str, str], float],
        frames: collections.Counter[str] | None = None,
    ) -> None:
        self.username = username
        self.arrivals = arrivals
        #: Frames read by type (shared by all the screens of one measurement).
        self.frames: collections.Counter[str] = collections.Counter() if frames is None else frames
        self.transport: WebSocketTransport | None = None
        self.hello: Deferred[None] = Deferred()
        self.messages = 0

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, data: str) -> None:
        now = time.perf_counter()
        self.messages += 1
        message = json.loads(data)
        kind = message.get("type")
        self.frames[kind] += 1
        if kind == "screen_pop" and not message.get("replay"):
            self.arrivals.setdefault((message["linkedid"], message["device"]), now)
        elif kind == "hello" and not self.hello.called:
            self.hello.callback(None)

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass

    def buildProtocol(self, url: str) -> Screen:
        return self


async def get_json(reactor: Any, url: str) -> dict[str, Any]:
    from twisted.web.client import Agent, readBody

    agent = Agent(reactor)  # type: ignore[no-untyped-call]  # twisted.web.client: unannotated
    response = await agent.request(b"GET", url.encode())
    return dict(json.loads(await readBody(response)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(reactor: Any, check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:g} s")
        await task.deferLater(reactor, 0.05, lambda: None)


def node_config(url: str, pbx_port: int, *, web_port: int, name: str, role: str, bus: str) -> str:
    return f"""
[node]
name = "{name}"
role = "{role}"
[bus]
url = "{bus}"
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
port = {pbx_port}
username = "cti"
secret = "bench"
auth = "plain"
"""


def daemon_command(profile: Path | None) -> list[str]:
    """``cti-bridge``, or with ``--profile`` the same under cProfile (the reactor thread;
    written when the daemon exits on the SIGTERM at the end)."""
    if profile is None:
        return [str(Path(sys.executable).parent / "cti-bridge")]
    return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "cti_bridge.app.cli"]


def print_profile(name: str, path: Path, top: int = 14) -> None:
    import io
    import pstats

    if not path.exists():
        print(f"#   {name}: no profile written")
        return
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(f"#   {name}'s reactor thread, by own time (--profile; the whole run, start-up too):")
    body = out.getvalue().split("ncalls", 1)[-1].splitlines()[1:]
    for row in body:
        if row.strip():
            print(f"#     {row.strip()[:160]}")


async def health(reactor: Any, web_port: int) -> dict[str, Any] | None:
    try:
        return await get_json(reactor, f"http://127.0.0.1:{web_port}/healthz")
    except Exception:  # not listening yet
        return None


async def measure(
    reactor: Any,
    args: argparse.Namespace,
    url: str,
    operators: dict[str, tuple[str, str]],
    *,
    layout: Layout,
    redis: PrivateRedis | None,
) -> dict[str, Any]:
    sessions: list[RawPBXSession] = []
    pbx_port = reactor.listenTCP(0, RawPBX(sessions.append), interface="127.0.0.1")
    bus = redis.url if redis is not None else "memory://"
    tmp = Path(tempfile.mkdtemp(prefix="cti-bench-"))
    web_ports = [free_port() for _ in layout.roles]
    daemons: list[subprocess.Popen[bytes]] = []
    names = []
    for k, role in enumerate(layout.roles):
        name = "bench" if len(layout.roles) == 1 else f"bench-{k}-{role}"
        names.append(name)
        config = tmp / f"{name}.toml"
        config.write_text(
            node_config(
                url, pbx_port.getHost().port, web_port=web_ports[k], name=name, role=role, bus=bus
            )
        )
        with (tmp / f"{name}.log").open("w") as log:
            daemons.append(
                subprocess.Popen(
                    [
                        *daemon_command(tmp / f"{name}.prof" if args.profile else None),
                        *("run", "--config", str(config)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        await wait_for(reactor, lambda: sessions and sessions[0].ready_at, 60, "AMI login")

        def send(data: bytes) -> None:
            # To the session logged in last, as a PBX writes to whoever is logged in: an
            # owner that loses its lease drops the link and logs in again when it has
            # the lease back (the count of logins is printed).
            sessions[-1].send(data)

        for k in layout.web:
            deadline = time.monotonic() + 60
            while (h := await health(reactor, web_ports[k])) is None or h["bus"]["status"] != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{names[k]}: not up with its bus within 60 s: {h}")
                await task.deferLater(reactor, 0.1, lambda: None)
        on_redis: dict[tuple[str, str], float] = {}
        tap = None
        if args.tap and redis is not None:
            tap = await redis_tap(reactor, redis.port, on_redis)
        arrivals: dict[tuple[str, str], float] = {}
        kinds: collections.Counter[str] = collections.Counter()
        screens = []
        for n, (username, (_, token)) in enumerate(operators.items()):
            screen = Screen(username, arrivals, kinds)
            port = web_ports[layout.web[n % len(layout.web)]]
            endpoint = WebSocketClientEndpoint.new(
                reactor, f"ws://127.0.0.1:{port}/ws?token={token}"
            )
            await endpoint.connect(screen)
            screens.append(screen)
        await defer.gatherResults([s.hello for s in screens])
        print(f"#   {len(screens)} screens connected", flush=True)
        if args.settle:
            await task.deferLater(reactor, args.settle, lambda: None)
        kinds.clear()
        lag = benchlib.LoopLag(reactor, 0.01)
        lag.start()
        written: dict[tuple[str, str], float] = {}
        template = popdata.CallTemplate()
        rng = random.Random(5)
        devices = [device for device, _ in operators.values()]
        total = int(args.rate * args.seconds)
        processes = {name: d.pid for name, d in zip(names, daemons, strict=True)}
        if redis is not None:
            processes["redis-server"] = redis.process.pid
        processes["this process"] = os.getpid()
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        pg_before, busy_before = postgres_cpu(), machine_busy()
        started = time.perf_counter()
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
            script = template.call(n, operator, number, f"Caller {n}")
            written[(script.linkedid, script.device)] = time.perf_counter()
            send(script.ring)
            reactor.callLater(1.0, send, script.answer)
            reactor.callLater(3.0, send, script.end)
        calls_took = time.perf_counter() - started
        frames = dict(kinds.most_common())
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
        if url.startswith("postgresql"):
            pg = postgres_cpu()
            cpu["postgres (all its processes)"] = sum(
                at - pg_before.get(pid, 0.0) for pid, at in pg.items()
            )
        busy = [b - a for a, b in zip(busy_before, machine_busy(), strict=True)]
        cpu_note = f"; the machine's {os.cpu_count()} cores {busy[0] / busy[1] * 100:.0f} % busy"
        await task.deferLater(reactor, 5.0, lambda: None)
        shares = ", ".join(f"{name} {s:.1f} s" for name, s in cpu.items())
        print(f"#   frames the screens read while the calls ran, by type: {frames}", flush=True)
        print(f"#   CPU while the calls ran ({calls_took:.0f} s): {shares}{cpu_note}", flush=True)
        for name, port in zip(names, web_ports, strict=True):
            h = await health(reactor, port) or {}
            pops = h.get("pops") or h.get("web", {}).get("pops") or {}
            print(f"#   {name}'s own pop figures: {json.dumps(pops)[:400]}", flush=True)
            if redis is not None:
                print(f"#   {name}'s bus: {json.dumps(h.get('bus'))[:300]}", flush=True)
        if len(sessions) > 1:
            print(f"#   AMI logins: {len(sessions)} (the PBX link was dropped and made again)")
        lag.stop()
        for screen in screens:
            if screen.transport is not None:
                screen.transport.loseConnection()
        if tap is not None:
            await tap.disconnect()
        return {
            "on_redis": on_redis,
            "written": written,
            "arrivals": arrivals,
            "started": started,
            "lag": lag.samples,
            "cpu": cpu,
            "seconds": calls_took,
        }
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(20)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for name in names:
            lines = (tmp / f"{name}.log").read_text().splitlines()
            errors = [line for line in lines if '"level": "error"' in line]
            gave_up = [
                line for line in lines if "pbx no longer owned" in line and "stopping" not in line
            ]
            if gave_up:
                print(f"#   {name} gave the PBX up {len(gave_up)} times, e.g. {gave_up[0][:240]}")
            if errors:
                print(f"#   {name} logged {len(errors)} errors, e.g. {errors[0][:300]}")
            if args.profile:
                print_profile(name, tmp / f"{name}.prof")
        await pbx_port.stopListening()


def summarise(name: str, args: argparse.Namespace, result: dict[str, Any]) -> None:
    written, arrivals = result["written"], result["arrivals"]
    cutoff = result["started"] + args.warmup
    latencies = []
    missing = 0
    for key, at in written.items():
        if at < cutoff:
            continue
        got = arrivals.get(key)
        if got is None:
            missing += 1
        else:
            latencies.append((got - at) * 1000.0)
    p50, p99, top = benchlib.percentiles(latencies, [50, 99, 100])
    print(f"# {name}: {len(latencies)} pops measured, {missing} never arrived")
    on_redis = result.get("on_redis")
    if on_redis:
        before, after = [], []
        for key, at in written.items():
            if at >= cutoff and key in on_redis and key in arrivals:
                before.append((on_redis[key] - at) * 1000.0)
                after.append((arrivals[key] - on_redis[key]) * 1000.0)
        for part, samples in (("ring -> on Redis", before), ("on Redis -> screen", after)):
            q50, q99, qmax = benchlib.percentiles(samples, [50, 99, 100])
            print(
                f"# {name}: {part} (--tap, {len(samples)} pops): p50 {q50:.2f} ms, "
                f"p99 {q99:.2f} ms, max {qmax:.1f} ms"
            )
    lags = [ms for at, ms in result["lag"] if at >= cutoff]
    if lags:
        l50, l99, lmax = benchlib.percentiles(lags, [50, 99, 100])
        print(
            f"# {name}: this process's loop lag (10 ms timer, after the warm-up): "
            f"p50 {l50:.2f} ms, p99 {l99:.2f} ms, max {lmax:.1f} ms"
        )
    benchlib.line(f"cti-bridge pop p50 ({name})", p50, "ms")
    benchlib.line(f"cti-bridge pop p99 ({name})", p99, "ms")
    benchlib.line(f"cti-bridge pop max ({name})", top, "ms")


def quiet_machine(args: argparse.Namespace, what: str) -> None:
    """Wait (up to ``--load-tries`` times 30 s) until the 1-minute load average is
    below ``--max-load``: the machine is shared, and the figures belong to a quiet one."""
    for attempt in range(args.load_tries + 1):
        load = os.getloadavg()
        if load[0] <= args.max_load or attempt == args.load_tries:
            break
        print(f"#   load {load[0]:.2f} before {what}: waiting 30 s ({attempt + 1})", flush=True)
        time.sleep(30)
    verdict = "" if load[0] <= args.max_load else f" (above {args.max_load:g}: measured anyway)"
    print(
        f"# load average before {what}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--operators", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--nodes", type=int, nargs="+", default=[1], help="1: one node; 3: owner + 2 web nodes"
    )
    parser.add_argument(
        "--bus", nargs="+", default=["memory"], choices=["memory", "redis"], help="for 1 node"
    )
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds between the screens and the calls"
    )
    parser.add_argument(
        "--tap",
        action="store_true",
        help="subscribe to Redis too: when each pop was on it (ring -> Redis -> screen)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the daemons under cProfile (slower)"
    )
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--load-tries", type=int, default=0, help="30 s waits for --max-load")
    args = parser.parse_args()
    # A SIGTERM (a background job ignores SIGINT) still drops the scratch database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    contenders = layouts(args.nodes, args.bus)
    benchlib.context(
        load=f"{args.rate:g} calls/s for {args.seconds:g} s, {args.operators} operators "
        f"connected, {args.customers} customers",
        daemon="cti-bridge run --config (own process each); PBX and screens in this process",
        layouts="; ".join(f"{c.name} ({', '.join(c.roles)})" for c in contenders),
    )
    for name in args.database:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "sqlite":
                if any(len(c.roles) > 1 for c in contenders):
                    print("# sqlite: several nodes need a shared database: skipped")
                    continue
                run_one(name, args, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", contenders)
            else:
                with scratch_postgres("cti_bench_pop") as url:
                    run_one(name, args, url, contenders)


def redis_up(redis: PrivateRedis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", redis.port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_one(name: str, args: argparse.Namespace, url: str, contenders: list[Layout]) -> None:
    t0 = time.perf_counter()
    popdata.load_customers(url, args.customers)
    operators = popdata.add_operators(url, args.operators)
    settled = popdata.settle(url)
    print(
        f"# {name}: database ready in {time.perf_counter() - t0:.0f} s "
        f"(bulk load written out: {settled})",
        flush=True,
    )
    for layout in contenders:
        label = name if contenders == layouts([1], ["memory"]) else f"{name}, {layout.name}"
        with tempfile.TemporaryDirectory(prefix="cti-bench-redis-") as folder:
            redis = PrivateRedis(Path(folder)) if layout.redis else None
            quiet_machine(args, label)
            if redis is not None:
                redis.start()
                redis_up(redis)
            try:
                measure_in_child(label, args, url, operators, layout=layout, redis=redis)
            finally:
                if redis is not None:
                    redis.stop()
            load = os.getloadavg()
            print(f"# load average after {label}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def measure_in_child(
    label: str,
    args: argparse.Namespace,
    url: str,
    operators: dict[str, tuple[str, str]],
    *,
    layout: Layout,
    redis: PrivateRedis | None,
) -> None:
    result: dict[str, Any] = {}

    async def go(reactor: Any) -> None:
        result.update(await measure(reactor, args, url, operators, layout=layout, redis=redis))

    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the reactor runs once per process: one child per measurement
        try:
            task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
        except SystemExit as done:
            if done.code:
                os._exit(int(done.code))
        summarise(label, args, result)
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"{label}: the measurement failed")


if __name__ == "__main__":
    main()
