# mypy: disallow-untyped-calls=False
"""The supervisors' live view on a node behind a scripted PBX link: GET /api/queues and
/api/agents (roles, shapes, today's figures through the KPI ports), pause and unpause
(QueuePause on the link, the board paused only when the PBX says so, 400/403/404/409/503)
and the coalesced queue_update/agent_update pushes on the node's clock."""

from __future__ import annotations

import json
from io import BytesIO
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge.ami.parser import Message
from cti_bridge.bus.topics import SUPERVISOR_AGENTS_TOPIC, SUPERVISORS_TOPIC
from cti_bridge.queues.pushes import Coalescer
from cti_bridge.store.accounts import OperatorInfo
from cti_bridge.web.auth import Principal
from tests.support.ami_link import PBXSide
from tests.unit.queues.test_feed import Rig, device_list_asked

ACCOUNTS = [
    OperatorInfo(1, "anna", "Anna Peeters", "operator", ("Local/1001@agents",), True),
    OperatorInfo(2, "bart", "Bart Claes", "operator", ("Local/1002@agents",), True),
    OperatorInfo(3, "chris", "Chris", "operator", ("PJSIP/1003",), True),
    OperatorInfo(4, "gone", None, "operator", (), False),
    OperatorInfo(5, "sofie", "Sofie", "supervisor", (), True),
]
OWNERS = {"Local/1001@agents": "anna", "Local/1002@agents": "bart", "PJSIP/1003": "chris"}
JOIN = (
    "Event: QueueCallerJoin\r\nChannel: Local/hold14@sim-caller-000000a5;1\r\n"
    "CallerIDNum: 050123456\r\nUniqueid: 1795735383.330\r\nLinkedid: 1795735383.330\r\n"
    "Queue: support\r\nPosition: 1\r\nCount: 1\r\n\r\n"
)


class Logins:
    def __init__(self) -> None:
        self.tokens = {
            "t-anna": Principal(1, "anna", "operator"),
            "t-bart": Principal(2, "bart", "operator"),
            "t-sofie": Principal(5, "sofie", "supervisor"),
        }

    def resolve_token(self, token: str) -> Deferred[Principal | None]:
        return succeed(self.tokens.get(token))


class Kpis:
    def today(self, queues: list[str]) -> Deferred[dict[str, dict[str, Any]]]:
        return succeed({q: {"offered": 3, "answered": 2, "abandoned": 1} for q in queues})

    def operators_today(self) -> Deferred[dict[str, dict[str, Any]]]:
        return succeed({"anna": {"calls_today": 2, "talk_seconds_today": 95.5}})


class LiveRig(Rig):
    def __init__(self) -> None:
        super().__init__(OWNERS)
        store: Any = self.node.store
        store.accounts.list_operators = lambda: list(ACCOUNTS)
        store.calls = SimpleNamespace(
            call_ids=lambda pbx, linkedids: (
                {"1795735383.330": 77} if "1795735383.330" in linkedids else {}
            )
        )
        self.node.http.logins = Logins()  # type: ignore[assignment]
        self.node.parts["supervision"].reload_roster()  # type: ignore[attr-defined]
        self.pushes: list[dict[str, Any]] = []
        self.node.bus.subscribe(SUPERVISORS_TOPIC, self._pushed)  # a supervisor's screen
        self.node.bus.subscribe(SUPERVISOR_AGENTS_TOPIC, self._pushed)
        self.resource = self.node.http.resource()

    def _pushed(self, message: Any) -> None:
        self.pushes.append(json.loads(message) if isinstance(message, (str, bytes)) else message)

    def start(
        self, method: str, path: str, body: Any = None, token: str = "t-sofie"
    ) -> tuple[Request, list[bytes]]:
        channel = DummyChannel()
        channel.site = Site(self.resource, reactor=self.reactor)
        request = Request(channel)
        written: list[bytes] = []
        request.write = written.append  # type: ignore[method-assign]
        request.content = BytesIO(b"" if body is None else json.dumps(body).encode())
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        request.requestReceived(method.encode(), path.encode(), b"HTTP/1.1")
        return request, written

    def ask(
        self, method: str, path: str, body: Any = None, token: str = "t-sofie"
    ) -> tuple[int, Any]:
        request, written = self.start(method, path, body, token)
        assert written, "the answer is not synchronous"
        return request.code, json.loads(b"".join(written))

    def pushed(self, kind: str) -> list[dict[str, Any]]:
        self.reactor.advance(0)  # the memory bus delivers on the next turn
        field = "queue" if kind == "queue_update" else "agent"
        return [p[field] for p in self.pushes if p["type"] == kind]

    def queue(self, name: str) -> dict[str, Any]:
        code, body = self.ask("GET", "/api/queues")
        assert code == 200
        (found,) = [q for q in body["queues"] if q["name"] == name]
        return dict(found)

    def agent(self, username: str) -> dict[str, Any]:
        code, body = self.ask("GET", "/api/agents")
        assert code == 200
        (found,) = [a for a in body["agents"] if a["operator"] == username]
        return dict(found)


