"""Operator load: ``[workload]``, the wrap-up it gives the board, and the break reminders
(``breaks.BreakWatch`` on its own, and once a minute on a node's clock: no sleeps)."""

from __future__ import annotations

import pytest

from cti_bridge.app.config import ConfigError, parse_config
from cti_bridge.bus.topics import SUPERVISORS_TOPIC, operator_topic
from cti_bridge.queues.breaks import BreakWatch, Reminder
from cti_bridge.queues.members import QueueMembers
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.queues.workload import configure_wrapup
from tests.support.members_replay import seed_items
from tests.unit.queues.test_phones import PhonesRig, event

MIN = 60.0


def test_the_workload_section_and_its_defaults() -> None:
    config = parse_config({})
    assert config.workload.wrapup_seconds == 0
    assert config.workload.break_after_minutes == 120
    assert config.workload.break_minutes == 5
    config = parse_config({"workload": {"wrapup_seconds": 15, "wrapup_queues": {"sales": 30}}})
    assert config.workload.wrapup_queues == {"sales": 30}
    with pytest.raises(ConfigError, match=r"workload\.wrapup_seconds"):
        parse_config({"workload": {"wrapup_seconds": -1}})
    with pytest.raises(ConfigError, match=r"workload\.break_minutes"):
        parse_config({"workload": {"break_minutes": 0}})


def test_the_configured_wrapup_shows_after_each_queue_call() -> None:
    members = QueueMembers("main")
    board = MembersBoard(lambda: 0.0)
    board.add(members)
    workload = parse_config({"workload": {"wrapup_seconds": 15, "wrapup_queues": {"sales": 30}}})
    configure_wrapup(board, workload.workload)
    members.resync(seed_items(), 1_795_735_000.0)
    at = 1_795_735_100.0
    for queue in ("support", "sales"):
        members.feed(
            {
                "Event": "AgentComplete",
                "Queue": queue,
                "Interface": "Local/1001@agents/n",
                "DestUniqueid": f"x-{queue}",
            },
            at,
        )
    ends = {
        m.queue: m.wrap_up_until - at
        for m in members.members(at + 1)
        if m.wrap_up_until is not None
    }
    assert ends == {"support": 15.0, "sales": 30.0}
    assert {
        m.queue: m.state for m in members.members(at + 20) if m.device.endswith("1001@agents")
    } == {
        "sales": "wrap_up",
        "support": "available",
    }


def test_a_reminder_after_each_full_period_without_a_break() -> None:
    watch = BreakWatch(after_seconds=120 * MIN, break_seconds=5 * MIN)
    watch.observe("anna", "available", 0.0)
    assert watch.due(119 * MIN) == []
    assert watch.due(120 * MIN) == [Reminder("anna", 120)]
    assert watch.due(121 * MIN) == []  # once
    watch.observe("anna", "paused", 130 * MIN)  # a coffee: 3 minutes is no break
    watch.observe("anna", "on_call", 133 * MIN)
    assert watch.due(239 * MIN) == []
    assert watch.due(240 * MIN) == [Reminder("anna", 240)]  # again, a full period later


def test_a_pause_or_an_absence_long_enough_is_a_break() -> None:
    watch = BreakWatch(after_seconds=120 * MIN, break_seconds=5 * MIN)
    watch.observe("anna", "available", 0.0)
    watch.observe("bart", "available", 0.0)
    watch.observe("anna", "paused", 100 * MIN)
    watch.observe("anna", "available", 110 * MIN)  # 10 minutes of lunch
    watch.observe("bart", "unavailable", 100 * MIN)  # phone off
    assert watch.due(120 * MIN) == []  # never while off duty
    assert watch.on_duty_seconds("bart", 120 * MIN) is None  # in a break by now
    watch.observe("bart", "ringing", 125 * MIN)
    assert watch.on_duty_seconds("anna", 120 * MIN) == 10 * MIN
    assert watch.due(230 * MIN) == [Reminder("anna", 120)]
    assert watch.due(245 * MIN) == [Reminder("bart", 120)]


def test_an_operator_nobody_knows_of_is_neither_on_nor_off_duty() -> None:
    watch = BreakWatch(after_seconds=120 * MIN, break_seconds=5 * MIN)
    watch.observe("anna", "available", 0.0)
    watch.observe("anna", None, 60 * MIN)  # the link is down: no break
    assert watch.due(120 * MIN) == [Reminder("anna", 120)]
    off = BreakWatch(after_seconds=0, break_seconds=5 * MIN)
    off.observe("anna", "available", 0.0)
    assert off.due(1000 * MIN) == []  # break_after_minutes = 0: no reminders


def test_the_node_reminds_the_operator_and_the_supervisors_once_a_minute() -> None:
    rig = PhonesRig({"Local/1001@agents": "anna", "Local/1002@agents": "bart"})
    pbx = rig.connect()
    start = rig.reactor.seconds()

    def work(minutes: float) -> None:
        """Time passes; the PBX answers the link's keep-alive pings."""
        for _ in range(int(minutes * 12)):
            rig.reactor.advance(5)
            for action in pbx.actions():
                if action["Action"] == "Ping":
                    pbx.send(
                        f"Response: Success\r\nActionID: {action.action_id}\r\nPing: Pong\r\n\r\n"
                    )

    work(119)
    assert rig.pushed(operator_topic(1), "break_reminder") == []

    def reminders(topic: str) -> list[tuple[str, int]]:
        rig.reactor.advance(0)
        found = rig.heard.get(topic, [])
        return [
            (m["operator"], m["on_duty_minutes"]) for m in found if m["type"] == "break_reminder"
        ]

    assert reminders(operator_topic(1)) == []
    work(2)
    (anna,) = reminders(operator_topic(1))
    assert anna[0] == "anna" and anna[1] >= 120
    assert {name for name, _ in reminders(SUPERVISORS_TOPIC)} == {"anna", "bart"}
    assert [name for name, _ in reminders(operator_topic(2))] == ["bart"]
    # Bart takes a 10-minute break; Anna works on and is reminded a period later.
    for paused in (True, False):
        for queue in ("support", "sales"):
            pbx.send(
                event(
                    {
                        "Event": "QueueMemberPause",
                        "Queue": queue,
                        "MemberName": "Bart",
                        "Interface": "Local/1002@agents/n",
                        "StateInterface": "Local/1002@agents",
                        "Membership": "static",
                        "Penalty": "0",
                        "CallsTaken": "0",
                        "LastCall": "0",
                        "LastPause": "0",
                        "InCall": "0",
                        "Status": "1",
                        "Paused": "1" if paused else "0",
                        "PausedReason": "break" if paused else "",
                        "Ringinuse": "0",
                        "Wrapuptime": "0",
                    }
                )
            )
        work(10)
    work(109)  # 250 minutes in: Bart on duty for 119 of them
    assert [n for n, _ in reminders(operator_topic(1))] == ["anna", "anna"]
    assert [n for n, _ in reminders(operator_topic(2))] == ["bart"]  # back 10 minutes ago
    assert rig.client.state == "connected"
    assert rig.workload.breaks.on_duty_seconds("bart", rig.reactor.seconds()) == pytest.approx(
        rig.reactor.seconds() - (start + 131 * MIN), abs=MIN
    )
