"""The project's own AMI client, unchanged, against the simulator: the same code that
talks to Asterisk logs in (MD5), waits for FullyBooted, resyncs, follows events,
sends actions and reconnects after a PBX restart.

The connection is in memory (``SimEndpoint``), the clock a ``MemoryReactorClock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.client import AMIAccount, AMIClient, Backoff, ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.calls import CallModel
from cti_bridge.calls.events import Call, CallEnded
from cti_bridge.sim import Callee, Reply, SimulatedPBX
from cti_bridge.sim.harness import SimEndpoint, run

SECRET = "client-secret"


class Recorder:
    """An AMIListener that feeds a call model, as the daemon's wiring does."""

    def __init__(self) -> None:
        self.model = CallModel("sim")
        self.snapshots: list[ResyncSnapshot] = []
        self.lost: list[str] = []
        self.events: list[Message] = []
        self.ended: list[Call] = []

    def ami_event(self, msg: Message, received_at: float) -> None:
        self.events.append(msg)
        for event in self.model.feed(msg, received_at):
            if isinstance(event, CallEnded):
                self.ended.append(event.call)

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self.snapshots.append(snapshot)
        self.model.resync(snapshot.channels, received_at)

    def ami_link_lost(self, reason: str, at: float) -> None:
        self.lost.append(reason)
        self.model.link_lost(at)


@dataclass
class Rig:
    clock: MemoryReactorClock
    sim: SimulatedPBX
    client: AMIClient
    recorder: Recorder
    endpoint: SimEndpoint


@pytest.fixture
def rig() -> Rig:
    clock = MemoryReactorClock()
    clock.advance(1_795_737_000)
    sim = SimulatedPBX(clock, seed=8, secret=SECRET)
    endpoint = SimEndpoint(sim)
    recorder = Recorder()
    account = AMIAccount("sim", "127.0.0.1", 5038, "cti", SECRET, auth="md5")
    client = AMIClient(
        clock,
        account,
        endpoint=endpoint,
        listeners=[recorder],
        backoff=Backoff(initial=0.5, cap=2.0),
    )
    client.start()
    run(clock, 1)
    return Rig(clock, sim, client, recorder, endpoint)


def test_client_logs_in_with_md5_and_resyncs(rig: Rig) -> None:
    assert rig.client.state == "connected"
    (snapshot,) = rig.recorder.snapshots
    assert snapshot.channels == []
    kinds = [m["Event"] for m in snapshot.queue_status]
    assert kinds.count("QueueParams") == 2
    assert kinds.count("QueueMember") == len(rig.sim.operators) + 2
    assert snapshot.fully_booted["Status"] == "Fully Booted"


def test_client_follows_calls_into_the_call_model(rig: Rig) -> None:
    rig.sim.place_call("queue_answered", operator="PJSIP/1002", ring=2, talk=10)
    run(rig.clock, 30)
    (call,) = rig.recorder.ended
    assert (call.answered_by, call.outcome, call.queue) == ("PJSIP/1002", "answered", "support")
    assert call.talk_seconds == pytest.approx(10, abs=0.3)
    assert rig.recorder.model.rejected_events == 0


def test_client_actions_get_their_answers(rig: Rig) -> None:
    results: list[Any] = []
    rig.client.command("queue show support").addCallback(results.append)
    rig.client.send_action(
        "QueuePause", {"Interface": "PJSIP/1002", "Paused": "true", "Reason": "Lunchpauze"}
    ).addCallback(results.append)
    run(rig.clock, 1)
    output, pause = results
    assert output.lines[0].startswith("support has 0 calls")
    assert pause.response["Message"] == "Interface paused successfully"
    pauses = [e for e in rig.recorder.events if e["Event"] == "QueueMemberPause"]
    assert {p["Queue"] for p in pauses} == {"support", "sales"}


def test_client_callback_through_originate(rig: Rig) -> None:
    rig.sim.set_reply("PJSIP/1001", Reply.answer(2))
    rig.sim.set_callee("0470123456", Callee(Reply.answer(3), talk=8))
    answers: list[Any] = []
    rig.client.send_action(
        "Originate",
        {
            "Channel": "PJSIP/1001",
            "Context": "callback",
            "Exten": "0470123456",
            "CallerID": '"Terugbelverzoek 42" <0470123456>',
            "Variable": "CTI_AGREEMENT_ID=42",
            "Timeout": "20000",
            "Async": "true",
        },
        action_id="callback-42",
    ).addCallback(answers.append)
    run(rig.clock, 30)
    assert answers[0].response["Message"] == "Originate successfully queued"
    (call,) = rig.recorder.ended
    assert (call.agreement_id, call.originate_action_id, call.outcome) == (
        "42",
        "callback-42",
        "answered",
    )


def test_client_resyncs_after_the_link_drops_and_follows_the_live_call(rig: Rig) -> None:
    placed = rig.sim.place_call("queue_answered", operator="PJSIP/1001", ring=1, talk=60)
    run(rig.clock, 5)
    rig.endpoint.accepting = False
    rig.sim.drop_connections()
    run(rig.clock, 1)
    assert rig.recorder.lost
    assert rig.client.state != "connected"
    rig.endpoint.accepting = True
    run(rig.clock, 10)
    assert rig.client.state == "connected"
    assert len(rig.recorder.snapshots) == 2
    assert rig.endpoint.connections >= 2
    # the call went on while the link was down: the new snapshot lists its channels
    listed = [c["Channel"] for c in rig.recorder.snapshots[1].channels]
    assert placed.channel.name in listed
    assert [c["Linkedid"] for c in rig.recorder.snapshots[1].channels] == [placed.linkedid] * 2


def test_client_sees_a_pbx_restart(rig: Rig) -> None:
    rig.sim.place_call("queue_answered", operator="PJSIP/1001", ring=1, talk=600)
    rig.sim.place_call("queue_timeout")
    run(rig.clock, 5)
    rig.sim.shutdown(restart=True)
    assert rig.sim.pbx.channels == {}
    rig.clock.advance(0)  # deliver what was written before the link closed
    assert len(rig.recorder.lost) == 1
    assert "shut" in rig.recorder.lost[0].lower()
    causes = {e["Cause"] for e in rig.recorder.events if e["Event"] == "SoftHangupRequest"}
    assert "4" in causes
    complete = [e for e in rig.recorder.events if e["Event"] == "AgentComplete"]
    assert [e["Reason"] for e in complete] == ["agent"]  # as in trace 11
    run(rig.clock, 10)
    assert rig.client.state == "connected"
    assert rig.recorder.snapshots[-1].channels == []
    assert int(rig.recorder.snapshots[-1].fully_booted["Uptime"]) < 2  # a fresh PBX
    assert rig.recorder.model.live_calls == []


def test_wrong_secret_is_an_auth_failure(rig: Rig) -> None:
    endpoint = SimEndpoint(rig.sim)
    recorder = Recorder()
    account = AMIAccount("sim", "127.0.0.1", 5038, "cti", "not-it", auth="plain")
    client = AMIClient(rig.clock, account, endpoint=endpoint, listeners=[recorder])
    client.start()
    run(rig.clock, 3)
    assert client.state != "connected"
    assert recorder.snapshots == []
    assert "Authentication failed" in (client.status().get("last_error") or "")