def connected() -> tuple[LiveRig, PBXSide]:
    rig = LiveRig()
    pbx = rig.connect()
    device_list_asked(pbx)
    return rig, pbx


def test_operators_may_not_see_the_queues_or_the_agents() -> None:
    rig, _pbx = connected()
    assert rig.ask("GET", "/api/queues", token="t-anna")[0] == 403
    assert rig.ask("GET", "/api/agents", token="t-anna")[0] == 403


def test_the_queues_show_members_and_waiting_callers_with_their_call_id() -> None:
    rig, pbx = connected()
    del rig.node.parts["kpis"]  # the room installs one; without it, no "today"
    support = rig.queue("support")
    assert support["waiting"] == [] and support["longest_wait_seconds"] == 0
    states = {m["operator"]: m["state"] for m in support["members"]}
    assert states == {"anna": "available", "bart": "available"}
    pbx.send(JOIN)
    rig.reactor.advance(7)
    support = rig.queue("support")
    assert support["waiting"] == [
        {
            "call_id": 77,
            "linkedid": "1795735383.330",
            "caller_number": "+3250123456",
            "caller_withheld": False,
            "position": 1,
            "wait_seconds": 7,
        }
    ]
    assert support["longest_wait_seconds"] == 7
    assert "today" not in support  # no KPI part on this node


def test_today_comes_from_the_kpi_part_when_the_node_has_one() -> None:
    rig, _pbx = connected()
    del rig.node.parts["kpis"]  # the room's own, over this rig's fake store
    assert rig.agent("anna")["calls_today"] is None
    rig.node.provide("kpis", Kpis())
    assert rig.queue("support")["today"] == {"offered": 3, "answered": 2, "abandoned": 1}
    anna = rig.agent("anna")
    assert (anna["calls_today"], anna["talk_seconds_today"]) == (2, 95.5)
    bart = rig.agent("bart")  # counted, and answered nothing today: none, not unknown
    assert (bart["calls_today"], bart["talk_seconds_today"]) == (0, 0.0)


def test_agents_are_the_active_accounts_with_their_state() -> None:
    rig, _pbx = connected()
    code, body = rig.ask("GET", "/api/agents")
    assert code == 200
    agents = {a["operator"]: a for a in body["agents"]}
    assert sorted(agents) == ["anna", "bart", "chris", "sofie"]  # not the inactive one
    anna = agents["anna"]
    assert anna["name"] == "Anna Peeters" and anna["devices"] == ["Local/1001@agents"]
    assert anna["state"] == "available" and anna["queues"] == ["sales", "support"]
    assert anna["state_since"] is not None
    assert agents["chris"]["state"] == "unavailable"  # no device on the PBX
    assert agents["chris"]["state_since"] is None


def pause_event(paused: bool, reason: str, queue: str = "support") -> str:
    return (
        f"Event: QueueMemberPause\r\nQueue: {queue}\r\nMemberName: Anna\r\n"
        "Interface: Local/1001@agents/n\r\nStateInterface: Local/1001@agents\r\n"
        f"Membership: static\r\nPenalty: 0\r\nCallsTaken: 0\r\nStatus: 1\r\n"
        f"Paused: {int(paused)}\r\nPausedReason: {reason}\r\n\r\n"
    )


def answer(pbx: PBXSide, actions: list[Message]) -> None:
    for action in actions:
        pbx.send(f"Response: Success\r\nActionID: {action.action_id}\r\nMessage: ok\r\n\r\n")


