"""The wallboard in headless Chromium on the real Asterisk 22: it follows a caller joining
and leaving the support queue within a second of the PBX's own events, and its figures
are what Asterisk's ``queue show support`` says.

The second is measured from the event, not from a sleep or the Originate: the test's own
AMI connection (``QueueEvents``) notes when it read ``QueueCallerJoin`` (and the first of
``QueueCallerAbandon``/``QueueCallerLeave``), a ``MutationObserver`` in the page notes when
the card's waiting count changed (``Date.now()``: the same wall clock on one machine), and
the difference must stay under a second. What runs in between is the whole product path:
the daemon's AMI link, the waiting callers, the coalesced ``queue_update``, the bus, the
WebSocket, the page's rendering.

Its Phones panel names the operators whose phones cannot be rung, as the PBX has them:
chris is bound to lab endpoint ``PJSIP/1003`` (no static contact), "not registered"
until a real SIP REGISTER (SIPp) gives it a contact, and again after ``Expires: 0``;
anna and bart (Local devices whose state is fine) never show there.

The operators are made slow in two ways: both members paused in support over AMI
(``QueuePause``: the caller waits as long as the test wants), then, for an answered call,
anna's simulated phone (``set_operator``) answers after a second once she is unpaused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from cti_bridge.testing.asterisk import AsteriskInstance
from cti_bridge.testing.sipp import sip_register
from tests.browser.asterisk_daemon import MEMBERS, AsteriskDaemon, QueueEvents
from tests.support.asterisk_queues import (
    QueueShow,
    caller_channel,
    customer_phone,
    queue_show,
    queue_status,
)

CARD = "main/support"
STATES = ("available", "ringing", "on_call", "wrap_up", "paused", "unavailable")
#: The bound on the page's delay behind the PBX's event.
WITHIN = 1.0
JOINED = frozenset({"QueueCallerJoin"})
LEFT = frozenset({"QueueCallerAbandon", "QueueCallerLeave"})

READ_CARD = """(key) => {
  const card = document.querySelector(`[data-queue-key="${CSS.escape(key)}"]`);
  if (!card) return null;
  const members = {};
  for (const li of card.querySelectorAll(".wb-members li")) {
    members[li.dataset.state] = Number(li.querySelector(".count").textContent);
  }
  return {
    waiting: Number(card.querySelector(".wb-waiting").textContent),
    longest: card.querySelector(".wb-longest").textContent,
    members,
  };
}"""

WATCH_WAITING = """(key) => {
  const read = () => {
    const node = document.querySelector(`[data-queue-key="${CSS.escape(key)}"] .wb-waiting`);
    return node ? node.textContent : null;
  };
  window.__waitingChanges = [];
  let last = read();
  new MutationObserver(() => {
    const now = read();
    if (now !== last) {
      last = now;
      window.__waitingChanges.push({ value: now, at: Date.now() });
    }
  }).observe(document.getElementById("wb-queues"), {
    childList: true, subtree: true, characterData: true,
  });
  return last;
}"""


def open_wallboard(chromium: Any, daemon: AsteriskDaemon) -> Any:
    page = chromium(daemon.url.rstrip("/") + "/wallboard")
    page.fill("#wb-username", "sofie")
    page.fill("#wb-password", daemon.password)
    page.press("#wb-password", "Enter")
    expect(page.locator("#wb-state")).to_have_text("● Live")
    expect(page.locator(f".wb-queue[data-queue-key='{CARD}']")).to_be_visible()
    return page


def seconds(shown: str) -> int:
    minutes, secs = re.fullmatch(r"(\d+):(\d\d)", shown).groups()  # type: ignore[union-attr]
    return int(minutes) * 60 + int(secs)


def expected(shown: QueueShow) -> dict[str, Any]:
    return {
        "waiting": shown.calls,
        "members": {state: shown.count(state) for state in STATES},
    }


def agrees(
    page: Any,
    pbx: AsteriskInstance,
    what: str,
    timeout: float = 10.0,
    until: Callable[[QueueShow], bool] | None = None,
) -> QueueShow:
    """Eventually the support card says what ``queue show support`` says (and the PBX is
    in the phase ``until`` accepts): the calls waiting, the members per state, and the
    longest wait (within 2 s: the page ticks from the push, the CLI counts from the
    join)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = queue_show(pbx, "support")
        card = page.evaluate(READ_CARD, CARD)
        ours = None if card is None else {k: card[k] for k in ("waiting", "members")}
        longest = max((wait for _, _, wait in shown.callers), default=0)
        same = ours == expected(shown) and abs(seconds(card["longest"]) - longest) <= 2
        if same and (until is None or until(shown)):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: queue show {expected(shown)} (longest {longest} s)\n"
                f" != the wallboard {card}"
            )
        time.sleep(0.2)


def changed_at(page: Any, value: str, timeout: float = 10_000) -> float:
    """When (epoch s) the card's waiting count first became ``value``."""
    page.wait_for_function(
        "v => window.__waitingChanges.some(c => c.value === v)", arg=value, timeout=timeout
    )
    at: float = page.evaluate("v => window.__waitingChanges.find(c => c.value === v).at", value)
    return at / 1000


def pause_both(pbx: AsteriskInstance) -> None:
    with pbx.ami(events="off") as ami:
        for interface in MEMBERS.values():
            answer = ami.action(
                "QueuePause",
                {"Queue": "support", "Interface": interface, "Paused": "true", "Reason": "lunch"},
            )
            assert answer["Response"] == "Success", answer


