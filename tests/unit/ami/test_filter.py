"""Parsing only the events somebody wants changes nothing the call model derives.

Every recorded trace goes through the real protocol twice - once building every event,
once with the filter the client computes for the daemon's listener (``CallPipeline``:
the model's declared events and ``VarSet`` variables) - with the same reads at the same
clock times, and the model must give the same domain events, the same live calls and
the same rejected-event count. Then the client's side: what it asks the parser for, and
how it delivers.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from cti_bridge.ami.listener import CLIENT_EVENTS, AMIListener, wanted_by
from cti_bridge.ami.parser import EventFilter, Message, parse_stream
from cti_bridge.ami.protocol import AMIProtocol
from cti_bridge.calls.events import DomainEvent
from cti_bridge.calls.model import CONSUMED_EVENTS, CONSUMED_VARIABLES, CallModel
from cti_bridge.calls.pipeline import CallPipeline
from tests.support.paths import TRACES

ALL_TRACES = sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.ami"))


def daemon_filter() -> EventFilter | None:
    return wanted_by([CallPipeline(CallModel("main"))])


def message_reads(data: bytes) -> list[bytes]:
    """One read per message (the banner with the first): each its own arrival time."""
    reads, start = [], 0
    while (end := data.find(b"\r\n\r\n", start)) >= 0:
        while data.startswith(b"\r\n", end + 4):
            end += 2
        reads.append(data[start : end + 4])
        start = end + 4
    return [*reads, data[start:]] if data[start:] else reads


def random_reads(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    reads, start = [], 0
    while start < len(data):
        size = rng.choice([1, 7, 200, 1400, 1400, 9000, 65536])
        reads.append(data[start : start + size])
        start += size
    return reads


def replay(reads: list[bytes], wanted: EventFilter | None) -> tuple[Any, ...]:
    clock = Clock()
    clock.advance(1_795_735_000.0)
    model = CallModel("main")
    proto = AMIProtocol(clock, wanted=wanted)
    produced: list[DomainEvent] = []
    delivered: list[tuple[str | None, str | None, bool]] = []

    def on_event(msg: Message, at: float) -> None:
        delivered.append((msg.event, msg.get("Variable"), "ActionID" in msg))
        produced.extend(model.feed(msg, at))

    proto.on_event = on_event
    transport = StringTransport()
    proto.makeConnection(transport)
    for data in reads:
        proto.dataReceived(data)
        clock.advance(0.25)
    assert not transport.disconnecting
    outcome = (produced, model.live_calls, model.rejected_events, model.state_sizes())
    return outcome, delivered, proto.parser.skipped


@pytest.mark.parametrize("name", ALL_TRACES)
def test_the_model_derives_the_same_with_and_without_the_filter(name: str) -> None:
    data = (TRACES / name).read_bytes()
    wanted = daemon_filter()
    assert wanted is not None
    for reads in (message_reads(data), random_reads(data, seed=len(data))):
        everything, all_events, none_skipped = replay(reads, None)
        filtered, wanted_events, skipped = replay(reads, wanted)
        assert filtered == everything
        assert none_skipped == 0
        # Listeners get exactly what they want, plus events with an ActionID.
        assert wanted_events == [e for e in all_events if e[2] or wanted.wants(e[0], e[1])]
    # Not a vacuous comparison: the traces with calls produce domain events, and the
    # filter skips events in every trace that has some nobody wants.
    unwanted = [
        m
        for m in parse_stream(data)
        if m.event is not None
        and "ActionID" not in m
        and not wanted.wants(m.event, m.get("Variable"))
    ]
    assert skipped == len(unwanted)
    if name.startswith(("01", "04", "12", "pjsip/01", "timestamped/01")):
        assert everything[0], "a call trace produces domain events"
        assert skipped > len(wanted_events) / 2, "most of a call trace's events are unwanted"


def test_the_declaration_matches_the_models_handler_table() -> None:
    assert set(CallModel("main")._handlers) == CONSUMED_EVENTS
    assert CallModel.consumed_events == CONSUMED_EVENTS
    assert CallModel.consumed_variables == CONSUMED_VARIABLES


@pytest.mark.parametrize(
    "variable",
    [
        "QUEUESTATUS",
        "CTI_AGREEMENT_ID",
        "CTI_",
        "CTI_ANYTHING",
        "QUEUESTATUS2",
        "QUEUESTATUs",
        "cti_agreement_id",
        "XCTI_A",
        "BRIDGEPEER",
        "DIALSTATUS",
        "",
    ],
)
def test_the_declared_variables_are_the_ones_feed_passes_on(variable: str) -> None:
    model = CallModel("main")
    reached: list[str] = []
    model._handlers["VarSet"] = lambda msg, rx, out: reached.append(msg.get("Variable", ""))
    model.feed({"Event": "VarSet", "Variable": variable, "Value": "x"}, 1.0)
    wanted = EventFilter(CONSUMED_EVENTS, CONSUMED_VARIABLES)
    assert bool(reached) == wanted.wants("VarSet", variable)


# -- what the client asks for ---------------------------------------------------------------


class Wants(AMIListener):
    def __init__(self, events: frozenset[str] | None, variables: frozenset[str] | None = None):
        self.wanted_events = events
        self.wanted_variables = variables

    def ami_event(self, msg: Message, received_at: float) -> None:
        pass


def test_the_pipeline_wants_what_its_model_consumes_and_the_client_adds_its_own() -> None:
    wanted = daemon_filter()
    assert wanted == EventFilter(CONSUMED_EVENTS | CLIENT_EVENTS, CONSUMED_VARIABLES)
    assert {"FullyBooted", "Shutdown", "OriginateResponse"} <= wanted.events


def test_union_of_listeners() -> None:
    a = Wants(frozenset({"Hangup", "VarSet"}), frozenset({"QUEUESTATUS"}))
    b = Wants(frozenset({"VarSet", "DialBegin"}), frozenset({"CTI_*"}))
    c = Wants(frozenset({"QueueMemberStatus"}))
    assert wanted_by([a, b, c]) == EventFilter(
        frozenset({"Hangup", "VarSet", "DialBegin", "QueueMemberStatus"}) | CLIENT_EVENTS,
        frozenset({"QUEUESTATUS", "CTI_*"}),
    )
    # One listener that wants every VarSet widens it for all.
    every_varset = Wants(frozenset({"VarSet"}))
    assert wanted_by([a, every_varset]) == EventFilter(
        frozenset({"Hangup", "VarSet"}) | CLIENT_EVENTS, None
    )
    # A listener that says nothing may want anything: nothing is skipped.
    assert wanted_by([a, Wants(None)]) is None

    class Plain:  # duck-typed, no declaration
        def ami_event(self, msg: Message, received_at: float) -> None:
            pass

    assert wanted_by([a, Plain()]) is None

    class ResyncOnly:  # no ami_event: wants no event at all
        def ami_resync(self, snapshot: object, received_at: float) -> None:
            pass

    assert wanted_by([c, ResyncOnly()]) == EventFilter(
        frozenset({"QueueMemberStatus"}) | CLIENT_EVENTS, frozenset()
    )
    assert wanted_by([]) == EventFilter(CLIENT_EVENTS, frozenset())
