"""Screen-pop latency: the ring leaving the PBX's socket to the operator's screen_pop frame
(issue 5, #3).

    python bench/pop_latency.py [--database sqlite postgresql] [--operators 500]
        [--rate 50] [--seconds 60] [--customers 1000000]

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
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
import popdata
from amiserver import RawPBX, RawPBXSession
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.web.websocket import WebSocketClientEndpoint, WebSocketTransport

from cti_bridge.testing.store import scratch_postgres


class Screen:
    """One operator's console, as far as the WebSocket goes: notes when pops arrive."""

    def __init__(self, username: str, arrivals: dict[tuple[str, str], float]) -> None:
        self.username = username
        self.arrivals = arrivals
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


async def measure(
    reactor: Any, args: argparse.Namespace, url: str, operators: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    sessions: list[RawPBXSession] = []
    pbx_port = reactor.listenTCP(0, RawPBX(sessions.append), interface="127.0.0.1")
    web_port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="cti-bench-"))
    config = tmp / "cti-bridge.toml"
    config.write_text(
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
            endpoint = WebSocketClientEndpoint.new(
                reactor, f"ws://127.0.0.1:{web_port}/ws?token={token}"
            )
            await endpoint.connect(screen)
            screens.append(screen)
        await defer.gatherResults([s.hello for s in screens])
        print(f"#   {len(screens)} screens connected", flush=True)
        lag = benchlib.LoopLag(reactor, 0.01)
        lag.start()
        written: dict[tuple[str, str], float] = {}
        template = popdata.CallTemplate()
        rng = random.Random(5)
        devices = [device for device, _ in operators.values()]
        total = int(args.rate * args.seconds)
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
            pbx.send(script.ring)
            reactor.callLater(1.0, pbx.send, script.answer)
            reactor.callLater(3.0, pbx.send, script.end)
        await task.deferLater(reactor, 5.0, lambda: None)
        health = await get_json(reactor, f"http://127.0.0.1:{web_port}/healthz")
        pops = health.get("pops") or health.get("web", {}).get("pops") or {}
        print(f"#   daemon's own pop figures: {json.dumps(pops)[:400]}", flush=True)
        lag.stop()
        for screen in screens:
            if screen.transport is not None:
                screen.transport.loseConnection()
        return {"written": written, "arrivals": arrivals, "started": started, "lag": lag.samples}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--operators", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    benchlib.context(
        load=f"{args.rate:g} calls/s for {args.seconds:g} s, {args.operators} operators "
        f"connected, {args.customers} customers",
        daemon="cti-bridge run --config (own process); PBX and screens in this process",
    )
    for name in args.database:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "sqlite":
                run_one(name, args, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            else:
                with scratch_postgres("cti_bench_pop") as url:
                    run_one(name, args, url)


def run_one(name: str, args: argparse.Namespace, url: str) -> None:
    t0 = time.perf_counter()
    popdata.load_customers(url, args.customers)
    operators = popdata.add_operators(url, args.operators)
    settled = popdata.settle(url)
    print(
        f"# {name}: database ready in {time.perf_counter() - t0:.0f} s "
        f"(bulk load written out: {settled})",
        flush=True,
    )
    result: dict[str, Any] = {}

    async def go(reactor: Any) -> None:
        result.update(await measure(reactor, args, url, operators))

    pid = os.fork()
    if pid == 0:  # the reactor runs once per process: one child per database
        try:
            task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
        except SystemExit as done:
            if done.code:
                os._exit(int(done.code))
        summarise(name, args, result)
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"{name}: the measurement failed")


if __name__ == "__main__":
    main()
