"""The promise book in a real browser: the agreements list and its filters, one agreement
opened, changed and closed (a callback asks for a disposition), contacts logged beside the
calls, and a callback pop that shows its agreement and closes it: placed by the test's
``originate`` command, and (mark ``dialer``) by the daemon's own callback dialer.

Same setup as test_console_live.py: a real daemon on the simulated PBX (console_server.py),
Debian's Chromium, and the public API to make what the screens show and to check what was
stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer

JAN = ("+3250123456", "Jan Peeters")  # the seeded customer with a valid contract


def log_in(page: Any, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")
    expect(page.locator("#link-state")).to_have_text("● Live")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later_today() -> datetime:
    """A moment still to come in the site's local day (the console server's, this
    machine's): halfway between now and midnight."""
    now = datetime.now().astimezone()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return now + (midnight - now) / 2


def shown(moment: datetime) -> str:
    """A time as the console writes it: local, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def make(server: ConsoleServer, token: str, **body: Any) -> dict[str, Any]:
    status, made = server.api("POST", "/api/agreements", token=token, body=body)
    assert status == 201, made
    agreement: dict[str, Any] = made
    return agreement


def make_callback(server: ConsoleServer, token: str, notes: str) -> dict[str, Any]:
    """A callback for Jan (the covered customer), due now, deadline in two hours."""
    return make(
        server,
        token,
        kind="callback",
        customer_id=server.ready["customers"]["covered"],
        callback_number=JAN[0],
        deadline=iso(datetime.now(UTC) + timedelta(hours=2)),
        notes=notes,
    )


def the_pop(page: Any) -> dict[str, Any]:
    """The one screen_pop the page got (once it shows Jan)."""
    expect(page.locator("#caller-name")).to_have_text(JAN[1])
    pops = [json.loads(f) for f in page.frames_received if isinstance(f, str)]
    [pop] = [m for m in pops if m.get("type") == "screen_pop"]
    found: dict[str, Any] = pop
    return found


def rows(page: Any) -> Any:
    return page.locator("#agreements-rows tr")


def listed_ids(page: Any) -> list[int]:
    ids: list[int] = [
        int(i) for i in rows(page).evaluate_all("rs => rs.map(r => r.dataset.agreementId)")
    ]
    return ids


def pick(page: Any, name: str) -> None:
    page.click(f"#filter-{name}")
    expect(page.locator(f"#filter-{name}")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#agreements-message")).not_to_have_text("Loading…")


def test_the_agreement_list_and_its_filters(server: ConsoleServer, screen: Any) -> None:
    anna, bart = server.login("anna"), server.login("bart")
    jan = server.ready["customers"]["covered"]
    now = datetime.now(UTC)
    today = make(
        server,
        anna,
        kind="callback",
        customer_id=jan,
        callback_number=JAN[0],
        deadline=iso(later_today()),
        notes="call about the router",
    )
    overdue = make(
        server, anna, kind="documentation", customer_id=jan, deadline=iso(now - timedelta(days=2))
    )
    later = make(server, anna, kind="repair", deadline=iso(now + timedelta(days=5)))
    barts = make(server, bart, kind="technician", customer_id=jan, deadline=iso(later_today()))

    page = screen()
    log_in(page, "anna", server.password)
    page.keyboard.press("Alt+G")
    expect(page.locator("#agreements-panel")).to_be_visible()
    expect(page.locator("#filter-mine")).to_have_attribute("aria-pressed", "true")
    # Supervisors' filters are not an operator's.
    expect(page.locator("#filter-flagged")).to_be_hidden()
    expect(page.locator("#filter-all")).to_be_hidden()
    expect(rows(page)).to_have_count(3)
    assert listed_ids(page) == [overdue["id"], today["id"], later["id"]]  # soonest deadline first

    row = page.locator(f"#agreements-rows tr[data-agreement-id='{overdue['id']}']")
    expect(row.locator("td").nth(0)).to_contain_text("Send documentation")
    expect(row.locator("td").nth(1)).to_have_text(JAN[1])
    expect(row.locator(".deadline-cell")).to_contain_text("OVERDUE")
    expect(row.locator(".status-cell")).to_have_text("Open")
    expect(row.locator(".owner-cell")).to_have_text("anna")
    expect(row.locator(".attempts-cell")).to_have_text("0")
    expect(row.locator(".flagged-cell")).to_have_text("")
    not_overdue = page.locator(f"#agreements-rows tr[data-agreement-id='{today['id']}']")
    expect(not_overdue.locator(".deadline-cell")).not_to_contain_text("OVERDUE")
    expect(
        page.locator(f"#agreements-rows tr[data-agreement-id='{later['id']}'] td").nth(1)
    ).to_have_text("No customer")

    pick(page, "today")
    expect(rows(page)).to_have_count(1)
    assert listed_ids(page) == [today["id"]]  # bart's, due today too, is not hers
    expect(page.locator("#agreements-status")).to_be_disabled()
    pick(page, "overdue")
    assert listed_ids(page) == [overdue["id"]]

    # Done ones leave "still to do"; the status filter finds them.
    status, _ = server.api(
        "PATCH", f"/api/agreements/{later['id']}", token=anna, body={"status": "cancelled"}
    )
    assert status == 200
    pick(page, "mine")
    expect(rows(page)).to_have_count(2)
    page.select_option("#agreements-status", "cancelled")
    expect(rows(page)).to_have_count(1)
    assert listed_ids(page) == [later["id"]]
    expect(page.locator(".status-cell")).to_have_text("Cancelled")

    # A supervisor sees everyone's, and a flag column.
    sofie = screen()
    log_in(sofie, "sofie", server.password)
    sofie.keyboard.press("Alt+G")
    expect(sofie.locator("#filter-flagged")).to_be_visible()
    pick(sofie, "all")
    seeded = server.api(
        "GET", f"/api/agreements?customer_id={jan}&due=overdue", token=server.login("sofie")
    )[1]
    everyone = {today["id"], overdue["id"], barts["id"]} | {a["id"] for a in seeded["agreements"]}
    expect(rows(sofie)).to_have_count(len(everyone))
    assert set(listed_ids(sofie)) == everyone
    pick(sofie, "today")
    assert barts["id"] in listed_ids(sofie) and today["id"] in listed_ids(sofie)
    expect(
        sofie.locator(f"#agreements-rows tr[data-agreement-id='{barts['id']}'] .owner-cell")
    ).to_have_text("bart")
    assert page.errors == [] and sofie.errors == []


def test_an_operator_takes_an_unassigned_callback_from_the_pool(
    server: ConsoleServer, screen: Any
) -> None:
    """Nobody owns the seeded callback (as a missed call's): every operator lists it under
    Unassigned and may take it; then it is theirs, and out of the pool."""
    jan = server.ready["customers"]["covered"]
    sofie = server.login("sofie")
    [seeded] = server.api("GET", f"/api/agreements?customer_id={jan}", token=sofie)[1]["agreements"]
    assert seeded["owner"] is None
    page = screen()
    log_in(page, "bart", server.password)
    page.keyboard.press("Alt+G")
    expect(page.locator("#agreements-message")).to_have_text("No agreements (mine).")
    pick(page, "unowned")
    assert listed_ids(page) == [seeded["id"]]
    row = page.locator(f"#agreements-rows tr[data-agreement-id='{seeded['id']}']")
    expect(row.locator(".owner-cell")).to_have_text("nobody")
    row.locator("button").click()
    expect(page.locator("#agr-owner-note")).to_contain_text("Owner: nobody yet.")
    expect(page.locator("#agr-owner")).to_have_count(0)  # the supervisors' field
    page.click("#agr-take")
    expect(page.locator("#agreement-detail-status")).to_have_text("It is yours now.")
    expect(page.locator("#agreement-fact-owner")).to_have_text("bart")
    expect(page.locator("#agr-take")).to_have_count(0)
    expect(page.locator("#agreements-message")).to_have_text("No agreements (unassigned).")
    pick(page, "mine")
    assert listed_ids(page) == [seeded["id"]]
    stored = server.api("GET", f"/api/agreements/{seeded['id']}", token=sofie)[1]
    assert stored["owner"] == "bart"
    assert stored["history"][-1]["operator"] == "bart"
    assert page.errors == []


def test_a_callback_is_opened_changed_and_closed_with_a_disposition(
    server: ConsoleServer, screen: Any
) -> None:
    anna = server.login("anna")
    jan = server.ready["customers"]["covered"]
    start = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    made = make(
        server,
        anna,
        kind="callback",
        customer_id=jan,
        callback_number=JAN[0],
        deadline=iso(start + timedelta(hours=6)),
        window_start=iso(start),
        window_end=iso(start + timedelta(hours=2)),
        notes="Tell him <b>when</b> the part arrives",
    )
    path = f"/api/agreements/{made['id']}"

    page = screen()
    log_in(page, "anna", server.password)
    page.keyboard.press("Alt+G")
    page.click(f"#agreements-rows tr[data-agreement-id='{made['id']}'] button")
    detail = page.locator("#agreement-detail")
    expect(page.locator("#agreement-detail-title")).to_have_text(
        f"Agreement #{made['id']}: Call back"
    )
    expect(page.locator("#agreement-detail-title")).to_be_focused()
    expect(page.locator("#agreement-detail-notes")).to_have_text(
        "Tell him <b>when</b> the part arrives"
    )
    expect(page.locator("#agreement-fact-customer")).to_have_text(JAN[1])
    expect(page.locator("#agreement-fact-number")).to_have_text(JAN[0])
    expect(page.locator("#agreement-fact-window")).to_have_text(
        f"{shown(start)} \N{EN DASH} {shown(start + timedelta(hours=2))}"
    )
    expect(page.locator("#agreement-fact-status")).to_have_text("Open")
    expect(detail.locator(".attempts")).to_contain_text("No attempts yet.")
    expect(page.locator("#agreement-history li")).to_have_count(1)
    expect(page.locator("#agreement-history li").first).to_contain_text("Made")
    # An operator does not hand agreements over: no owner field for her.
    expect(page.locator("#agr-owner")).to_have_count(0)

    # Change the deadline and the notes: stored, and the history says what changed.
    page.fill("#agr-deadline", page.input_value("#agr-deadline")[:11] + "17:30")
    page.fill("#agr-notes", "Part arrives Thursday")
    page.click("#agr-save")
    expect(page.locator("#agreement-detail-status")).to_have_text("Saved.")
    stored = server.api("GET", path, token=anna)[1]
    assert stored["notes"] == "Part arrives Thursday"
    local = datetime.fromisoformat(stored["deadline"].replace("Z", "+00:00")).astimezone()
    assert (local.hour, local.minute) == (17, 30)
    changed = page.locator("#agreement-history li[data-kind='changed']")
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("by anna")
    expect(changed).to_contain_text(
        "notes: Tell him <b>when</b> the part arrives → Part arrives Thursday"
    )
    expect(changed).to_contain_text("deadline:")

    # Closing a callback as done asks for a disposition before anything is sent.
    expect(page.locator("#agr-close-status")).to_have_value("done")
    page.click("#agr-close-agreement")
    expect(page.locator("#agr-close-message")).to_contain_text("Choose a disposition")
    expect(page.locator("#agr-close-disposition")).to_be_focused()
    assert server.api("GET", path, token=anna)[1]["status"] == "open"
    # The server refuses it too, naming the field.
    status, answer = server.api("PATCH", path, token=anna, body={"status": "done"})
    assert status == 400 and "disposition" in answer["error"], answer

    page.select_option("#agr-close-disposition", "information_given")
    page.click("#agr-close-agreement")
    expect(page.locator("#agreement-fact-status")).to_have_text("Done")
    expect(page.locator("#agreement-fact-disposition")).to_have_text("Information given")
    expect(page.locator("#agreement-history li[data-kind='closed']")).to_contain_text(
        "Done: Information given"
    )
    expect(page.locator("#agr-close-form")).to_have_count(0)  # nothing more to close
    stored = server.api("GET", path, token=anna)[1]
    assert (stored["status"], stored["disposition"]) == ("done", "information_given")
    assert stored["closed_at"] is not None
    assert [e["kind"] for e in stored["history"]] == ["created", "changed", "closed"]
    # The list follows: it is no longer still to do.
    expect(page.locator(f"#agreements-rows tr[data-agreement-id='{made['id']}']")).to_have_count(0)
    assert page.errors == []


def test_a_supervisor_hands_an_agreement_over(server: ConsoleServer, screen: Any) -> None:
    made = make(
        server,
        server.login("anna"),
        kind="repair",
        deadline=iso(datetime.now(UTC) + timedelta(days=3)),
    )
    page = screen()
    log_in(page, "sofie", server.password)
    page.keyboard.press("Alt+G")
    pick(page, "all")
    page.click(f"#agreements-rows tr[data-agreement-id='{made['id']}'] button")
    expect(page.locator("#agr-owner")).to_have_value("anna")
    page.fill("#agr-owner", "bart")
    page.click("#agr-save")
    expect(page.locator("#agreement-fact-owner")).to_have_text("bart")
    expect(
        page.locator(f"#agreements-rows tr[data-agreement-id='{made['id']}'] .owner-cell")
    ).to_have_text("bart")
    expect(page.locator("#agreement-history li[data-kind='changed']")).to_contain_text(
        "owner: anna → bart"
    )
    assert (
        server.api("GET", f"/api/agreements/{made['id']}", token=server.login("bart"))[1]["owner"]
        == "bart"
    )
    # A closed non-callback needs no disposition.
    page.select_option("#agr-close-status", "cancelled")
    page.click("#agr-close-agreement")
    expect(page.locator("#agreement-fact-status")).to_have_text("Cancelled")
    assert page.errors == []


def test_a_contact_is_logged_and_shows_in_the_history_beside_the_calls(
    server: ConsoleServer, screen: Any
) -> None:
    jan = server.ready["customers"]["covered"]
    page = screen()
    log_in(page, "anna", server.password)
    page.keyboard.press("Alt+K")
    page.fill("#customer-q", "Peeters")
    page.press("#customer-q", "Enter")
    page.locator("#customer-results button").first.click()
    detail = page.locator("#customer-detail")
    expect(detail.locator(".customer-name")).to_have_text(JAN[1])

    page.click("#contact-open")
    page.select_option("#contact-channel", "mail")
    page.fill("#contact-subject", "Manual <RTR-200>")
    page.fill("#contact-notes", "Sent the manual as a PDF")
    page.fill("#contact-category", "How-to question")
    page.select_option("#contact-disposition", "solved")
    page.click("#contact-log")
    expect(page.locator("#customer-notice")).to_contain_text("Contact logged")
    contact = detail.locator(".history-list li[data-type='contact']")
    expect(contact).to_have_count(1)
    expect(contact.locator(".channel")).to_have_text("E-mail")
    expect(contact.locator(".subject")).to_have_text("Manual <RTR-200>")
    expect(contact).to_contain_text("by anna")
    expect(contact).to_contain_text("How-to question")
    expect(contact).to_contain_text("Solved")
    expect(contact.locator(".notes-text")).to_have_text("Sent the manual as a PDF")

    status, context = server.api("GET", f"/api/customers/{jan}", token=server.login("anna"))
    assert status == 200
    [stored] = [item for item in context["history"] if item["type"] == "contact"]
    assert (stored["channel"], stored["subject"], stored["operator"]) == (
        "mail",
        "Manual <RTR-200>",
        "anna",
    )
    assert (stored["category"], stored["disposition"]) == ("How-to question", "solved")

    # The next pop for Jan shows it, beside the calls.
    server.call("direct_answered", JAN, operator="PJSIP/1001", ring=2.0, talk=60.0)
    expect(page.locator("#caller-name")).to_have_text(JAN[1])
    expect(page.locator("#pop .history-list li[data-type='contact'] .subject")).to_have_text(
        "Manual <RTR-200>"
    )
    assert page.errors == []


def test_the_customer_view_links_its_open_agreements(server: ConsoleServer, screen: Any) -> None:
    jan = server.ready["customers"]["covered"]
    made = make(
        server,
        server.login("anna"),
        kind="callback",
        customer_id=jan,
        callback_number=JAN[0],
        deadline=iso(datetime.now(UTC) + timedelta(days=1)),
    )
    page = screen()
    log_in(page, "anna", server.password)
    page.keyboard.press("Alt+K")
    page.fill("#customer-q", "Peeters")
    page.press("#customer-q", "Enter")
    page.locator("#customer-results button").first.click()
    link = page.locator(
        f"#customer-detail .agreement[data-agreement-id='{made['id']}'] .open-agreement"
    )
    expect(link).to_contain_text("Call back")
    link.click()
    expect(page.locator("#agreements-panel")).to_be_visible()
    expect(page.locator("#agreement-detail-title")).to_have_text(
        f"Agreement #{made['id']}: Call back"
    )

    # And all of the customer's, from the customer view.
    page.keyboard.press("Alt+K")
    page.click("#customer-agreements")
    expect(page.locator("#agreements-customer")).to_be_visible()
    expect(page.locator("#agreements-customer-name")).to_have_text(JAN[1])
    expect(rows(page)).to_have_count(1)  # hers: the seeded one has no owner
    assert listed_ids(page) == [made["id"]]
    page.click("#agreements-any-customer")
    expect(page.locator("#agreements-customer")).to_be_hidden()
    assert page.errors == []


def test_a_callback_pop_shows_its_agreement_and_closes_it(
    server: ConsoleServer, screen: Any
) -> None:
    anna = server.login("anna")
    made = make_callback(server, anna, "Ask if the <i>reboot</i> helped")
    page = screen()
    log_in(page, "anna", server.password)
    server.command(
        "originate",
        device="PJSIP/1001",
        exten="050123456",
        agreement_id=made["id"],
        attempt=1,
        operator="anna",
        caller_id=f'"{JAN[1]}" <{JAN[0]}>',
    )
    pop = the_pop(page)
    assert pop["agreement"]["id"] == made["id"]

    callback = page.locator("#callback")
    expect(page.locator("#callback-title")).to_have_text(
        f"Callback for agreement #{made['id']}: Call back"
    )
    expect(page.locator("#callback-notes")).to_have_text("Ask if the <i>reboot</i> helped")
    expect(page.locator("#callback-attempt")).to_have_text("Attempt 1")  # the claimed attempt
    expect(page.locator("#callback-facts")).to_contain_text("Due ")
    expect(callback).to_contain_text("made by anna")
    # While it rings: nothing to close yet.
    expect(page.locator("#callback-wait")).to_be_visible()
    expect(page.locator("#callback-close-form")).to_have_count(0)

    server.command("answer", device="PJSIP/1001")
    expect(page.locator("#call-state")).to_have_text("Talking")
    expect(page.locator("#callback-close-form")).to_be_visible()
    page.click("#callback-close-agreement")
    expect(page.locator("#callback-close-message")).to_contain_text("Choose a disposition")
    page.select_option("#callback-close-disposition", "solved")
    page.click("#callback-close-agreement")
    expect(page.locator("#callback-closed")).to_have_text(
        f"Agreement #{made['id']} closed: Done · Solved."
    )
    stored = server.api("GET", f"/api/agreements/{made['id']}", token=anna)[1]
    assert (stored["status"], stored["disposition"]) == ("done", "solved")
    # The call's own notes form is still there for the call.
    expect(page.locator("#notes")).to_be_visible()
    # The agreement's page tells the attempt and its close.
    page.keyboard.press("Alt+G")
    page.select_option("#agreements-status", "done")
    row = page.locator(f"#agreements-rows tr[data-agreement-id='{made['id']}']")
    expect(row.locator(".attempts-cell")).to_have_text("1")
    row.locator("button").click()
    expect(page.locator("#agreement-attempts tbody tr")).to_have_count(1)
    expect(page.locator("#agreement-attempts tbody tr td").nth(1)).to_have_text("anna")
    history = page.locator("#agreement-history li")
    expect(history.filter(has_text="Attempt started")).to_contain_text("Attempt 1 ringing anna")
    expect(history.filter(has_text="Closed")).to_contain_text("Done: Solved")
    assert page.errors == []


@pytest.mark.dialer
def test_the_dialer_rings_the_owner_for_a_callback_made_due_and_its_close_is_stored(
    server: ConsoleServer, screen: Any
) -> None:
    """End to end: the agreement made through the API is dialled by the daemon's own
    DialerService (Originate to the owner's phone, the customer in [dialer] context),
    the pop shows it, the operator answers, the customer answers, the attempt is stored
    ``answered`` and the operator closes the callback with a disposition."""
    anna = server.login("anna")
    server.command("hold", device="PJSIP/1001", exten="050123456")  # national format
    page = screen()
    log_in(page, "anna", server.password)
    made = make_callback(server, anna, "Tell her the part has arrived")  # the dialer is woken
    pop = the_pop(page)
    assert pop["agreement"]["id"] == made["id"]
    assert pop["agreement"]["attempt"] == 1
    expect(page.locator("#callback-title")).to_have_text(
        f"Callback for agreement #{made['id']}: Call back"
    )
    expect(page.locator("#callback-attempt")).to_have_text("Attempt 1")
    expect(page.locator("#callback-wait")).to_be_visible()
    ringing = server.api("GET", f"/api/agreements/{made['id']}", token=anna)[1]
    assert ringing["status"] == "dialling"
    [attempt] = ringing["attempts"]
    assert (attempt["number"], attempt["operator"], attempt["outcome"]) == (1, "anna", None)

    server.command("answer", device="PJSIP/1001")
    expect(page.locator("#call-state")).to_have_text("Talking")

    def answered() -> dict[str, Any] | None:
        stored: dict[str, Any] = server.api("GET", f"/api/agreements/{made['id']}", token=anna)[1]
        return stored if stored["attempts"][-1]["outcome"] == "answered" else None

    stored = server.eventually(answered, 10.0, "the attempt stored as answered")
    assert len(stored["attempts"]) == 1  # dialled once, however many passes ran since
    expect(page.locator("#callback-close-form")).to_be_visible()
    page.select_option("#callback-close-disposition", "solved")
    page.click("#callback-close-agreement")
    expect(page.locator("#callback-closed")).to_have_text(
        f"Agreement #{made['id']} closed: Done · Solved."
    )
    closed = server.api("GET", f"/api/agreements/{made['id']}", token=anna)[1]
    assert (closed["status"], closed["disposition"]) == ("done", "solved")
    assert [a["outcome"] for a in closed["attempts"]] == ["answered"]
    assert page.errors == []


def test_a_supervisor_sees_a_flagged_callback_and_closes_it(
    server: ConsoleServer, screen: Any
) -> None:
    jan = server.ready["customers"]["covered"]
    made = make(
        server,
        server.login("anna"),
        kind="callback",
        customer_id=jan,
        callback_number=JAN[0],
        deadline=iso(datetime.now(UTC) + timedelta(hours=1)),
    )
    page = screen()
    log_in(page, "sofie", server.password)
    page.keyboard.press("Alt+G")
    pick(page, "flagged")
    expect(page.locator("#agreements-message")).to_contain_text("No agreements")

    server.command("flag", agreement_id=made["id"], reason="attempts_exhausted")
    # The push: a count on the tab, said aloud, and the open Flagged list read again.
    expect(page.locator("#flagged-count")).to_have_text(" ⚑ 1")
    expect(page.locator("#announce")).to_contain_text(f"Agreement #{made['id']} is flagged")
    row = page.locator(f"#agreements-rows tr[data-agreement-id='{made['id']}']")
    expect(row.locator(".flagged-cell")).to_have_text("⚑ FLAGGED")
    expect(row.locator(".status-cell")).to_have_text("Failed")
    row.locator("button").click()
    expect(page.locator("#agreement-flagged")).to_contain_text("FLAGGED")
    expect(page.locator("#agreement-history li[data-kind='flagged']")).to_contain_text(
        "No attempts left"
    )
    # A supervisor closes a failed one; a callback still needs its disposition.
    page.select_option("#agr-close-status", "done")
    page.click("#agr-close-agreement")
    expect(page.locator("#agr-close-message")).to_contain_text("Choose a disposition")
    page.select_option("#agr-close-disposition", "customer_unreachable")
    page.click("#agr-close-agreement")
    expect(page.locator("#agreement-fact-status")).to_have_text("Done")
    expect(page.locator("#agreement-fact-disposition")).to_have_text(
        "Customer could not be reached"
    )
    expect(row).to_have_count(0)  # decided: no longer waiting in the flagged list
    stored = server.api("GET", f"/api/agreements/{made['id']}", token=server.login("sofie"))[1]
    assert (stored["status"], stored["disposition"]) == ("done", "customer_unreachable")
    assert page.errors == []
