"""The members board's cost on the reactor: per AMI event, and per dialer read.

    python bench/members.py [--repeat 20] [--operators 500] [--rounds 5]

* ``member events``: the recorded burst (12-burst, 40 calls) after its snapshot (the
  one of 11-restart-reconnect), ``--repeat`` times: every event the members listener
  wants through ``QueueMembers.feed`` and the board's recompute of the operators it
  touched (``MembersBoard.changed``); events/s of those events.
* ``operator_states``: one ``operator_states(pbx)`` over ``--operators`` operators with
  a phone and two queue memberships each: what the dialer reads per pass; reads/s, and
  the same read with every operator computed again (no kept views) for comparison.

CPU time of this process, best of ``--rounds`` interleaved rounds.
"""

from __future__ import annotations

import argparse

import benchlib

from cti_bridge.ami.parser import Message, parse_stream
from cti_bridge.queues.members import MEMBER_EVENTS, QueueMembers
from cti_bridge.queues.operators import MembersBoard

OPERATORS = {"Local/1001@agents": "anna", "Local/1002@agents": "bart"}
_ITEMS = frozenset({"QueueParams", "QueueMember", "QueueEntry"})


def burst_events() -> tuple[list[Message], list[Message]]:
    snapshot = parse_stream((benchlib.TRACES / "11-restart-reconnect.ami").read_bytes())
    burst = parse_stream(benchlib.BURST.read_bytes())
    items = [m for m in snapshot if m.get("Event") in _ITEMS]
    live = [m for m in burst if m.get("Event") in MEMBER_EVENTS and "ActionID" not in m]
    return items, live


def replay(items: list[Message], live: list[Message], repeat: int) -> int:
    members = QueueMembers("main")
    board = MembersBoard(lambda: 0.0)
    board.add(members)
    board.set_operators(OPERATORS, 0.0)
    members.resync(items, 0.0)
    at = 0.0
    for _ in range(repeat):
        for msg in live:
            at += 0.001
            changed = members.feed(msg, at)
            if changed:
                board.changed("main", changed, at)
    return repeat * len(live)


def big_board(operators: int) -> MembersBoard:
    members = QueueMembers("main")
    board = MembersBoard(lambda: 10.0)
    board.add(members)
    board.set_operators({f"PJSIP/{1000 + i}": f"op{i:04d}" for i in range(operators)}, 0.0)
    for i in range(operators):
        device = f"PJSIP/{1000 + i}"
        change = {"Event": "DeviceStateChange", "Device": device, "State": "NOT_INUSE"}
        board.changed("main", members.feed(Message(change), 1.0), 1.0)
        for queue in ("support", "sales"):
            status = {
                "Event": "QueueMemberStatus",
                "Queue": queue,
                "Interface": device,
                "StateInterface": device,
                "Status": "1",
                "Paused": "0",
            }
            board.changed("main", members.feed(Message(status), 2.0), 2.0)
    return board


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--operators", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    items, live = burst_events()
    board = big_board(args.operators)
    reads = 200
    benchlib.context(
        events_per_copy=len(live), repeat=args.repeat, operators=args.operators, reads=reads
    )

    def kept() -> int:
        for _ in range(reads):
            board.operator_states("main")
        return reads

    def computed() -> int:
        for _ in range(reads // 20):
            board.changed("main", None, 10.0)  # every operator computed again
            board.operator_states("main")
        return reads // 20

    results = benchlib.interleaved(
        [
            ("member events", lambda: replay(items, live, args.repeat)),
            ("operator_states", kept),
            ("operator_states, all computed again", computed),
        ],
        args.rounds,
    )
    for name, rounds in results.items():
        print(f"# {name}: {rounds.spread()}")
    benchlib.line(
        "member events", args.repeat * len(live) / results["member events"].best, "events/s"
    )
    benchlib.line("operator_states", reads / results["operator_states"].best, "reads/s")
    again = results["operator_states, all computed again"].best
    benchlib.line("operator_states, all computed again", (reads // 20) / again, "reads/s")


if __name__ == "__main__":
    main()
