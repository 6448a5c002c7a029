"""The operator console in a real browser: pops, isolation, notes, hostile caller IDs.

A real daemon follows the simulated PBX (console_server.py); Debian's Chromium shows the
console to anna (PJSIP/1001) and bart (PJSIP/1002). Everything the tests check goes
through the page as an operator would use it, or through the public HTTP API.
"""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer

JAN = ("+3250123456", "Jan Peeters")  # a customer with a valid contract (seeded)
MARIE = ("050765432", "Marie Dubois")  # a customer whose contract has expired


def log_in(page: Any, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")
    expect(page.locator("#link-state")).to_have_text("● Live")


def pushed(page: Any, kind: str) -> list[dict[str, Any]]:
    messages = [json.loads(frame) for frame in page.frames_received if isinstance(frame, str)]
    return [m for m in messages if m.get("type") == kind]


def test_a_pop_reaches_the_ringing_operator_only_and_the_notes_are_stored(
    server: ConsoleServer, screen: Any
) -> None:
    anna, bart = screen(), screen()
    log_in(anna, "anna", server.password)
    log_in(bart, "bart", server.password)

    linkedid = server.call(
        "direct_answered", JAN, operator="PJSIP/1001", ring=3.0, talk=60.0, ended_by="operator"
    )
    ring = server.ring("PJSIP/1001", linkedid)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters", timeout=5000)
    shown_after = time.time() - ring["at"]
    assert shown_after < 1.0, f"the pop took {shown_after:.3f} s after the ring"

    # The card, readable at a glance: coverage in words (not colour alone), the rest.
    expect(anna.locator("#call-state")).to_have_text("Ringing")
    expect(anna.locator(".coverage-words")).to_have_text("UNDER CONTRACT")
    expect(anna.locator(".facts")).to_contain_text("Peeters Installaties")
    expect(anna.locator(".facts")).to_contain_text("expert")
    expect(anna.locator(".facts")).to_contain_text("premium")
    expect(anna.locator(".contract-valid")).to_contain_text("C-2026-0001")
    expect(anna.locator(".upsell")).to_contain_text("C-2026-0001 ends in 20 days")
    overdue = anna.locator(".agreement.overdue")
    expect(overdue).to_contain_text("OVERDUE")
    # Imported text is shown as text: the seeded notes and script carry markup.
    expect(overdue.locator(".notes-text")).to_have_text(
        "Call back about the <i>firmware</i> update"
    )
    assert overdue.locator("i").count() == 0
    anna.locator(".script summary").click()
    expect(anna.locator(".script-body")).to_have_text("1. Is the WAN light on?\n2. <b>reboot</b>")
    assert anna.locator(".script-body b").count() == 0

    expect(anna.locator("#call-state")).to_have_text("Talking", timeout=10_000)
    expect(anna.locator(".call-head")).to_contain_text("answered by anna")

    # bart's phone never rang: his screen shows nothing, and nothing reached his socket.
    expect(bart.locator("#calls-empty")).to_be_visible()
    assert bart.locator("#call-list li").count() == 0
    expect(bart.locator("#pop")).to_have_text("Waiting for a call.")
    assert [m["type"] for m in pushed(bart, "hello")] == ["hello"]
    leaked = [f for f in bart.frames_received if "Jan Peeters" in f or linkedid in f]
    assert leaked == [], leaked
    assert pushed(bart, "screen_pop") == pushed(bart, "call_update") == []

    # anna writes notes, a category and a disposition, and saves them to the record.
    anna.fill("#notes", "Router rebooted; WAN light back on.\n<b>not markup</b>")
    anna.fill("#category", "Connection / network")
    anna.select_option("#disposition", "solved")
    anna.click("#save-call")
    expect(anna.locator("#save-status")).to_contain_text("Saved")
    call_id = pushed(anna, "screen_pop")[0]["call_id"]
    status, record = server.api("GET", f"/api/calls/{call_id}", token=server.login("anna"))
    assert status == 200
    assert record["linkedid"] == linkedid
    assert record["notes"] == "Router rebooted; WAN light back on.\n<b>not markup</b>"
    assert record["category"] == "Connection / network"
    assert record["disposition"] == "solved"
    assert record["annotated_by"] == "anna"
    assert anna.errors == [] and bart.errors == []


def test_an_expired_contract_reads_out_of_contract(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    anna.keyboard.press("Alt+K")  # busy searching customers when the phone rings
    expect(anna.locator("#live-panel")).to_be_hidden()
    server.call("direct_answered", MARIE, operator="PJSIP/1001", ring=3.0, talk=5.0)
    expect(anna.locator("#live-panel")).to_be_visible()  # the ringing phone comes first
    expect(anna.locator("#ringing-count")).to_have_text(" ☎ 1 ringing")
    expect(anna.locator("#caller-name")).to_have_text("Marie Dubois")
    expect(anna.locator(".coverage-words")).to_have_text("OUT OF CONTRACT")
    expect(anna.locator(".coverage")).to_have_attribute("data-coverage", "out")
    expect(anna.locator(".contract-invalid")).to_contain_text("OUT OF CONTRACT")
    expect(anna.locator(".upsell")).to_have_count(0)


def test_a_hostile_caller_name_shows_literally(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    hostile = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    server.call("direct_answered", ("+3250999888", hostile), operator="PJSIP/1001", ring=3.0)
    expect(anna.locator("#caller-name")).to_have_text(hostile)
    expect(anna.locator(".call-name")).to_have_text(hostile)
    expect(anna.locator(".coverage-words")).to_have_text("UNKNOWN CALLER")
    expect(anna.locator("#caller-number")).to_have_text("+3250999888")
    assert anna.evaluate("typeof window.__pwned") == "undefined"
    assert anna.locator("#pop img, #pop script, #call-list img, #call-list script").count() == 0
    assert hostile in anna.title()  # the tab title is text too
    assert anna.errors == []


def test_a_pop_answered_by_a_colleague_is_greyed_with_the_reason(
    server: ConsoleServer, screen: Any
) -> None:
    anna, bart = screen(), screen()
    log_in(anna, "anna", server.password)
    log_in(bart, "bart", server.password)
    # The support queue rings everybody; bart picks up after 3 s, anna never does.
    server.call("queue_answered", JAN, queue="support", operator="PJSIP/1002", ring=3.0, talk=30)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters")
    expect(bart.locator("#caller-name")).to_have_text("Jan Peeters")
    expect(anna.locator("#call-state")).to_have_text("Ringing")
    expect(anna.locator("#withdrawn-reason")).to_contain_text("Answered by a colleague (bart)")
    expect(anna.locator("#call-state")).to_have_text("Withdrawn")
    expect(anna.locator(".call-item.withdrawn")).to_have_count(1)
    expect(bart.locator("#call-state")).to_have_text("Talking")
    expect(bart.locator("#withdrawn-reason")).to_have_count(0)
    # Alt+D dismisses the withdrawn pop from anna's screen.
    anna.keyboard.press("Alt+D")
    expect(anna.locator("#call-list li")).to_have_count(0)
    expect(anna.locator("#pop")).to_have_text("Waiting for a call.")


def test_the_live_link_comes_back_by_itself(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    assert server.command("drop_sockets")["closed"] == 1
    banner = anna.locator("#connection")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Connection lost")
    expect(anna.locator("#link-state")).to_have_text("✘ Offline")
    expect(banner).to_be_hidden(timeout=10_000)
    expect(anna.locator("#link-state")).to_have_text("● Live")
    # The new socket carries pops.
    server.call("direct_answered", JAN, operator="PJSIP/1001", ring=3.0)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters")


def test_an_expired_token_sends_the_operator_back_to_the_login(
    server: ConsoleServer, screen: Any
) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    token = anna.evaluate("sessionStorage.getItem('cti-bridge.token')")
    assert token
    status, _ = server.api("POST", "/api/logout", token=token)  # the token dies server-side
    assert status == 200
    server.command("drop_sockets")  # the console retries, finds the token dead
    expect(anna.locator("#login-view")).to_be_visible(timeout=10_000)
    expect(anna.locator("#login-message")).to_contain_text("session has ended")
    expect(anna.locator("#console-view")).to_be_hidden()
    assert anna.evaluate("sessionStorage.getItem('cti-bridge.token')") is None
    log_in(anna, "anna", server.password)  # and logging in again works


def test_a_pop_that_rings_before_the_screen_connects_shows_at_connect(
    server: ConsoleServer, screen: Any
) -> None:
    linkedid = server.call("direct_answered", JAN, operator="PJSIP/1001", ring=20.0)
    server.ring("PJSIP/1001", linkedid)
    anna = screen()
    log_in(anna, "anna", server.password)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters")
    expect(anna.locator("#call-state")).to_have_text("Ringing")


def test_a_withheld_caller_pops_as_withheld(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    server.call("withheld", ("anonymous", "Anonymous"), operator="PJSIP/1001")
    expect(anna.locator("#caller-number")).to_have_text("withheld number", timeout=15_000)
    expect(anna.locator(".coverage-words")).to_have_text("UNKNOWN CALLER")


def test_a_supervisor_watching_an_operator_sees_their_pops(
    server: ConsoleServer, screen: Any
) -> None:
    sofie, anna = screen(), screen()
    log_in(sofie, "sofie", server.password)
    log_in(anna, "anna", server.password)
    expect(sofie.locator("#watch-form")).to_be_visible()
    expect(anna.locator("#watch-form")).to_be_hidden()  # operators watch nobody
    sofie.fill("#watch-username", "anna")
    sofie.press("#watch-username", "Enter")
    expect(sofie.locator("#watching")).to_have_text("Watching anna.")
    server.call("direct_answered", JAN, operator="PJSIP/1001", ring=3.0, talk=30.0)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters")
    expect(sofie.locator("#caller-name")).to_have_text("Jan Peeters")
    expect(sofie.locator(".call-state")).to_contain_text("for anna")
    expect(anna.locator(".call-state")).not_to_contain_text("for anna")