def unpause(pbx: AsteriskInstance, interface: str) -> None:
    with pbx.ami(events="off") as ami:
        answer = ami.action(
            "QueuePause", {"Queue": "support", "Interface": interface, "Paused": "false"}
        )
        assert answer["Response"] == "Success", answer


def test_the_wallboard_follows_a_caller_joining_and_hanging_up_within_a_second(
    asterisk: AsteriskInstance, pbx_daemon: AsteriskDaemon, queue_events: QueueEvents, chromium: Any
) -> None:
    pause_both(asterisk)
    page = open_wallboard(chromium, pbx_daemon)
    shown = agrees(page, asterisk, "both members paused, nobody waiting")
    assert shown.members == dict.fromkeys(MEMBERS.values(), ("paused", "lunch"))
    assert page.evaluate(WATCH_WAITING, CARD) == "0"

    number, hostile = "0470000011", '<img src=x onerror="alert(1)">'
    asterisk.place_call("3200", number, hostile, hold=120)
    joined = queue_events.wait(JOINED, number)
    shown_at = changed_at(page, "1")
    shown = agrees(page, asterisk, "a caller waiting")
    assert [position for position, _, _ in shown.callers] == [1]

    channel = caller_channel(queue_status(asterisk), number)
    asterisk.cli(f"channel request hangup {customer_phone(channel)}")
    left = queue_events.wait(LEFT, number)
    gone_at = changed_at(page, "0")
    agrees(page, asterisk, "the caller hung up")

    print(f"wallboard behind the PBX: join {shown_at - joined:.3f} s, leave {gone_at - left:.3f} s")
    assert shown_at - joined < WITHIN, f"the join showed {shown_at - joined:.3f} s after the event"
    assert gone_at - left < WITHIN, f"the leave showed {gone_at - left:.3f} s after the event"
    assert page.locator("img").count() == 0  # the caller's name is never markup
    assert page.errors == []


def test_the_wallboard_follows_a_caller_answered_and_the_member_on_the_call(
    asterisk: AsteriskInstance, pbx_daemon: AsteriskDaemon, queue_events: QueueEvents, chromium: Any
) -> None:
    pause_both(asterisk)
    page = open_wallboard(chromium, pbx_daemon)
    agrees(page, asterisk, "both members paused, nobody waiting")
    assert page.evaluate(WATCH_WAITING, CARD) == "0"

    number = "0470000012"
    asterisk.place_call("3200", number, "Jan Peeters", hold=120)
    joined = queue_events.wait(JOINED, number)
    shown_at = changed_at(page, "1")
    agrees(page, asterisk, "a caller waiting")

    asterisk.set_operator("1001", ring=1, talk=6)  # anna's phone answers after a second
    unpause(asterisk, MEMBERS["1001"])
    left = queue_events.wait(LEFT, number)
    gone_at = changed_at(page, "0")
    anna = MEMBERS["1001"]
    shown = agrees(
        page, asterisk, "anna on the call", 15, until=lambda s: s.members[anna][0] == "on_call"
    )
    assert shown.members == {anna: ("on_call", None), MEMBERS["1002"]: ("paused", "lunch")}
    shown = agrees(  # her 6 s of talk run out
        page, asterisk, "the call ended", 30, until=lambda s: s.members[anna][0] == "available"
    )
    assert shown.calls == 0

    print(
        f"wallboard behind the PBX: join {shown_at - joined:.3f} s, answer {gone_at - left:.3f} s"
    )
    assert shown_at - joined < WITHIN, f"the join showed {shown_at - joined:.3f} s after the event"
    assert gone_at - left < WITHIN, f"the answer showed {gone_at - left:.3f} s after the event"
    assert page.errors == []


def contacts_of(pbx: AsteriskInstance, endpoint: str) -> list[str]:
    """Asterisk's own list of the endpoint's contacts (``pjsip show contacts``)."""
    lines = pbx.cli(f"pjsip show contacts like {endpoint}").splitlines()
    return [line.split()[1] for line in lines if f" {endpoint}/sip:" in line]


def test_the_wallboard_names_the_phone_that_is_not_registered_on_asterisk(
    asterisk: AsteriskInstance, pbx_daemon: AsteriskDaemon, chromium: Any
) -> None:
    page = open_wallboard(chromium, pbx_daemon)
    phones = page.locator("#wb-phones li")
    assert contacts_of(asterisk, "1003") == []
    expect(phones).to_have_text(["Chris: phone not registered (PJSIP/1003)"])
    expect(page.locator("#wb-phones li[data-operator='chris']")).to_have_attribute(
        "data-state", "unregistered"
    )
    expect(page.locator("#wb-phones-bad")).to_have_text("1")

    port = sip_register(asterisk, "1003", 300)
    try:
        assert len(contacts_of(asterisk, "1003")) == 1
        expect(phones).to_have_text(["Every operator's phone is registered."])
        expect(page.locator("#wb-phones-bad")).to_have_text("0")
    finally:
        sip_register(asterisk, "1003", 0, port)
    assert contacts_of(asterisk, "1003") == []
    expect(phones).to_have_text(["Chris: phone not registered (PJSIP/1003)"])
    assert page.errors == []
