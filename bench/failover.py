"""Takeover time after the PBX's owner is SIGKILLed (issue 12): median and worst of N kills.

Two ``cti-bridge run`` nodes (``[node] role = "all"``) as separate processes on a
redis-server of the benchmark's own, a scratch PostgreSQL database and a real Asterisk 22
(the test harness's, ``cti_bridge.testing.asterisk``). Each round: find the owner,
SIGKILL it, time until the other node's ``/healthz`` says it owns ``main`` (polled every
20 ms), then start the killed node again so that there is always a standby, and wait
until it is up (a standby) before the next kill. A call is placed before each kill so the
new owner resyncs a live call, as in a real takeover.

The expected figure is about the lease (``lease.Timing``: 5 s ttl, renewed every ttl/3,
a standby asks every second): the lease runs out between ttl - ttl/3 and ttl after the
kill, plus up to a second until the standby asks again.

    PYTHONPATH=src:. .venv/bin/python bench/failover.py [--kills 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "src")]

import benchlib  # noqa: E402
from tests.integration.dialer_support import wait_until  # noqa: E402
from tests.support.failover import owner_nodes, owns  # noqa: E402
from tests.support.private_redis import PrivateRedis  # noqa: E402

from cti_bridge.store import upgrade  # noqa: E402
from cti_bridge.testing.asterisk import AsteriskInstance, asterisk_root  # noqa: E402
from cti_bridge.testing.store import scratch_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    benchlib.context(kills=args.kills, lease="5 s (lease.Timing default)")
    takeovers: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cti-failover-") as folder:
        work = Path(folder)
        pbx = AsteriskInstance(asterisk_root())
        pbx.start()
        for ext in ("1001", "1002"):
            pbx.set_operator(ext, ring=1, talk=20)
        redis = PrivateRedis(work)
        redis.start()
        try:
            with scratch_postgres("cti_bench_failover") as url:
                upgrade(url)
                nodes = owner_nodes(work, url, redis.url, {"main": pbx})
                try:
                    nodes[0].start()
                    wait_until(lambda: owns(nodes[0]), 20, "node-a owns the PBX")
                    nodes[1].start()
                    for round_ in range(args.kills):
                        owner = next(n for n in nodes if owns(n))
                        standby = next(n for n in nodes if n is not owner)
                        pbx.place_call("3200", f"04850099{round_:02d}", "Klant", hold=25)
                        time.sleep(1.0)
                        killed_at = time.monotonic()
                        owner.kill()
                        wait_until(lambda s=standby: owns(s), 30, "takeover", every=0.02)  # type: ignore[misc]
                        took = time.monotonic() - killed_at
                        takeovers.append(took)
                        print(f"# kill {round_ + 1}: {owner.name} -> {standby.name} {took:.2f} s")
                        sys.stdout.flush()
                        owner.start()  # the standby for the next round
                    pbx.wait_idle(timeout=60, hangup_after=5)
                finally:
                    for node in nodes:
                        node.stop()
        finally:
            redis.stop()
            pbx.stop()
    print(f"# spread: min {min(takeovers):.2f} s, all {[round(t, 2) for t in takeovers]}")
    print(f"takeover median: {statistics.median(takeovers):.2f} s")
    print(f"takeover worst: {max(takeovers):.2f} s")


if __name__ == "__main__":
    main()
