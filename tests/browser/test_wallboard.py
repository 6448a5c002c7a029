"""The wallboard (/wallboard) in a real browser: for supervisors only, live over the
WebSocket, and plain about it when it is not live (the figures dimmed, a banner in
words) instead of showing stale figures as live; it names the operators whose phones
cannot be rung. (On the real Asterisk: ``test_wallboard_asterisk.py``.)"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer

ALL_WELL = "Every operator's phone is registered."


def open_wallboard(page: Any, server: ConsoleServer, username: str) -> None:
    page.goto(server.url.rstrip("/") + "/wallboard")
    page.fill("#wb-username", username)
    page.fill("#wb-password", server.password)
    page.press("#wb-password", "Enter")


def test_the_wallboard_is_for_supervisors(server: ConsoleServer, screen: Any) -> None:
    page = screen()
    open_wallboard(page, server, "anna")
    expect(page.locator("#wb-login-message")).to_have_text(
        "The wallboard is for supervisors and admins."
    )
    expect(page.locator("#wb-view")).to_be_hidden()
    assert page.errors == []


def test_the_wallboard_says_plainly_when_it_is_not_live(server: ConsoleServer, screen: Any) -> None:
    page = screen()
    open_wallboard(page, server, "sofie")
    expect(page.locator("#wb-state")).to_have_text("● Live")
    expect(page.locator("#wb-banner")).to_be_hidden()
    expect(page.locator("#wb-view")).not_to_have_class("wb stale")
    server.command("drop_sockets")  # a network blip between the wall screen and cti-bridge
    expect(page.locator("#wb-state")).to_have_text("✖ NOT LIVE")
    expect(page.locator("#wb-banner")).to_contain_text("Connection to cti-bridge lost since")
    expect(page.locator("#wb-banner")).to_contain_text("the figures below are not live")
    expect(page.locator("#wb-view")).to_have_class("wb stale")
    # It reconnects by itself and says so.
    expect(page.locator("#wb-state")).to_have_text("● Live", timeout=15_000)
    expect(page.locator("#wb-banner")).to_be_hidden()
    assert page.errors == []


def test_the_wallboard_follows_a_caller_joining_and_leaving_a_queue(
    server: ConsoleServer, screen: Any
) -> None:
    page = screen()
    open_wallboard(page, server, "sofie")
    expect(page.locator("#wb-state")).to_have_text("● Live")
    expect(page.locator(".wb-queue")).to_have_count(2)  # the simulator's sales and support
    card = page.locator(".wb-queue[data-queue-key='sim/support']")  # a call's first queue
    expect(card.locator("h2")).to_have_text("support")
    expect(card.locator(".wb-waiting")).to_have_text("0")
    members = card.locator(".wb-members li")
    expect(members).to_have_count(6)
    expect(card.locator(".wb-sl")).to_be_visible()
    # A caller joins (nobody answers) and gives up after a few seconds.
    server.call("queue_abandoned", ("+3250999888", '<img src=x onerror="alert(1)">'), patience=4.0)
    expect(card.locator(".wb-waiting")).to_have_text("1", timeout=2_000)
    expect(card.locator(".wb-longest")).not_to_have_text("0:00", timeout=3_000)  # it ticks
    # The queue rings all its members (nobody answers): the board says so.
    expect(card.locator("li[data-state='ringing'] .count")).to_have_text("2")
    expect(card.locator("li[data-state='available'] .count")).to_have_text("0")
    expect(card.locator(".wb-waiting")).to_have_text("0", timeout=8_000)
    expect(card.locator(".wb-longest")).to_have_text("0:00")
    expect(card.locator("li[data-state='available'] .count")).to_have_text("2")
    assert page.locator("img").count() == 0  # the caller's name is never markup
    assert page.errors == []


def test_the_wallboard_names_the_operators_whose_phones_cannot_be_rung(
    server: ConsoleServer, screen: Any
) -> None:
    page = screen()
    open_wallboard(page, server, "sofie")
    expect(page.locator("#wb-state")).to_have_text("● Live")
    phones = page.locator("#wb-phones li")
    expect(page.locator("#wb-phones-bad")).to_have_text("0")
    expect(phones).to_have_text([ALL_WELL])
    expect(page.locator("#wb-phones-panel")).not_to_have_class(re.compile(r"\bbad\b"))

    # Qualify gives up on Bart's phone: the queues skip him from now on, and the wall says so.
    server.command("phone", device="PJSIP/1002", reachable=False)
    expect(phones).to_have_text(["Bart: phone unreachable (PJSIP/1002)"])
    expect(page.locator("#wb-phones li[data-operator='bart']")).to_have_attribute(
        "data-state", "unreachable"
    )
    expect(page.locator("#wb-phones li[data-operator='anna']")).to_have_count(0)  # registered
    expect(page.locator("#wb-phones-bad")).to_have_text("1")
    expect(page.locator("#wb-phones-panel")).to_have_class(re.compile(r"\bbad\b"))
    # The wall asked for the operators' changes in batches: Bart's came in one.
    batches = [json.loads(f) for f in page.frames_received]
    assert any(
        m["type"] == "agents_update" and "bart" in {a["operator"] for a in m["agents"]}
        for m in batches
    )
    assert not [
        m for m in batches if m["type"] == "agent_update" and m["agent"]["operator"] != "sofie"
    ]

    # A wall screen switched on now reads the same from GET /api/agents.
    fresh = screen()
    open_wallboard(fresh, server, "sofie")
    expect(fresh.locator("#wb-phones li")).to_have_text(["Bart: phone unreachable (PJSIP/1002)"])

    server.command("phone", device="PJSIP/1002", reachable=True)
    for wall in (page, fresh):
        expect(wall.locator("#wb-phones li")).to_have_text([ALL_WELL])
        expect(wall.locator("#wb-phones-bad")).to_have_text("0")
        assert wall.errors == []
