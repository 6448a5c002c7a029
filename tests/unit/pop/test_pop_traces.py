"""Pop routing on every recorded trace: AMI bytes -> CallModel -> PopService -> bus.

Operators are bound to the traces' devices (pop_helpers.OPERATORS); the bus records every
publish with its topic. The checks: the right operator, nobody else, the right content,
withdrawals, and that the engine forgets every call that ended.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import pytest

from cti_bridge.calls.events import Call, CallEnded, DomainEvent
from tests.support.calls_facts import replay
from tests.support.paths import TRACES
from tests.support.pop_helpers import BY_ID, OPERATORS, pop_rig

ALL_TRACES = sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.ami"))


def run_trace(name: str) -> tuple[Any, list[DomainEvent]]:
    events = replay(name).events
    rig = pop_rig()
    rig.feed(events)
    return rig, events


def owner_of(device: str) -> str | None:
    return next((n for n, (_, devices) in OPERATORS.items() if device in devices), None)


@pytest.mark.parametrize("trace", ALL_TRACES)
def test_every_trace_routes_to_the_ringing_operators_only(trace: str) -> None:
    rig, events = run_trace(trace)
    calls: dict[str, Call] = {}
    for event in events:
        calls[event.call.linkedid] = event.call  # the last snapshot of every call
    rung: dict[str, set[str]] = defaultdict(set)  # linkedid -> usernames whose device rang
    for call in calls.values():
        for ring in call.rings:
            if (who := owner_of(ring.device)) is not None:
                rung[call.linkedid].add(who)

    per_pop: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for topic, message in rig.bus.log:
        assert topic.startswith("operator."), topic
        username = BY_ID[int(topic.removeprefix("operator."))]
        linkedid = message["linkedid"]
        assert username in rung[linkedid], f"{username} got {message['type']} for {linkedid}"
        per_pop[(username, linkedid)].append(message)
        json.dumps(message)  # everything travels as JSON

    assert rig.bus.to("eve") == []
    for (username, linkedid), messages in per_pop.items():
        call = calls[linkedid]
        first = messages[0]
        assert first["type"] == "screen_pop", (username, linkedid, messages)
        assert first["operator"] == username
        assert first["device"] in OPERATORS[username][1]
        assert first["caller"]["number_raw"] == call.caller_number_raw
        assert first["caller"]["name"] == call.caller_name
        # After a withdrawal nothing more comes for that pop, unless the call rings again.
        for before, after in itertools.pairwise(messages):
            if before["type"] == "pop_withdrawn":
                assert after["type"] == "screen_pop", (username, linkedid)
        if call.ended_at is not None and messages[-1]["type"] != "pop_withdrawn":
            assert messages[-1]["type"] == "call_update"
            assert messages[-1]["state"] == "ended"
            assert messages[-1]["outcome"] == call.outcome
    # Every operator whose device rang got a pop (the context never fails here).
    for linkedid, usernames in rung.items():
        for username in usernames:
            assert per_pop[(username, linkedid)], f"{username} got no pop for {linkedid}"
    ended = {e.call.linkedid for e in events if isinstance(e, CallEnded)}
    live = {k[1] for k in rig.service.core._calls}  # white-box: nothing leaks
    assert not (live & ended)
    assert len(rig.builds) == len({r.linkedid for r in rig.builds}), "one context per call"


def test_01_second_operator_sees_the_pop_withdrawn_when_the_first_answers() -> None:
    rig, _ = run_trace("01-queue-answered.ami")
    bart = rig.bus.to("bart")
    anna = rig.bus.to("anna")
    assert [m["type"] for m in bart] == ["screen_pop", "pop_withdrawn"]
    assert bart[0]["state"] == "ringing"
    assert bart[0]["queue"] == "support"
    assert bart[1]["reason"] == "answered_elsewhere"
    assert bart[1]["answered_by"] == "anna"
    assert bart[1]["call_id"] == bart[0]["call_id"] is not None
    assert [(m["type"], m.get("state")) for m in anna] == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]
    assert anna[0]["caller"] == {
        "number": "+3250123456",
        "number_raw": "+3250123456",
        "name": "Jan Peeters",
        "withheld": False,
    }
    assert anna[1]["answered_by"] == "anna"
    assert anna[1]["talking"] == ["anna"]
    assert anna[2]["outcome"] == "answered"
    assert len(rig.builds) == 1  # one context, reused for both operators
    assert rig.service.core.active_pops() == 0
    assert rig.service.core.calls() == 0


def test_02_caller_leaves_while_both_ring() -> None:
    rig, _ = run_trace("02-queue-abandoned.ami")
    for username in ("anna", "bart"):
        messages = rig.bus.to(username)
        assert [m["type"] for m in messages] == ["screen_pop", "pop_withdrawn"]
        assert messages[1]["reason"] == "caller_left"
        assert "answered_by" not in messages[1]


def test_03_rings_out_then_the_next_operator_answers() -> None:
    rig, _ = run_trace("03-ring-no-answer-then-answered.ami")
    anna = rig.bus.to("anna")
    assert [m["type"] for m in anna] == ["screen_pop", "pop_withdrawn"]
    assert anna[1]["reason"] == "no_answer"
    assert anna[0]["queue"] == "sales"
    bart = rig.bus.to("bart")
    assert [(m["type"], m.get("state")) for m in bart] == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]


def test_04_direct_call_pops_without_a_queue() -> None:
    rig, _ = run_trace("04-direct-call.ami")
    anna = rig.bus.to("anna")
    assert anna[0]["type"] == "screen_pop"
    assert anna[0]["queue"] is None
    assert anna[0]["dialled"] == "1001"
    assert rig.bus.to("bart") == []


@pytest.mark.parametrize(
    ("trace", "kind"),
    [
        ("05-blind-transfer.ami", "blind"),
        ("05-blind-transfer-redirect.ami", "redirect"),
        ("06-attended-transfer.ami", "attended"),
    ],
)
def test_05_06_transfer_target_gets_its_own_pop(trace: str, kind: str) -> None:
    rig, _ = run_trace(trace)
    second = rig.bus.to("second")
    assert second[0]["type"] == "screen_pop"
    assert second[0]["device"] == "Local/2001@agents"
    assert second[0]["caller"]["name"] == rig.bus.to("anna")[0]["caller"]["name"]
    assert second[0]["call_id"] == rig.bus.to("anna")[0]["call_id"]
    assert second[-1]["state"] == "ended"
    anna_updates = [m for m in rig.bus.to("anna") if m["type"] == "call_update"]
    transferred = [m for m in anna_updates if m["state"] == "transferred"]
    assert len(transferred) == 1
    assert transferred[0]["transfer"]["kind"] == kind
    assert transferred[0]["transfer"]["from"] == "anna"
    assert anna_updates[-1]["state"] == "ended"
    assert anna_updates[-1]["outcome"] == "transferred"
    assert len(rig.builds) == 1


@pytest.mark.parametrize(
    ("trace", "agreement"),
    [
        ("07-callback-originate-answered.ami", 42),
        ("07-callback-originate-answered-channelid.ami", 48),
    ],
)
def test_07_callback_pops_with_its_agreement(trace: str, agreement: int) -> None:
    rig, _ = run_trace(trace)
    anna = rig.bus.to("anna")
    assert anna[0]["type"] == "screen_pop"
    assert anna[0]["direction"] == "outbound"
    assert anna[0]["agreement"]["id"] == agreement
    assert rig.builds[0].agreement_ref == str(agreement)
    # The customer's leg (Local/0470123456@pstn-out) rings too: nobody's device.
    assert {t for t, _ in rig.bus.log} == {"operator.1"}


def test_08_operator_does_not_answer_a_callback() -> None:
    rig, _ = run_trace("08-callback-originate-failed-operator-noanswer.ami")
    anna = rig.bus.to("anna")
    assert [m["type"] for m in anna] == ["screen_pop", "pop_withdrawn"]
    assert anna[1]["reason"] == "no_answer"


def test_13_hostile_caller_ids_are_carried_as_text() -> None:
    rig, events = run_trace("13-hostile-callerid.ami")
    pops = [m for _, m in rig.bus.log if m["type"] == "screen_pop"]
    names = {p["caller"]["name"] for p in pops}
    assert "<script>alert(1)</script>" in names
    assert 'Jan "de Baas" O\'Brien & Zonen; <b>bv</b>' in names
    assert "Łódź \u2013 Ślęża ☎ 日本" in names
    assert "Event: Hangup" in names
    withheld = [p for p in pops if p["caller"]["number_raw"] == "anonymous"]
    assert withheld and withheld[0]["caller"]["withheld"] is True
    assert withheld[0]["caller"]["number"] is None
    # Exactly the model's text: nothing escaped, nothing turned into markup.
    model_names = {e.call.caller_name for e in events}
    assert names <= model_names


def test_13_crlf_injection_makes_no_phantom_pop() -> None:
    rig, events = run_trace("13-hostile-callerid-crlf-injection.ami")
    linkedids = {e.call.linkedid for e in events}
    assert {m["linkedid"] for _, m in rig.bus.log} <= linkedids
    pops = [m for _, m in rig.bus.log if m["type"] == "screen_pop"]
    assert len({(p["linkedid"], p["operator"]) for p in pops}) == len(pops)


def test_pjsip_devices_pop_the_same_operators() -> None:
    rig, _ = run_trace("pjsip/01-queue-answered.ami")
    assert rig.bus.kinds("bart") == ["screen_pop", "pop_withdrawn"]
    assert rig.bus.kinds("anna") == ["screen_pop", "call_update", "call_update"]
    assert rig.bus.to("anna")[0]["device"] == "PJSIP/1001"
