"""The supervisor's Team view in headless Chromium on the real Asterisk 22: a pause with a
reason given on the screen reaches the PBX (``queue show`` says the member is paused, with
that reason, in every queue the operator is a member of), the row follows what the PBX
then reports, and the unpause reaches the PBX too.

What runs in between is the whole product path: the page's ``POST /api/agents/anna/pause``,
the daemon's ``QueuePause`` per membership over its AMI link, Asterisk's
``QueueMemberPause`` back through the live view and the ``agent_update`` push.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from cti_bridge.testing.asterisk import AsteriskInstance
from tests.browser.asterisk_daemon import MEMBERS, AsteriskDaemon
from tests.browser.test_console_live import log_in
from tests.browser.test_console_team import row
from tests.support.asterisk_queues import QueueShow, queue_show

ANNA = MEMBERS["1001"]
BART = MEMBERS["1002"]


def pbx_says(pbx: AsteriskInstance, want: dict[str, tuple[str, str | None]]) -> None:
    """Eventually ``queue show`` of both lab queues has these members in these states."""
    deadline = time.monotonic() + 10
    while True:
        shown: dict[str, QueueShow] = {q: queue_show(pbx, q) for q in ("support", "sales")}
        if all({i: s.members.get(i) for i in want} == want for s in shown.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queue show: {[s.members for s in shown.values()]} != {want}")
        time.sleep(0.2)


def test_a_pause_from_the_team_view_reaches_the_pbx_and_so_does_the_unpause(
    asterisk: AsteriskInstance, pbx_daemon: AsteriskDaemon, chromium: Any
) -> None:
    pbx_says(asterisk, {ANNA: ("available", None), BART: ("available", None)})
    sofie = chromium(pbx_daemon.url)
    log_in(sofie, "sofie", pbx_daemon.password)
    sofie.keyboard.press("Alt+t")
    expect(sofie.locator("#team-panel")).to_be_visible()
    anna, bart = row(sofie, "anna"), row(sofie, "bart")
    expect(anna.locator(".agent-state")).to_have_text("Available")

    anna.locator("select").select_option("back office")
    anna.locator(".team-pause").click()
    pbx_says(asterisk, {ANNA: ("paused", "back office"), BART: ("available", None)})
    expect(anna.locator(".agent-state")).to_have_text("Paused")
    expect(anna.locator(".agent-reason")).to_have_text(" (back office)")
    expect(bart.locator(".agent-state")).to_have_text("Available")

    anna.locator(".team-unpause").click()
    pbx_says(asterisk, {ANNA: ("available", None), BART: ("available", None)})
    expect(anna.locator(".agent-state")).to_have_text("Available")
    expect(anna.locator(".agent-reason")).to_have_count(0)
    assert sofie.errors == []
