"""The console's forms in a real browser: keyboard only, agreements, searches.

Same setup as test_console_live.py: a real daemon on the simulated PBX, Debian's
Chromium, and the public API to check what was stored.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer

JAN = ("+3250123456", "Jan Peeters")
MARIE = ("050765432", "Marie Dubois")


def log_in(page: Any, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")
    expect(page.locator("#link-state")).to_have_text("● Live")


def focused(page: Any) -> str:
    value: str = page.evaluate("document.activeElement ? document.activeElement.id : ''")
    return value


def call_id_of(page: Any) -> int:
    for frame in page.frames_received:
        message = json.loads(frame)
        if message.get("type") == "screen_pop":
            call_id: int = message["call_id"]
            return call_id
    raise AssertionError("no pop reached this screen")


def test_keyboard_only_notes_disposition_and_agreement(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    keys = anna.keyboard
    expect(anna.locator("#login-username")).to_be_focused()
    keys.type("anna")
    keys.press("Tab")
    keys.type(server.password)
    keys.press("Enter")
    expect(anna.locator("#link-state")).to_have_text("● Live")

    server.call("direct_answered", JAN, operator="PJSIP/1001", ring=2.0, talk=60.0)
    expect(anna.locator("#caller-name")).to_have_text("Jan Peeters")

    keys.press("Alt+N")
    assert focused(anna) == "notes"
    keys.type("Customer cannot reach the internet; escalated.")
    keys.press("Tab")
    assert focused(anna) == "category"
    keys.type("Connection / network")
    keys.press("Tab")
    assert focused(anna) == "disposition"
    keys.type("E")  # typeahead on the closed select: "Escalated to second line"
    expect(anna.locator("#disposition")).to_have_value("escalated")
    expect(anna.locator("#agreement-hint")).to_contain_text("Make an agreement (Alt+A)")
    keys.press("Alt+S")
    expect(anna.locator("#save-status")).to_contain_text("Saved")

    # Esc closes the agreement dialog and gives the focus back.
    keys.press("Alt+N")
    keys.press("Alt+A")
    expect(anna.locator("#agreement-dialog")).to_be_visible()
    assert focused(anna) == "agreement-kind"
    keys.press("Escape")
    expect(anna.locator("#agreement-dialog")).to_be_hidden()
    assert focused(anna) == "notes"

    # Alt+A, pick the kind by typing, Alt+S creates it (deadline: the default, tomorrow).
    keys.press("Alt+A")
    keys.type("T")  # "Technician visit"
    expect(anna.locator("#agreement-kind")).to_have_value("technician")
    keys.press("Alt+S")
    expect(anna.locator("#agreement-dialog")).to_be_hidden()
    expect(anna.locator("#made-agreements")).to_contain_text("Technician visit")
    expect(anna.locator("#agreement-hint")).to_have_text("")

    token = server.login("anna")
    status, record = server.api("GET", f"/api/calls/{call_id_of(anna)}", token=token)
    assert status == 200
    assert record["notes"] == "Customer cannot reach the internet; escalated."
    assert record["category"] == "Connection / network"
    assert record["disposition"] == "escalated"
    status, customer = server.api(
        "GET", f"/api/customers/{server.ready['customers']['covered']}", token=token
    )
    assert status == 200
    made = [a for a in customer["agreements"] if a["kind"] == "technician"]
    assert len(made) == 1
    assert made[0]["call_id"] == record["id"]
    assert made[0]["owner"] == "anna"
    assert made[0]["deadline"] is not None

    # The shortcuts are listed where the operator can find them.
    keys.press("Alt+/")
    expect(anna.locator("#help-dialog")).to_be_visible()
    expect(anna.locator("#help-rows")).to_contain_text("Alt+N")
    expect(anna.locator("#help-rows")).to_contain_text("Alt+S")
    keys.press("Escape")
    expect(anna.locator("#help-dialog")).to_be_hidden()
    assert anna.errors == []


def test_a_callback_agreement_with_a_window_from_the_dialog(
    server: ConsoleServer, screen: Any
) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    server.call("direct_answered", MARIE, operator="PJSIP/1001", ring=2.0, talk=60.0)
    expect(anna.locator("#caller-name")).to_have_text("Marie Dubois")
    anna.click("#make-agreement")
    expect(anna.locator("#agreement-number")).to_have_value("+3250765432")
    anna.fill("#agreement-deadline", "2031-03-04T17:00")
    anna.fill("#agreement-window-start", "2031-03-04T10:00")
    anna.fill("#agreement-window-end", "2031-03-04T09:00")  # ends before it starts
    anna.fill("#agreement-notes", "Call back <b>after</b> the repair")
    anna.click("#agreement-save")
    expect(anna.locator("#agreement-message")).to_contain_text("must end after it starts")
    anna.fill("#agreement-window-end", "2031-03-04T12:00")
    anna.click("#agreement-save")
    expect(anna.locator("#agreement-dialog")).to_be_hidden()
    expect(anna.locator("#made-agreements")).to_contain_text("Call back")
    # The card lists it too, its notes as text.
    expect(anna.locator(".agreement-list")).to_contain_text("Call back <b>after</b> the repair")

    status, customer = server.api(
        "GET", f"/api/customers/{server.ready['customers']['expired']}", token=server.login("anna")
    )
    assert status == 200
    [made] = [a for a in customer["agreements"] if a["kind"] == "callback"]
    assert made["callback_number"] == "+3250765432"
    assert made["notes"] == "Call back <b>after</b> the repair"
    # The operator typed local times; the store has them in UTC.
    assert made["window_start"] == anna.evaluate("new Date('2031-03-04T10:00').toISOString()")
    assert made["window_end"] == anna.evaluate("new Date('2031-03-04T12:00').toISOString()")
    assert made["deadline"] == anna.evaluate("new Date('2031-03-04T17:00').toISOString()")


def test_customer_search_opens_the_customer_card(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    anna.keyboard.press("Alt+K")
    expect(anna.locator("#customer-q")).to_be_focused()
    anna.keyboard.type("peeters")
    anna.keyboard.press("Enter")
    expect(anna.locator("#customer-message")).to_have_text("1 customer found.")
    first = anna.locator("#customer-results button").first
    expect(first).to_be_focused()
    expect(first).to_contain_text("Jan Peeters")
    anna.keyboard.press("Enter")
    detail = anna.locator("#customer-detail")
    expect(detail.locator(".customer-name")).to_have_text("Jan Peeters")
    expect(detail.locator(".coverage-words")).to_have_text("UNDER CONTRACT")
    expect(detail.locator(".agreement.overdue")).to_contain_text("OVERDUE")

    # By number, as dialled in the national format; and a number fragment.
    anna.fill("#customer-q", "050 76 54 32")
    anna.press("#customer-q", "Enter")
    expect(anna.locator("#customer-results")).to_contain_text("Marie Dubois")
    anna.fill("#customer-q", "765432")
    anna.press("#customer-q", "Enter")
    expect(anna.locator("#customer-results")).to_contain_text("Marie Dubois")
    anna.fill("#customer-q", "nobody-by-that-name")
    anna.press("#customer-q", "Enter")
    expect(anna.locator("#customer-message")).to_have_text("No customer found.")

    # An agreement made from the customer view appears on the card (read back).
    anna.fill("#customer-q", "Marie")
    anna.press("#customer-q", "Enter")
    anna.locator("#customer-results button").first.click()
    expect(anna.locator("#customer-detail .coverage-words")).to_have_text("OUT OF CONTRACT")
    anna.locator("#customer-detail button", has_text="Make an agreement").click()
    anna.select_option("#agreement-kind", "documentation")
    anna.fill("#agreement-notes", "Send the renewal offer")
    anna.click("#agreement-save")
    expect(anna.locator("#customer-detail .agreement-list")).to_contain_text("Send documentation")
    expect(anna.locator("#customer-detail .agreement-list")).to_contain_text(
        "Send the renewal offer"
    )


def test_call_history_search_and_notes_after_the_call(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    server.call("direct_answered", MARIE, operator="PJSIP/1001", ring=1.0, talk=1.0)
    token = server.login("anna")

    def ended() -> Any:
        status, body = server.api("GET", "/api/calls?number=050765432", token=token)
        return status == 200 and [c for c in body["calls"] if c["ended_at"]]

    [call] = server.eventually(ended, 20, "the call from Marie to end")
    anna.keyboard.press("Alt+H")
    expect(anna.locator("#history-number")).to_be_focused()
    anna.keyboard.type("050 76 54 32")
    anna.keyboard.press("Enter")
    rows = anna.locator("#history-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Marie Dubois")
    expect(rows.first).to_contain_text("Answered")
    expect(rows.first).to_contain_text("anna")
    rows.first.locator("button").click()
    expect(anna.locator("#history-caller")).to_have_text("Marie Dubois")
    anna.keyboard.press("Alt+N")
    assert focused(anna) == "history-notes"
    anna.keyboard.type("Called back later; contract expired.")
    anna.select_option("#history-disposition", "out_of_contract")
    anna.keyboard.press("Alt+S")
    expect(anna.locator("#history-save-status")).to_contain_text("Saved")
    status, record = server.api("GET", f"/api/calls/{call['id']}", token=token)
    assert status == 200
    assert record["notes"] == "Called back later; contract expired."
    assert record["disposition"] == "out_of_contract"
    # A new search shows the notes in the table.
    anna.click("#history-search button[type=submit]")
    expect(rows.first).to_contain_text("Called back later; contract expired.")
    expect(rows.first).to_contain_text("Out of contract")
