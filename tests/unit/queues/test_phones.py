"""The operators' phones: contacts from the endpoint list and ``ContactStatus`` (the
formats Asterisk 22 sends: the pjsip traces 07/07b and a REGISTER/unREGISTER of lab
endpoint 1003 on the harness's Asterisk), the device-state fallback, ``since``, a lost
link; and on a node: ``/healthz`` ``phones``, the ``phone_status`` pushes, the agent
view's ``phones``."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed

from cti_bridge.bus.topics import (
    SUPERVISOR_AGENT_BATCHES_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
    operator_topic,
)
from cti_bridge.queues.live import Account
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.queues.phones import Contacts, PhoneStates, state_from_device
from cti_bridge.queues.pushes import SupervisorPushes
from cti_bridge.queues.workload import Workload
from tests.support.ami_link import PBXSide, list_answer
from tests.support.calls_facts import messages
from tests.unit.queues.test_feed import Rig

#: ``PJSIPShowEndpoints`` items as Asterisk 22 lists them (the harness's lab PBX): static
#: contacts are listed here (and not by ``PJSIPShowContacts``), a registering endpoint
#: without a registration has none.
ENDPOINTS = [
    {
        "Event": "EndpointList",
        "ObjectType": "endpoint",
        "ObjectName": "1001",
        "Aor": "1001",
        "Contacts": "1001/sip:1001@127.0.0.1:5171,",
        "DeviceState": "Not in use",
        "ActiveChannels": "0",
    },
    {
        "Event": "EndpointList",
        "ObjectType": "endpoint",
        "ObjectName": "1002",
        "Aor": "1002",
        "Contacts": "1002/sip:1002@127.0.0.1:5172,",
        "DeviceState": "Unavailable",
        "ActiveChannels": "0",
    },
    {
        "Event": "EndpointList",
        "ObjectType": "endpoint",
        "ObjectName": "1003",
        "Aor": "1003",
        "Contacts": "",
        "DeviceState": "Unavailable",
        "ActiveChannels": "0",
    },
]


def contact_status(endpoint: str, word: str, port: int = 5172) -> dict[str, str]:
    """A ``ContactStatus`` as Asterisk 22 sends it (the REGISTER's own: ``NonQualified``
    for an AOR without qualify, ``Removed`` for ``Expires: 0``)."""
    return {
        "Event": "ContactStatus",
        "Privilege": "system,all",
        "URI": f"sip:{endpoint}@127.0.0.1:{port}",
        "ContactStatus": word,
        "AOR": endpoint,
        "EndpointName": endpoint,
        "RoundtripUsec": "0",
    }


def listed() -> Contacts:
    contacts = Contacts("main")
    contacts.listed(ENDPOINTS, asked_at=10.0)
    return contacts


def test_the_endpoint_list_says_who_is_registered() -> None:
    contacts = Contacts("main")
    assert contacts.state("PJSIP/1001") == "unknown"  # no list since the link came up
    contacts = listed()
    assert contacts.state("PJSIP/1001") == "registered"
    assert contacts.state("PJSIP/1002") == "unreachable"  # a contact, and qualify fails
    assert contacts.state("PJSIP/1003") == "unregistered"  # no contact
    assert contacts.state("PJSIP/4711") == "unregistered"  # no such endpoint
    assert contacts.state("Local/1001@agents") is None  # not a PJSIP device


def test_the_recorded_phone_goes_away_and_comes_back() -> None:
    contacts = Contacts("main")
    contacts.listed([{**ENDPOINTS[1], "DeviceState": "Not in use"}], asked_at=0.0)
    seen = []
    for n, msg in enumerate(messages("pjsip/07-operator-unreachable.ami"), start=1):
        if contacts.feed(msg, float(n)):
            seen.append((n, contacts.state("PJSIP/1002")))
    assert seen == [(11, "unreachable"), (109, "registered")]


def test_a_phone_registers_and_unregisters() -> None:
    contacts = listed()
    assert contacts.feed(contact_status("1003", "NonQualified", 20616), 20.0) == frozenset(
        {"PJSIP/1003"}
    )
    assert contacts.state("PJSIP/1003") == "registered"
    contacts.feed(contact_status("1003", "Removed", 20616), 30.0)
    assert contacts.state("PJSIP/1003") == "unregistered"


def test_a_qualified_registration_is_registered_from_its_creation() -> None:
    contacts = listed()
    for word, state in [
        ("Created", "registered"),
        ("Unreachable", "unreachable"),
        ("Reachable", "registered"),
        ("Updated", "registered"),
        ("Removed", "unregistered"),
    ]:
        contacts.feed(contact_status("1003", word), 20.0)
        assert contacts.state("PJSIP/1003") == state, word


def test_a_live_event_newer_than_the_question_outweighs_the_list() -> None:
    contacts = Contacts("main")
    contacts.feed(contact_status("1002", "Reachable"), 12.0)  # after asking at 10
    contacts.feed(contact_status("1003", "NonQualified"), 5.0)  # before: the list wins
    contacts.listed(ENDPOINTS, asked_at=10.0)
    assert contacts.state("PJSIP/1002") == "registered"
    assert contacts.state("PJSIP/1003") == "unregistered"


def test_refused_list_reset_and_shutdown() -> None:
    contacts = listed()
    contacts.refused()
    assert contacts.state("PJSIP/1001") is None  # the device state decides
    contacts = listed()
    assert contacts.feed({"Event": "Shutdown"}, 40.0) is None
    assert contacts.state("PJSIP/1001") == "unknown"


def test_device_states_for_phones_without_contacts() -> None:
    assert state_from_device(None) == "unknown"
    assert state_from_device("UNKNOWN") == "unknown"
    assert state_from_device("UNAVAILABLE") == "unreachable"
    assert state_from_device("INVALID") == "unreachable"
    for raw in ("NOT_INUSE", "INUSE", "RINGING", "BUSY", "ONHOLD"):
        assert state_from_device(raw) == "registered"


def test_phone_states_keep_since_and_tell_changes() -> None:
    raw: dict[str, str | None] = {"Local/2001@agents": None}
    phones = PhoneStates(lambda pbx, device: raw.get(device))
    contacts = Contacts("main")
    phones.add(contacts)
    owners = {"PJSIP/1001": "anna", "PJSIP/1002": "bart", "Local/2001@agents": "second"}
    first = phones.set_owners(owners, 1.0)
    assert [(c.phone.device, c.phone.state, c.before) for c in first] == [
        ("Local/2001@agents", "unknown", None),
        ("PJSIP/1001", "unknown", None),
        ("PJSIP/1002", "unknown", None),
    ]
    contacts.listed(ENDPOINTS, 2.0)
    raw["Local/2001@agents"] = "NOT_INUSE"
    changes = phones.changed("main", None, 3.0)
    assert {(c.phone.operator, c.phone.state, c.before) for c in changes} == {
        ("anna", "registered", "unknown"),
        ("bart", "unreachable", "unknown"),
        ("second", "registered", "unknown"),
    }
    assert phones.changed("main", None, 4.0) == []  # nothing new: since stays
    contacts.feed(contact_status("1002", "Reachable"), 5.0)
    (change,) = phones.changed("main", ["PJSIP/1002", "PJSIP/9999"], 5.0)
    assert (change.phone.state, change.phone.since, change.before) == (
        "registered",
        5.0,
        "unreachable",
    )
    assert [p.since for p in phones.of_operator("anna")] == [3.0]
    contacts.reset()
    raw["Local/2001@agents"] = None
    assert {c.phone.state for c in phones.changed("main", None, 6.0)} == {"unknown"}
    assert phones.set_owners({"PJSIP/1001": "anna"}, 7.0) == []
    assert [p.device for p in phones.phones()] == ["PJSIP/1001"]


# -- on a node ----------------------------------------------------------------------------


class PhonesRig(Rig):
    def __init__(self, owners: dict[str, str] | None = None) -> None:
        default = {"PJSIP/1001": "anna", "PJSIP/1002": "bart", "Local/1001@agents": "anna"}
        super().__init__(default if owners is None else owners)
        self.workload = self.node.part("workload", Workload)
        ids = {"anna": 1, "bart": 2}

        def operator_id(username: str) -> Deferred[Any]:
            return succeed(ids.get(username))

        self.workload._operator_id = operator_id
        self.heard: dict[str, list[dict[str, Any]]] = {}
        for topic in (
            SUPERVISORS_TOPIC,
            SUPERVISOR_AGENTS_TOPIC,
            SUPERVISOR_AGENT_BATCHES_TOPIC,
            operator_topic(1),
            operator_topic(2),
        ):
            self.node.bus.subscribe(topic, self._hear(topic))

    def _hear(self, topic: str) -> Callable[[Any], None]:
        return lambda msg: self.heard.setdefault(topic, []).append(msg)

    def pushed(self, topic: str, kind: str = "phone_status") -> list[tuple[str, str]]:
        self.reactor.advance(0)
        return [(m["device"], m["state"]) for m in self.heard.get(topic, []) if m["type"] == kind]

    def answer_endpoints(self, pbx: PBXSide) -> None:
        (asked,) = [a for a in pbx.actions() if a["Action"] == "PJSIPShowEndpoints"]
        items = ["".join(f"{k}: {v}\r\n" for k, v in item.items()) for item in ENDPOINTS]
        pbx.send(list_answer(asked.action_id or "", items, "EndpointListComplete"))


def event(msg: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in msg.items()) + "\r\n"


def test_the_node_shows_and_pushes_the_phones() -> None:
    rig = PhonesRig()
    pbx = rig.connect()
    health = rig.node.health.report()
    states = {p["device"]: p["state"] for p in health["phones"]["pbx"]["main"]["phones"]}
    # the snapshot's member Status for the Local device; no endpoint list yet for PJSIP
    assert states == {
        "Local/1001@agents": "registered",
        "PJSIP/1001": "unknown",
        "PJSIP/1002": "unknown",
    }
    rig.answer_endpoints(pbx)
    section = rig.node.health.report()["phones"]
    main = section["pbx"]["main"]
    assert main["endpoint_list"] == "listed"
    assert (main["registered"], main["unreachable"], main["unknown"]) == (2, 1, 0)
    assert [(p["device"], p["operator"], p["state"]) for p in main["phones"]] == [
        ("Local/1001@agents", "anna", "registered"),
        ("PJSIP/1001", "anna", "registered"),
        ("PJSIP/1002", "bart", "unreachable"),
    ]
    assert section["status"] == "degraded"
    assert "phones" not in [n for n, s in rig.node.health._sections.items() if s.counts]
    assert rig.pushed(operator_topic(2)) == [("PJSIP/1002", "unreachable")]
    assert rig.pushed(operator_topic(1)) == [
        ("Local/1001@agents", "registered"),
        ("PJSIP/1001", "registered"),
    ]
    assert len(rig.pushed(SUPERVISORS_TOPIC)) == 3

    pbx.send(event(contact_status("1002", "Reachable")))
    assert rig.pushed(operator_topic(2))[-1] == ("PJSIP/1002", "registered")
    push = rig.heard[operator_topic(2)][-1]
    assert set(push) == {"type", "pbx", "operator", "device", "state", "since"}
    view = rig.node.parts["supervision"].view  # type: ignore[attr-defined]
    agent = view.agent(Account("bart", "Bart", ("PJSIP/1002",)))
    assert agent["phones"] == [{"pbx": "main", "device": "PJSIP/1002", "state": "registered"}]

    pbx.close("PBX gone")
    assert rig.pushed(operator_topic(2))[-1] == ("PJSIP/1002", "unknown")
    assert {p["state"] for p in rig.node.health.report()["phones"]["pbx"]["main"]["phones"]} == {
        "unknown"
    }


def test_a_pbx_without_pjsip_lists_goes_by_device_states() -> None:
    rig = PhonesRig()
    pbx = rig.connect()
    actions = {a["Action"]: a for a in pbx.actions()}
    pbx.send(
        f"Response: Error\r\nActionID: {actions['PJSIPShowEndpoints'].action_id}\r\n"
        "Message: Invalid/unknown command: PJSIPShowEndpoints.\r\n\r\n"
    )
    pbx.send(event({"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "UNAVAILABLE"}))
    pbx.send(event({"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"}))
    main = rig.node.health.report()["phones"]["pbx"]["main"]
    assert main["endpoint_list"] == "refused"
    states = {p["device"]: p["state"] for p in main["phones"]}
    assert states["PJSIP/1002"] == "unreachable" and states["PJSIP/1001"] == "registered"
    assert states["Local/1001@agents"] == "registered"  # its member Status: not in use


def test_an_agent_update_carries_the_phone_state_of_the_change_it_is_pushed_for() -> None:
    """The phones are judged before the supervisors' pushes are built from the board:
    the ``agent_update`` of a phone going away says so itself (no stale one first), and
    so does the ``agents_update`` batch."""
    rig = PhonesRig()
    anna = SimpleNamespace(
        id=1, username="anna", name="Anna", devices=["Local/1001@agents"], active=True
    )
    rig.node.store.accounts.list_operators = lambda: [anna]  # type: ignore[method-assign, list-item]
    rig.node.parts["supervision"].reload_roster()  # type: ignore[attr-defined]
    pbx = rig.connect()
    (pushes,) = [
        w.__self__  # type: ignore[attr-defined]
        for w in rig.node.part("members", MembersBoard).watchers
        if isinstance(getattr(w, "__self__", None), SupervisorPushes)
    ]
    pushes.agents.interval = 0  # every change is pushed at once, built right then
    pushes.batches.interval = 0
    rig.reactor.advance(1)  # the snapshot is taken in
    rig.heard.clear()
    pbx.send(
        event({"Event": "DeviceStateChange", "Device": "Local/1001@agents", "State": "UNAVAILABLE"})
    )
    for _ in range(3):  # the coalescer's turn, then the bus's delivery
        rig.reactor.advance(0)
    updates = [
        m["agent"] for m in rig.heard[SUPERVISOR_AGENTS_TOPIC] if m["type"] == "agent_update"
    ]
    batched = [
        agent
        for m in rig.heard[SUPERVISOR_AGENT_BATCHES_TOPIC]
        if m["type"] == "agents_update"
        for agent in m["agents"]
    ]
    assert updates and batched, "the change was pushed"
    assert [u["phones"] for u in updates + batched] == [
        [
            {"pbx": "main", "device": "Local/1001@agents", "state": "unreachable"},
            {"pbx": "main", "device": "PJSIP/1001", "state": "unknown"},
        ]
    ] * len(updates + batched)
