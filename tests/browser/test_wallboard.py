"""The wallboard (/wallboard) in a real browser: for supervisors only, live over the
WebSocket, and plain about it when it is not live (the figures dimmed, a banner in
words) instead of showing stale figures as live."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer


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