def test_an_operator_pauses_themselves_and_the_board_follows_the_pbx() -> None:
    rig, pbx = connected()
    request, written = rig.start("POST", "/api/agents/anna/pause", {"reason": "lunch"}, "t-anna")
    actions = pbx.actions()
    assert sorted((a["Queue"], a["Interface"], a["Paused"], a["Reason"]) for a in actions) == [
        ("sales", "Local/1001@agents/n", "true", "lunch"),
        ("support", "Local/1001@agents/n", "true", "lunch"),
    ]
    assert all(a["Action"] == "QueuePause" for a in actions)
    assert rig.agent("anna")["state"] == "available"  # not before the PBX says so
    answer(pbx, actions)
    assert request.code == 200 and json.loads(b"".join(written))["queues"] == ["sales", "support"]
    pbx.send(pause_event(True, "lunch", "support") + pause_event(True, "lunch", "sales"))
    anna = rig.agent("anna")
    assert (anna["state"], anna["paused_reason"]) == ("paused", "lunch")
    members = [m for m in rig.queue("support")["members"] if m["operator"] == "anna"]
    assert (members[0]["state"], members[0]["paused_reason"]) == ("paused", "lunch")
    rig.start("POST", "/api/agents/anna/unpause")
    actions = pbx.actions()
    assert {(a["Queue"], a["Paused"]) for a in actions} == {
        ("sales", "false"),
        ("support", "false"),
    }
    assert all("Reason" not in a for a in actions)


def test_pause_answers_with_the_queues_once_the_pbx_said_yes() -> None:
    rig, pbx = connected()
    request, written = rig.start("POST", "/api/agents/bart/pause", {"reason": "break"})
    assert not written
    answer(pbx, pbx.actions())
    assert request.code == 200
    assert json.loads(b"".join(written)) == {
        "operator": "bart",
        "paused": True,
        "reason": "break",
        "queues": ["sales", "support"],
    }


def test_pause_refusals() -> None:
    rig, pbx = connected()
    code, body = rig.ask("POST", "/api/agents/anna/pause", {"reason": "nap"})
    assert code == 400 and "'break', 'lunch', 'training', 'back office'" in body["error"]
    assert rig.ask("POST", "/api/agents/bart/pause", {"reason": "lunch"}, token="t-anna")[0] == 403
    assert rig.ask("POST", "/api/agents/nobody/pause", {"reason": "lunch"})[0] == 404
    assert rig.ask("POST", "/api/agents/chris/pause", {"reason": "lunch"})[0] == 409
    assert pbx.actions() == []
    pbx.close("PBX gone")
    assert rig.ask("POST", "/api/agents/anna/pause", {"reason": "lunch"})[0] == 503


def test_a_burst_is_coalesced_and_the_last_state_is_pushed() -> None:
    rig, pbx = connected()
    rig.reactor.advance(1)  # the resync's own pushes go out (at its end)...
    rig.reactor.advance(1)  # ...and their interval is over
    rig.pushes.clear()
    pbx.send(JOIN)
    first = rig.pushed("queue_update")
    assert [q["name"] for q in first] == ["support"]  # the first change at once
    assert first[0]["waiting"][0]["position"] == 1
    for n in range(2, 30):  # a burst inside one interval
        pbx.send(
            f"Event: QueueCallerJoin\r\nUniqueid: 9.{n}\r\nLinkedid: 9.{n}\r\nQueue: support\r\n"
            f"CallerIDNum: anonymous\r\nPosition: {n}\r\nCount: {n}\r\n\r\n"
        )
    assert len(rig.pushed("queue_update")) == 1
    rig.reactor.advance(0.3)
    updates = rig.pushed("queue_update")
    assert len(updates) == 2 and len(updates[-1]["waiting"]) == 29  # the latest
    assert updates[-1]["waiting"][-1]["caller_number"] is None  # withheld
    rig.reactor.advance(5)  # a sweep: nothing changed, nothing pushed
    assert len(rig.pushed("queue_update")) == 2


def test_an_agent_update_follows_a_ring() -> None:
    rig, pbx = connected()
    rig.reactor.advance(1)  # the resync's own pushes go out (at its end)...
    rig.reactor.advance(1)  # ...and their interval is over
    rig.pushes.clear()
    pbx.send(
        "Event: AgentCalled\r\nQueue: support\r\nInterface: Local/1001@agents/n\r\n"
        "MemberName: Anna\r\nDestChannel: Local/1001@agents-000000a7;1\r\n"
        "DestUniqueid: 1795735383.334\r\n\r\n"
    )
    agents = rig.pushed("agent_update")
    assert [(a["operator"], a["state"]) for a in agents] == [("anna", "ringing")]


def test_the_coalescer_sends_at_once_then_at_most_once_an_interval() -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    sent: list[tuple[float, str]] = []
    coalescer: Coalescer[str] = Coalescer(
        clock, 0.5, lambda key: sent.append((clock.seconds(), key))
    )
    coalescer.mark("q")
    coalescer.mark("q")
    clock.advance(0.2)
    coalescer.mark("q")
    clock.advance(0.3)
    coalescer.mark("r")
    clock.advance(1)
    coalescer.mark("q")
    assert sent == [(0.0, "q"), (0.5, "q"), (0.5, "r"), (1.5, "q")]
