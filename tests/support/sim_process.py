"""The simulated PBX in a process of its own: a traffic source that outlives the daemon
(a fault test may SIGKILL the daemon and start it again) and says which calls it made.

    python -m tests.support.sim_process --folder DIR --secret S [--speed 10] [--seed 13]

It serves AMI on a free loopback port and writes it to ``DIR/port``. When ``DIR/go``
appears (JSON: ``{"calls": N, "every": SECONDS, "scenarios": [...]}``) it places N
calls, one per ``every`` seconds, the scenarios in turn, and appends each call's
linkedid to ``DIR/calls`` as it starts; once they have all ended and no channel is
left it writes ``DIR/idle``. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import LoopingCall

from cti_bridge.sim import SimulatedPBX

#: Scenarios whose calls are one linkedid each (no consultation call of a transfer).
ONE_CALL_SCENARIOS = (
    "queue_answered",
    "direct_answered",
    "queue_abandoned",
    "direct_missed",
    "withheld",
    "busy_then_answered",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    folder = Path(args.folder)
    sim = SimulatedPBX(reactor, seed=args.seed, secret=args.secret, speed=args.speed)
    port = sim.listen(0)
    state: dict[str, Any] = {"placed": 0, "wanted": None}

    def place(scenarios: list[str]) -> None:
        scenario = scenarios[state["placed"] % len(scenarios)]
        placed = sim.place_call(scenario)
        state["placed"] += 1
        with (folder / "calls").open("a") as out:
            out.write(placed.linkedid + "\n")

    def look() -> None:
        if state["wanted"] is None:
            go = folder / "go"
            if not go.exists():
                return
            order = json.loads(go.read_text())
            state["wanted"] = order["calls"]
            scenarios = list(order.get("scenarios") or ONE_CALL_SCENARIOS)
            burst = LoopingCall(place, scenarios)
            state["burst"] = burst
            burst.start(order["every"], now=True)
            return
        if state["placed"] >= state["wanted"]:
            burst = state.pop("burst", None)
            if burst is not None and burst.running:
                burst.stop()
            if not sim.pbx.channels and not (folder / "idle").exists():
                (folder / "idle").write_text(str(state["placed"]))

    LoopingCall(look).start(0.1)
    (folder / "port").write_text(str(port))
    reactor.run()


if __name__ == "__main__":
    main()
