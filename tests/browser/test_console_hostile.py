"""The hostile caller IDs of the fault suite (``tests/faults/test_hostile_caller_id.py``)
on the operator console in Chromium: each pop's name is the text node, the call list's
entry too, and nothing in the page was made from them (no element, no dialog)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer
from tests.browser.test_console_live import log_in
from tests.faults.test_hostile_caller_id import HOSTILE


def test_the_console_shows_every_hostile_name_as_text(
    server: ConsoleServer, screen: Callable[..., Any]
) -> None:
    """The same names on the operator console in Chromium: each pop's name is the text
    node, the call list's entry too, and nothing in the page was made from them."""
    anna = screen()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    anna.on("dialog", on_dialog)
    log_in(anna, "anna", server.password)
    sofie = screen()  # the supervisor's Team view: anna's current call, from /api/agents
    sofie.on("dialog", on_dialog)
    log_in(sofie, "sofie", server.password)
    sofie.locator("#team-tab").click()
    team_caller = sofie.locator("#team-rows tr[data-operator='anna'] .agent-caller")
    shown = [h for h in HOSTILE if not h.withheld]
    for hostile in shown:
        linkedid = server.call(
            "direct_answered",
            (hostile.number, hostile.name),
            operator="PJSIP/1001",
            ring=2.0,
            talk=2.0,  # long enough to read the Team view while she talks
        )
        server.ring("PJSIP/1001", linkedid)
        shows(anna.locator("#caller-name"), hostile.stored_name, hostile.label)
        number = "+32" + hostile.number[1:]
        shows(team_caller, f"{hostile.stored_name} ({number})", hostile.label)
        expect(anna.locator("#call-state")).to_have_text("Ended", timeout=10_000)
    names = anna.locator("#call-list .call-name").evaluate_all("es => es.map(e => e.textContent)")
    assert set(names) >= {h.stored_name for h in shown}
    assert anna.locator("#pop img, #pop script, #call-list img, #call-list script").count() == 0
    assert anna.locator("img").count() == sofie.locator("img").count() == 0
    assert sofie.errors == []
    assert dialogs == []  # no alert(1) ran
    assert anna.errors == []


def shows(locator: Any, text: str, what: str, timeout: float = 10.0) -> None:
    """Wait until the element's text node is exactly ``text`` (no whitespace folding,
    control characters included)."""
    deadline = time.monotonic() + timeout
    while (seen := locator.evaluate("e => e.textContent")) != text:
        assert time.monotonic() < deadline, (what, seen[:200])
        time.sleep(0.05)
