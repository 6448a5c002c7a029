"""A real cti-bridge daemon on the simulated PBX, for the browser tests (a subprocess).

Why a subprocess: the tests drive Chromium with Playwright's synchronous API, and the
daemon needs a running Twisted reactor; running each in its own process keeps both on
their own main thread (no reactor in a thread, no global reactor in the test process).

It builds what ``cti-bridge demo`` builds, but deterministic: SQLite in ``--data-dir``,
no random traffic, two operators (anna on PJSIP/1001, bart on PJSIP/1002), a supervisor
and customers with contracts; then it listens on free loopback ports and prints one JSON
line ``{"ready": ...}``. Commands arrive as JSON lines on stdin, answers and events go
out as JSON lines on stdout:

    {"cmd": "call", "scenario": "direct_answered", "caller": [number, name], "options": {...}}
    {"cmd": "drop_sockets"}        close every console WebSocket (a network blip)
    {"cmd": "originate", "device": "PJSIP/1001", "exten": "050123456", "agreement_id": 1,
     "attempt": 1, "operator": "anna", "caller_id": "..."}
                                   a callback as the dialer places it: the attempt claimed
                                   in the store, then the Originate with its variables,
                                   through the daemon's own AMI link; the operator's phone
                                   rings until "answer", the customer answers at once
    {"cmd": "hold", "device": "PJSIP/1001", "exten": "050123456"}
                                   how the phones treat the next callback (as "originate"
                                   sets them): the operator's rings until "answer", the
                                   customer answers at once (for ``--dialer``, whose own
                                   DialerService places the callback)
    {"cmd": "answer", "device": "PJSIP/1001"}   the operator picks up
    {"cmd": "phone", "device": "PJSIP/1001", "reachable": false}
                                   qualify's verdict on a phone (PeerStatus, device state,
                                   ContactStatus): the operator's phone stops answering
                                   or comes back
    {"cmd": "flag", "agreement_id": 1, "reason": "deadline_passed"}
                                   what the dialer does when a callback cannot be kept:
                                   flag it in the store, push agreement_flagged to the
                                   supervisors
    {"cmd": "quit"}

Every ring on an operator's device is reported as ``{"event": "ringing", "device": ...,
"linkedid": ..., "at": <time.time()>}`` so a test can time the pop against the ring.

With ``--dialer`` the daemon runs the callback dialer too (``[dialer]`` on, every hour
callable, no holidays, a pass every half second): a callback made due through the API is
dialled by the daemon itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.internet import defer, stdio, task
from twisted.protocols.basic import LineReceiver

from cti_bridge.ami.originate import OriginateRequest
from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import Daemon
from cti_bridge.bus.topics import SUPERVISORS_TOPIC
from cti_bridge.calls.events import DomainEvent, OperatorRinging
from cti_bridge.dialer.policy import DAYS
from cti_bridge.log import configure_logging
from cti_bridge.pop import PopService, make_pop_service
from cti_bridge.pop.context import local_today
from cti_bridge.sim import Callee, Reply, SimulatedPBX
from cti_bridge.store import Store, open_store, upgrade
from cti_bridge.testing.store import cheap_hasher

PASSWORD = "console-test-pw"
OPERATORS = (("PJSIP/1001", "Anna"), ("PJSIP/1002", "Bart"))
COVERED = ("+3250123456", "Jan Peeters")
EXPIRED = ("050765432", "Marie Dubois")
#: ``[dialer]`` of ``--dialer``: any hour of any day, a pass every half second.
DIALER = {
    "enabled": True,
    "hours": dict.fromkeys(DAYS, "00:00-24:00"),
    "holidays": "",
    "pass_seconds": 0.5,
    "operator_ring_seconds": 60,
}


def seed(store: Store, today: date) -> dict[str, Any]:
    """The helpdesk's customers and operators; ``today`` in the helpdesk's time zone
    (contracts are dated in its days: the server's own clock is UTC here, Brussels is an
    hour ahead, so from 23:00 UTC a contract's days left differ by one)."""
    accounts, customers = store.accounts, store.customers
    for device, name in OPERATORS:
        accounts.add_operator(
            name.lower(), role="operator", password=PASSWORD, name=name, devices=[device]
        )
    accounts.add_operator("sofie", role="supervisor", password=PASSWORD, name="Sofie")
    router = customers.add_product("RTR-200", "Router RTR-200")
    customers.add_script_version(
        router, "no-internet", title="No internet", body="1. Is the WAN light on?\n2. <b>reboot</b>"
    )
    jan = customers.add_customer(
        COVERED[1],
        numbers=[COVERED[0]],
        company="Peeters Installaties",
        language="nl",
        knowledge_level="expert",
        tier="premium",
        external_ref="CUST-001",
    )
    customers.give_product(jan, router)
    customers.add_contract(
        jan,
        valid_from=today - timedelta(days=100),
        valid_until=today + timedelta(days=20),
        covered=["phone_support", "repair"],
        product_id=router,
        service_level_hours=4,
        reference="C-2026-0001",
    )
    store.agreements.add_agreement(
        "callback",
        customer_id=jan,
        deadline=datetime.now(UTC) - timedelta(hours=3),
        callback_number=COVERED[0],
        notes="Call back about the <i>firmware</i> update",
    )
    marie = customers.add_customer(
        EXPIRED[1],
        numbers=[EXPIRED[0]],
        company="Dubois & Fils",
        language="fr",
        knowledge_level="beginner",
        tier="standard",
        external_ref="CUST-002",
    )
    customers.add_contract(
        marie,
        valid_from=today - timedelta(days=400),
        valid_until=today - timedelta(days=10),
        covered=["phone_support"],
        reference="C-2025-0099",
    )
    return {"customers": {"covered": jan, "expired": marie}}


class Commands(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 20  # a call's 10 KB caller name, JSON-escaped, is past the 16 KB default

    def __init__(self, daemon: Daemon, sim: SimulatedPBX, store: Store, done: defer.Deferred[None]):
        self.daemon = daemon
        self.sim = sim
        self.store = store
        self.done = done

    def lineReceived(self, line: bytes) -> None:
        try:
            command = json.loads(line)
            answer = self.run(command)
        except Exception as error:  # the test sees it and fails with the reason
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        say(answer)

    def run(self, command: dict[str, Any]) -> dict[str, Any]:
        what = command.get("cmd")
        if what == "call":
            caller = tuple(command["caller"]) if command.get("caller") else None
            placed = self.sim.place_call(
                command["scenario"], caller=caller, **command.get("options", {})
            )
            return {"ok": True, "linkedid": placed.linkedid}
        if what == "drop_sockets":
            sockets = list(self.daemon.hub.sockets)
            for socket in sockets:
                if socket.transport is not None:
                    socket.transport.loseConnection()
            return {"ok": True, "closed": len(sockets)}
        if what == "hold":
            self.hold(command["device"], command["exten"])
            return {"ok": True}
        if what == "originate":
            device, exten = command["device"], command["exten"]
            self.hold(device, exten)
            request = OriginateRequest(
                channel=device,
                context="callback",
                exten=exten,
                caller_id=command.get("caller_id"),
                ring_seconds=60.0,
                variables={
                    "CTI_AGREEMENT_ID": str(command["agreement_id"]),
                    "CTI_ATTEMPT": str(command.get("attempt", 1)),
                    "CTI_OPERATOR": command.get("operator", ""),
                },
            )
            claimed = self.store.agreements.claim_attempt(
                int(command["agreement_id"]),
                int(command.get("attempt", 1)),
                now=datetime.now(UTC),
                operator=command.get("operator") or None,
                node="browser-tests",
                pbx="sim",
                channel_id=request.channel_id,
                action_id=request.action_id,
            )
            if not claimed:
                raise ValueError("the attempt could not be claimed (not open, not due?)")
            self.daemon.clients["sim"].originate(request).addErrback(lambda _: None)
            return {"ok": True, "channel_id": request.channel_id}
        if what == "flag":
            flagged = self.store.agreements.flag_agreement(
                int(command["agreement_id"]),
                command.get("reason", "deadline_passed"),
                now=datetime.now(UTC),
            )
            if flagged is None:
                raise ValueError("the agreement is not open")
            self.daemon.bus.publish(
                SUPERVISORS_TOPIC, {"type": "agreement_flagged", "agreement": flagged}
            )
            return {"ok": True, "agreement": flagged}
        if what == "answer":
            return {"ok": self.sim.answer(command["device"])}
        if what == "phone":
            self.sim.set_reachable(command["device"], bool(command["reachable"]))
            return {"ok": True}
        if what == "status":
            return {"ok": True, "health": self.daemon.health()}
        if what == "quit":
            if not self.done.called:
                self.done.callback(None)
            return {"ok": True}
        raise ValueError(f"unknown command {what!r}")

    def hold(self, device: str, exten: str) -> None:
        self.sim.set_reply(device, Reply.noanswer())  # rings until "answer"
        self.sim.set_callee(exten, Callee(Reply.answer(0.5), talk=600.0))

    def connectionLost(self, reason: object = None) -> None:
        if not self.done.called:  # the test process went away: stop too
            self.done.callback(None)


class Output:
    """stdout belongs to StandardIO once it runs: every line goes through its transport."""

    transport: Any = None

    def __call__(self, message: dict[str, Any]) -> None:
        line = json.dumps(message).encode() + b"\n"
        if self.transport is not None:
            self.transport.write(line)
        else:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()


say = Output()


def report_rings(event: DomainEvent) -> None:
    if isinstance(event, OperatorRinging):
        say(
            {
                "event": "ringing",
                "device": event.ring.device,
                "linkedid": event.call.linkedid,
                "at": time.time(),
            }
        )


@defer.inlineCallbacks
def main(reactor: Any, data_dir: str, dialer: bool) -> Any:
    configure_logging("warning", sys.stderr)
    url = f"sqlite:///{Path(data_dir) / 'console.sqlite3'}"
    upgrade(url)
    store = open_store(url, accounts={"hasher": cheap_hasher()})
    sim = SimulatedPBX(reactor, seed=4, operators=OPERATORS)
    pbx_port = sim.listen(0)
    config = parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0},
            "database": {"url": url},
            "bus": {"url": "memory://"},
            "phone": {"default_region": "BE"},
            "pbx": [
                {
                    "name": "sim",
                    "host": "127.0.0.1",
                    "port": pbx_port,
                    "username": "cti",
                    "secret": sim.secret,
                }
            ],
            "log": {"level": "warning"},
            **({"dialer": DIALER} if dialer else {}),
        },
        source="console-test",
    )
    seeded = seed(store, local_today(zone=config.dialer.timezone)())
    daemon = Daemon(config, reactor, store=store)
    # The pop engine: the daemon's own when it wires one, else wired here the same way.
    own = [v for v in daemon.node.parts.values() if isinstance(v, PopService)]
    pops = None
    if not own:
        pops = make_pop_service(store, reactor, daemon.bus, daemon.node.run)
        daemon.add_consumer(pops.handle)
    daemon.add_consumer(report_rings)
    yield daemon.start()
    if pops is not None:
        pops.start()
    client = daemon.clients["sim"]
    for _ in range(200):  # logged in and resynced: the daemon follows the PBX
        if client.status().get("state") == "connected":
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    done: defer.Deferred[None] = defer.Deferred()
    commands = Commands(daemon, sim, store, done)
    stdio.StandardIO(commands)
    say.transport = commands.transport
    say(
        {
            "ready": daemon.url,
            "password": PASSWORD,
            "pop_engine": "daemon" if own else "harness",
            "link": client.status().get("state"),
            **seeded,
        }
    )
    yield done
    if pops is not None:
        pops.stop()
    yield sim.stop()
    yield daemon.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dialer", action="store_true", help="run the callback dialer too")
    args = parser.parse_args()
    task.react(main, [args.data_dir, args.dialer])
