"""The Team view (Alt+T) and an operator's own state, in a real browser on the simulated
PBX (console_server.py): a supervisor sees every operator with their state in words and
their current call, pauses one with a reason (the simulated PBX honours QueuePause and
answers with QueueMemberPause) and unpauses them, watches an operator's pop from the row,
reads today's abandoned calls with their pending callback; an operator pauses themselves;
an operator whose phone stops answering sees the banner until it is back."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.browser.console_harness import ConsoleServer
from tests.browser.test_console_live import JAN, MARIE, log_in

HOSTILE = ("092345678", '<img src=x onerror="document.title=1">Eve')


def row(page: Any, username: str) -> Any:
    return page.locator(f"#team-rows tr[data-operator='{username}']")


def heard_of(page: Any) -> tuple[set[str], set[str]]:
    """The operators the page's socket heard of in ``agents_update`` batches, and in
    single ``agent_update`` messages (the console asks for batches: ``agents=batched``)."""
    batched: set[str] = set()
    single: set[str] = set()
    for frame in page.frames_received:
        message = json.loads(frame)
        if message.get("type") == "agents_update":
            batched |= {a["operator"] for a in message["agents"]}
        elif message.get("type") == "agent_update":
            single.add(message["agent"]["operator"])
    return batched, single


def agent(server: ConsoleServer, token: str, username: str) -> dict[str, Any]:
    status, body = server.api("GET", f"/api/agents/{username}", token=token)
    assert status == 200, body
    return dict(body)


def test_a_supervisor_pauses_and_unpauses_an_operator_from_the_team_view(
    server: ConsoleServer, screen: Any
) -> None:
    sofie = screen()
    log_in(sofie, "sofie", server.password)
    expect(sofie.locator("#team-tab")).to_be_visible()
    sofie.keyboard.press("Alt+t")
    expect(sofie.locator("#team-panel")).to_be_visible()
    anna, bart = row(sofie, "anna"), row(sofie, "bart")
    expect(anna.locator(".agent-state")).to_have_text("Available")
    expect(bart.locator(".agent-state")).to_have_text("Available")
    expect(anna.locator(".agent-phone")).to_have_text("Registered")

    anna.locator("select").select_option("lunch")
    anna.locator(".team-pause").click()
    expect(anna.locator(".agent-state")).to_have_text("Paused")
    expect(anna.locator(".agent-reason")).to_have_text(" (lunch)")
    expect(bart.locator(".agent-state")).to_have_text("Available")
    token = server.login("sofie")
    paused = agent(server, token, "anna")
    assert (paused["state"], paused["paused_reason"]) == ("paused", "lunch")
    # Time in pause: a clock that ticks in the page, from state_since.
    clock = anna.locator("td .timer").first
    expect(clock).to_have_text("0:01", timeout=5000)
    expect(clock).to_have_text("0:02", timeout=5000)

    anna.locator(".team-unpause").click()
    expect(anna.locator(".agent-state")).to_have_text("Available")
    expect(anna.locator(".agent-reason")).to_have_count(0)
    assert agent(server, token, "anna")["state"] == "available"

    # A refusal is said plainly: sofie herself is in no queue.
    row(sofie, "sofie").locator(".team-pause").click()
    expect(sofie.locator("#team-message")).to_have_text(
        "Pause of sofie failed: sofie is a member of no queue"
    )
    # Chromium logs the refused request itself; nothing else went wrong in the page.
    assert [e for e in sofie.errors if "status of 409" not in e] == []


def test_the_team_view_shows_the_current_call_and_watches_the_pop(
    server: ConsoleServer, screen: Any
) -> None:
    sofie = screen()
    log_in(sofie, "sofie", server.password)
    sofie.locator("#team-tab").click()
    bart = row(sofie, "bart")
    expect(bart.locator(".agent-state")).to_have_text("Available")
    server.call("direct_answered", HOSTILE, operator="PJSIP/1002", ring=4.0, talk=30.0)
    expect(bart.locator(".agent-state")).to_have_text("Ringing")
    expect(bart.locator(".agent-call")).to_contain_text("Ringing:")
    expect(bart.locator(".agent-caller")).to_have_text(f"{HOSTILE[1]} (+3292345678)")
    assert sofie.locator("#team-rows img").count() == 0  # caller text never becomes markup
    bart.locator(".team-watch").click()
    expect(sofie.locator("#live-panel")).to_be_visible()
    expect(sofie.locator("#watching")).to_have_text("Watching bart.")
    expect(sofie.locator("#caller-name")).to_have_text(HOSTILE[1])
    expect(sofie.locator(".call-state")).to_contain_text("for bart")
    sofie.keyboard.press("Alt+t")
    expect(bart.locator(".agent-state")).to_have_text("On call", timeout=10_000)
    expect(bart.locator(".agent-call")).to_contain_text("Talking with")
    assert sofie.title() != "1" and sofie.errors == []
    # All of it came in the supervisors' batches; single updates only of her own state
    # (her own topic) and of whom she watches (Bart's own topic).
    batched, single = heard_of(sofie)
    assert "bart" in batched
    assert single <= {"sofie", "bart"}


def test_todays_abandoned_calls_with_their_pending_callback(
    server: ConsoleServer, screen: Any
) -> None:
    token = server.login("sofie")
    server.call("queue_abandoned", MARIE, queue="support", patience=1.5)
    server.call("queue_abandoned", JAN, queue="support", patience=1.0)

    def abandoned() -> list[dict[str, Any]]:
        status, body = server.api("GET", "/api/calls?outcome=abandoned", token=token)
        assert status == 200, body
        calls = body["calls"]
        return list(calls) if len(calls) == 2 else []

    calls = server.eventually(abandoned, 20.0, "two abandoned call records")
    marie = next(c for c in calls if c["caller_number"] == "+3250765432")
    status, made = server.api(
        "POST",
        "/api/agreements",
        token=token,
        body={"kind": "callback", "call_id": marie["id"], "notes": "Call Marie back"},
    )
    assert status == 201, made
    assert server.api("GET", "/api/calls?outcome=gone", token=token)[0] == 400

    sofie = screen()
    log_in(sofie, "sofie", server.password)
    sofie.keyboard.press("Alt+t")
    rows = sofie.locator("#abandoned-rows tr")
    expect(rows).to_have_count(2)
    expect(sofie.locator("#abandoned-message")).to_have_text("2 abandoned today.")
    pending = sofie.locator(f"#abandoned-rows tr[data-call-id='{marie['id']}']")
    callback = pending.locator(".abandoned-callback")
    expect(callback).to_contain_text(f"Callback pending #{made['id']}")
    expect(pending).to_contain_text("support")
    # Jan's number has the seeded open callback (no call of its own): pending by number.
    jan_row = sofie.locator("#abandoned-rows tr").filter(has_text="+3250123456")
    expect(jan_row.locator(".abandoned-callback")).to_contain_text("Callback pending")
    pending.locator(".abandoned-callback button").click()
    expect(sofie.locator("#agreements-panel")).to_be_visible()
    expect(sofie.locator("#agreement-detail")).to_contain_text("Call Marie back")
    assert sofie.errors == []


def test_an_abandoned_call_without_a_callback_says_so(server: ConsoleServer, screen: Any) -> None:
    token = server.login("sofie")
    server.call("queue_abandoned", HOSTILE, queue="support", patience=1.0)
    server.eventually(
        lambda: server.api("GET", "/api/calls?outcome=abandoned", token=token)[1]["calls"],
        20.0,
        "the abandoned call's record",
    )
    sofie = screen()
    log_in(sofie, "sofie", server.password)
    sofie.locator("#team-tab").click()
    only = sofie.locator("#abandoned-rows tr")
    expect(only).to_have_count(1)
    expect(only.locator(".abandoned-caller")).to_have_text(f"{HOSTILE[1]} (+3292345678)")
    expect(only.locator(".abandoned-callback")).to_have_text("No callback")
    assert sofie.locator("#abandoned-rows img").count() == 0


def test_an_operator_pauses_and_unpauses_themselves(server: ConsoleServer, screen: Any) -> None:
    anna = screen()
    log_in(anna, "anna", server.password)
    expect(anna.locator("#team-tab")).to_be_hidden()  # supervisors only
    anna.keyboard.press("Alt+t")
    expect(anna.locator("#team-panel")).to_be_hidden()
    expect(anna.locator("#my-state-words")).to_have_text("Available")
    anna.locator("#my-pause-reason").select_option("training")
    anna.locator("#my-pause").click()
    expect(anna.locator("#my-state-words")).to_have_text("Paused (training)")
    token = server.login("anna")
    assert agent(server, token, "anna")["paused_reason"] == "training"
    expect(anna.locator("#my-state-since")).to_have_text("0:01", timeout=5000)
    anna.locator("#my-unpause").click()
    expect(anna.locator("#my-state-words")).to_have_text("Available")
    expect(anna.locator("#my-unpause")).to_be_hidden()
    assert server.api("GET", "/api/agents/bart", token=token)[0] == 403
    assert anna.errors == []


def test_the_phone_banner_shows_while_the_phone_does_not_answer(
    server: ConsoleServer, screen: Any
) -> None:
    anna, bart, sofie = screen(), screen(), screen()
    log_in(anna, "anna", server.password)
    log_in(bart, "bart", server.password)
    log_in(sofie, "sofie", server.password)
    sofie.keyboard.press("Alt+t")
    expect(row(sofie, "anna").locator(".agent-phone")).to_have_text("Registered")
    expect(anna.locator("#phone-banner")).to_be_hidden()
    server.command("phone", device="PJSIP/1001", reachable=False)
    expect(anna.locator("#phone-banner")).to_be_visible()
    expect(anna.locator("#phone-banner")).to_contain_text("Your phone is not registered")
    expect(anna.locator("#phone-banner")).to_contain_text("PJSIP/1001")
    expect(row(sofie, "anna").locator(".agent-phone")).to_contain_text("Unreachable")
    expect(bart.locator("#phone-banner")).to_be_hidden()  # only the operator whose phone it is
    expect(sofie.locator("#phone-banner")).to_be_hidden()

    # A reload reads it from the agent view, not only from the push.
    anna.reload()
    expect(anna.locator("#link-state")).to_have_text("● Live")
    expect(anna.locator("#phone-banner")).to_be_visible()

    server.command("phone", device="PJSIP/1001", reachable=True)
    expect(anna.locator("#phone-banner")).to_be_hidden()
    expect(row(sofie, "anna").locator(".agent-phone")).to_have_text("Registered")
    assert anna.errors == [] and bart.errors == []
