"""The dialer service: due callbacks in, Originates out, outcomes stored.

The memory store twin, a scripted PBX answering over the wire, a MemoryReactorClock;
the PBX's side of each callback is a recorded trace with the dialer's ids put in."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from cti_bridge.ami.parser import Message, format_action
from cti_bridge.dialer.service import NOBODY_DELAY, SWEEP_SECONDS
from tests.support.dialer_rig import NODE, START, Rig, make_rig, trace_blocks

RETRY = timedelta(seconds=600)  # [dialer] retry_seconds[0], the default


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def dialled(rig: Rig) -> Message:
    (originate,) = rig.actions("Originate")
    return originate


def queued(rig: Rig, originate: Message) -> None:
    rig.send(
        f"Response: Success\r\nActionID: {originate.action_id}\r\n"
        "Message: Originate successfully queued\r\n\r\n"
    )


def play(rig: Rig, trace: str, originate: Message, *, ids: dict[str, str]) -> None:
    """The trace's events after the Originate was queued, with the trace's ids (ActionID,
    ChannelId) replaced by the dialer's."""
    queued(rig, originate)
    for recorded in trace_blocks(trace):
        block = recorded
        for theirs, ours in ids.items():
            block = block.replace(theirs.encode(), ours.encode())
        rig.send(block)
    rig.advance(0)


def start_one(rig: Rig, **callback: Any) -> tuple[int, Message]:
    rig.board.set("anna")
    agreement_id = rig.callback(**callback)
    report = rig.pass_once()
    assert report.dialled == [agreement_id]
    return agreement_id, dialled(rig)


# -- the Originate ----------------------------------------------------------------------


def test_a_due_callback_is_claimed_then_originated_with_exactly_these_headers() -> None:
    rig = make_rig()
    rig.board.set("anna")
    agreement_id = rig.callback(customer='Jan "de Baas" <Peeters>\r\nEvent: Hangup')
    sent_at_claim: list[bytes] = []
    claim = rig.store.agreements.claim_attempt

    def watching(*args: Any, **kwargs: Any) -> bool:
        assert rig.pbx is not None
        sent_at_claim.append(rig.pbx.transport.value())
        return claim(*args, **kwargs)

    rig.store.agreements.claim_attempt = watching  # type: ignore[method-assign]
    rig.pass_once()
    assert rig.pbx is not None
    wire = rig.pbx.transport.value()
    originate = dialled(rig)
    # Claimed and committed first: nothing had gone out when the claim was made.
    assert sent_at_claim == [b""]
    (attempt,) = rig.attempts(agreement_id)
    assert (attempt["number"], attempt["operator"], attempt["node"]) == (1, "anna", NODE)
    assert (attempt["pbx"], attempt["outcome"], attempt["ended_at"]) == ("main", None, None)
    assert rig.agreement(agreement_id)["status"] == "dialling"
    channel_id = attempt["channel_id"]
    assert channel_id.startswith("cti-callback-")
    assert wire == format_action(
        "Originate",
        [
            ("Channel", "Local/1001@agents/n"),
            ("Context", "callback"),
            ("Exten", "0470123456"),
            ("Priority", "1"),
            ("Timeout", "20000"),
            ("CallerID", '"Jan de Baas Peeters Event: Hangup" <0470123456>'),
            ("Variable", f"CTI_AGREEMENT_ID={agreement_id}"),
            ("Variable", "CTI_ATTEMPT=1"),
            ("Variable", "CTI_OPERATOR=anna"),
            ("ChannelId", channel_id),
            ("OtherChannelId", f"{channel_id}-2"),
            ("Async", "true"),
            ("ActionID", originate.action_id or ""),
        ],
    )
    (open_,) = rig.store.agreements.open_attempts("main")
    assert (open_.channel_id, open_.action_id) == (channel_id, originate.action_id)


@pytest.mark.parametrize(
    ("number_format", "exten"),
    [("national", "0470123456"), ("e164", "+32470123456"), ("international", "0032470123456")],
)
def test_the_customers_number_goes_out_in_the_number_format(number_format: str, exten: str) -> None:
    rig = make_rig(number_format=number_format)
    _, originate = start_one(rig, customer=None)
    assert originate["Exten"] == exten
    assert originate["CallerID"] == f'"Callback" <{exten}>'


def test_a_pjsip_device_is_rung_as_it_is() -> None:
    rig = make_rig()
    rig.board.set("bart")
    rig.callback(owner="bart")
    rig.pass_once()
    assert dialled(rig)["Channel"] == "PJSIP/1002"


def test_a_store_that_refuses_the_claim_means_no_originate() -> None:
    rig = make_rig()
    rig.board.set("anna")
    agreement_id = rig.callback()

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("database is down")

    rig.store.agreements.claim_attempt = broken  # type: ignore[method-assign]
    report = rig.pass_once()
    assert report.failed == [agreement_id]
    assert rig.actions("Originate") == []
    assert rig.attempts(agreement_id) == []
    assert rig.service.status()["store_errors"] == 1


def test_a_claim_lost_to_another_node_sends_nothing() -> None:
    rig = make_rig()
    rig.board.set("anna")
    agreement_id = rig.callback()
    # Another node claims it between this node's read and its claim.
    due = rig.store.agreements.due_callbacks

    def racing(now: Any, limit: int = 100) -> Any:
        found = due(now, limit)
        rig.store.agreements.claim_attempt(
            agreement_id, 1, now=now, operator="bart", node="node-b", pbx="main",
            channel_id="theirs", action_id="theirs",
        )  # fmt: skip
        return found

    rig.store.agreements.due_callbacks = racing  # type: ignore[method-assign]
    report = rig.pass_once()
    assert report.dialled == []
    assert rig.actions("Originate") == []
    assert [a["node"] for a in rig.attempts(agreement_id)] == ["node-b"]


@pytest.mark.parametrize("state", ["on_call", "ringing", "paused", "wrap_up", "unavailable"])
def test_an_operator_who_is_not_available_is_not_rung(state: str) -> None:
    rig = make_rig()
    rig.board.set("anna", state)
    agreement_id = rig.callback()
    report = rig.pass_once()
    assert report.rescheduled == [agreement_id]
    assert rig.actions("Originate") == []
    assert rig.attempts(agreement_id) == []
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == rig.now + NOBODY_DELAY


def test_one_operator_is_rung_for_one_callback_at_a_time() -> None:
    rig = make_rig()
    rig.board.set("anna")
    first = rig.callback(due=timedelta(minutes=-2))
    second = rig.callback(due=timedelta(minutes=-1))
    report = rig.pass_once()
    assert report.dialled == [first]
    assert report.rescheduled == [second]
    assert len(rig.actions("Originate")) == 1


def test_a_callback_not_yet_in_calling_hours_is_put_off_to_them() -> None:
    rig = make_rig(hours={"tue": "14:00-18:00"})
    rig.board.set("anna")
    agreement_id = rig.callback()
    report = rig.pass_once()
    assert report.rescheduled == [agreement_id]
    assert rig.actions("Originate") == []
    # 14:00 in Brussels (UTC+1 in November) on the same Tuesday.
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == START.replace(hour=13)


def test_a_callback_past_its_deadline_is_flagged_and_pushed_to_the_supervisors() -> None:
    rig = make_rig()
    rig.board.set("anna")
    agreement_id = rig.callback(due=timedelta(hours=-3), deadline=timedelta(hours=-1))
    report = rig.pass_once()
    rig.advance(0)
    assert report.flagged == [agreement_id]
    assert rig.actions("Originate") == []
    shown = rig.agreement(agreement_id)
    assert (shown["status"], shown["flagged"]) == ("failed", True)
    (push,) = rig.pushed
    assert push["type"] == "agreement_flagged"
    assert push["agreement"]["id"] == agreement_id


def test_without_a_pbx_link_nothing_is_dialled_and_the_callback_stays_due() -> None:
    rig = make_rig(up=False)
    rig.board.set("anna")
    agreement_id = rig.callback()
    report = rig.pass_once()
    assert report.waiting == [agreement_id]
    assert rig.attempts(agreement_id) == []
    # The link comes up: its resync kicks a pass, which dials.
    rig.link_up()
    rig.advance(0)
    rig.advance(0)
    assert dialled(rig)["Exten"] == "0470123456"


# -- outcomes from the recorded traces -------------------------------------------------------


@pytest.mark.parametrize(
    ("trace", "their_action", "their_channel", "outcome"),
    [
        (
            "07-callback-originate-answered-channelid.ami",
            "callback-48",
            "cti-callback-48",
            "answered",
        ),
        ("07-callback-originate-answered.ami", "callback-42", None, "answered"),
        ("08-callback-originate-customer-busy.ami", "callback-cust-busy", None, "busy"),
        ("pjsip/05-callback-originate-answered.ami", "callback-42", None, "answered"),
        ("pjsip/06-callback-originate-customer-busy.ami", "callback-42", None, "busy"),
        (
            "pjsip/06b-callback-originate-operator-no-answer.ami",
            "callback-42",
            None,
            "operator_no_answer",
        ),
        (
            "08-callback-originate-failed-operator-noanswer.ami",
            "callback-op-noanswer",
            None,
            "operator_no_answer",
        ),
    ],
)
def test_each_recorded_callback_stores_its_outcome_and_the_next_attempt(
    trace: str, their_action: str, their_channel: str | None, outcome: str
) -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    ids = {their_action: originate.action_id or ""}
    if their_channel is not None:
        ids[their_channel] = originate["ChannelId"]
    play(rig, trace, originate, ids=ids)
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == outcome
    ended = attempt["ended_at"]
    shown = rig.agreement(agreement_id)
    assert shown["status"] == "open"
    if outcome == "answered":  # the operator closes it; nothing more to dial
        assert shown["next_attempt_at"] is None
    else:  # the retry interval after this attempt's end (inside calling hours)
        assert ended is not None
        assert at(shown["next_attempt_at"]) == rig.now + RETRY
    assert rig.service.status()["attempts"] == {outcome: 1}
    assert rig.service.status()["in_flight"] == []
    # Nothing is dialled again by the passes that follow.
    rig.advance(30)
    assert rig.actions("Originate") == []


def test_the_last_attempt_that_fails_flags_the_agreement_and_pushes_it() -> None:
    rig = make_rig(max_attempts=2, retry_seconds=[60])
    agreement_id, originate = start_one(rig)
    play(rig, "08-callback-originate-customer-busy.ami", originate,
         ids={"callback-cust-busy": originate.action_id or ""})  # fmt: skip
    assert rig.pushed == []
    rig.advance(60)  # the retry falls due; a pass dials attempt 2
    second = dialled(rig)
    assert second["Variable"] == f"CTI_AGREEMENT_ID={agreement_id}"
    assert "CTI_ATTEMPT=2" in second.getall("Variable")
    play(rig, "pjsip/06-callback-originate-customer-busy.ami", second,
         ids={"callback-42": second.action_id or ""})  # fmt: skip
    assert [a["outcome"] for a in rig.attempts(agreement_id)] == ["busy", "busy"]
    shown = rig.agreement(agreement_id)
    assert (shown["status"], shown["flagged"], shown["next_attempt_at"]) == ("failed", True, None)
    (push,) = rig.pushed
    assert (push["type"], push["agreement"]["id"]) == ("agreement_flagged", agreement_id)
    assert push["agreement"]["flagged"] is True
    rig.advance(600)
    assert rig.actions("Originate") == []


# -- what the Originate itself says -----------------------------------------------------------


def test_not_sent_ends_the_attempt_cancelled_and_waits_the_retry() -> None:
    rig = make_rig()
    rig.board.set("anna")
    agreement_id = rig.callback()
    claim = rig.store.agreements.claim_attempt

    def then_the_link_drops(*args: Any, **kwargs: Any) -> bool:
        won = claim(*args, **kwargs)
        assert rig.pbx is not None
        rig.pbx.close("the PBX went away")
        return won

    rig.store.agreements.claim_attempt = then_the_link_drops  # type: ignore[method-assign]
    rig.pass_once()
    assert rig.pbx is not None and b"Originate" not in rig.pbx.transport.value()
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == "cancelled"
    assert attempt["detail"] == "not sent"
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == rig.now + RETRY


def test_refused_ends_the_attempt_failed_with_the_pbxs_words() -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    rig.send(
        f"Response: Error\r\nActionID: {originate.action_id}\r\n"
        "Message: Extension does not exist.\r\n\r\n"
    )
    rig.advance(0)
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == "failed"
    assert "Extension does not exist." in attempt["detail"]


def test_an_unknown_outcome_is_resolved_from_the_pbx_after_the_reconnect() -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    queued(rig, originate)
    assert rig.pbx is not None
    rig.pbx.close("link dropped")  # OriginateOutcomeUnknown: maybe dialling now
    assert rig.attempts(agreement_id)[0]["outcome"] is None
    rig.link_up()
    rig.advance(0)
    (status,) = rig.actions("Status")
    assert status["Variables"] == "CTI_AGREEMENT_ID,CTI_ATTEMPT"
    rig.answer_status(status, [])  # the call is gone
    rig.advance(0)
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == "unknown"
    # Never re-dialled at once: the policy's retry after the unknown end.
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == rig.now + RETRY
    assert rig.actions("Originate") == []


def test_a_call_still_live_after_the_reconnect_is_followed_to_its_end() -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    channel_id = originate["ChannelId"]
    queued(rig, originate)
    assert rig.pbx is not None
    rig.pbx.close("link dropped")
    rig.link_up()
    rig.advance(0)
    (status,) = rig.actions("Status")
    rig.answer_status(
        status,
        [
            f"Event: Status\r\nChannel: Local/1001@agents-00000001;1\r\nChannelState: 6\r\n"
            f"Uniqueid: {channel_id}\r\nLinkedid: {channel_id}\r\nApplication: Dial\r\n"
            "BridgeID: \r\n"
        ],
    )
    rig.advance(0)
    assert rig.service.status()["in_flight"][0]["state"] == "customer_dialling"
    rig.send(_customer_dial_end(channel_id, "NOANSWER"))
    rig.advance(0)
    assert rig.attempts(agreement_id)[0]["outcome"] is None  # the customer leg's cause decides
    rig.send(
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: Local/0470123456@pstn-out-00000002;1\r\n"
        f"Uniqueid: 17.4\r\nLinkedid: {channel_id}\r\nCause: 19\r\n\r\n"
    )
    rig.advance(0)
    assert rig.attempts(agreement_id)[0]["outcome"] == "no_answer"


def _customer_dial_end(channel_id: str, status: str) -> str:
    return (
        "Event: DialEnd\r\nPrivilege: call,all\r\nChannel: Local/1001@agents-00000001;1\r\n"
        f"Uniqueid: {channel_id}\r\nLinkedid: {channel_id}\r\n"
        "DestChannel: Local/0470123456@pstn-out-00000002;1\r\nDestUniqueid: 17.4\r\n"
        f"DestLinkedid: {channel_id}\r\nDialStatus: {status}\r\n\r\n"
    )


def test_the_watchdog_asks_the_pbx_about_an_attempt_that_never_ends() -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    queued(rig, originate)
    rig.send(
        f"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {originate.action_id}\r\n"
        f"Response: Success\r\nChannel: Local/1001@agents-00000001;1\r\nReason: 4\r\n"
        f"Uniqueid: {originate['ChannelId']}\r\n\r\n"
    )
    rig.advance(0)
    stale = rig.service.stale_after()
    rig.advance(stale - 1)
    assert rig.actions("Status") == []
    rig.advance(SWEEP_SECONDS + 5)
    (status,) = rig.actions("Status")
    rig.answer_status(status, [])
    rig.advance(0)
    assert rig.attempts(agreement_id)[0]["outcome"] == "unknown"


# -- a restart ---------------------------------------------------------------------------------


def restarted(*, live: bool) -> tuple[Rig, int]:
    """An attempt left open by this node before a restart; the new service comes up."""
    rig = make_rig(up=False, start=False)
    agreement_id = rig.callback(due=timedelta(minutes=-5))
    assert rig.store.agreements.claim_attempt(
        agreement_id, 1, now=rig.now - timedelta(minutes=1), operator="anna", node=NODE,
        pbx="main", channel_id="cti-callback-old", action_id="cti-originate-old",
    )  # fmt: skip
    rig.board.set("anna")
    rig.service.start()
    rig.link_up()
    rig.advance(0)
    (status,) = rig.actions("Status")
    items = (
        [
            "Event: Status\r\nChannel: Local/1001@agents-00000009;1\r\nChannelState: 5\r\n"
            "Uniqueid: cti-callback-old\r\nLinkedid: cti-callback-old\r\n"
        ]
        if live
        else []
    )
    rig.answer_status(status, items)
    rig.advance(0)
    return rig, agreement_id


def test_an_open_attempt_gone_from_the_pbx_at_start_ends_unknown_and_waits_its_retry() -> None:
    rig, agreement_id = restarted(live=False)
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == "unknown"
    rig.advance(5)  # passes run: the policy puts the next attempt off by the retry
    assert rig.actions("Originate") == []
    ended = attempt["ended_at"]
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == at(ended) + RETRY


def test_an_open_attempt_still_ringing_at_start_is_followed_not_redialled() -> None:
    rig, agreement_id = restarted(live=True)
    assert rig.attempts(agreement_id)[0]["outcome"] is None
    rig.advance(5)
    assert rig.actions("Originate") == []
    rig.send(
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: Local/1001@agents-00000009;1\r\n"
        "Uniqueid: cti-callback-old\r\nLinkedid: cti-callback-old\r\nCause: 19\r\n\r\n"
    )
    rig.advance(0)
    (attempt,) = rig.attempts(agreement_id)
    assert attempt["outcome"] == "operator_no_answer"
    rig.advance(5)
    assert rig.actions("Originate") == []
    assert at(rig.agreement(agreement_id)["next_attempt_at"]) == at(attempt["ended_at"]) + RETRY


def test_another_nodes_fresh_attempt_is_left_to_it() -> None:
    rig = make_rig(up=False)
    agreement_id = rig.callback()
    assert rig.store.agreements.claim_attempt(
        agreement_id, 1, now=rig.now, operator="anna", node="node-b", pbx="main",
        channel_id="theirs", action_id="theirs",
    )  # fmt: skip
    rig.link_up()
    rig.advance(0)
    assert rig.actions("Status") == []
    assert rig.attempts(agreement_id)[0]["outcome"] is None


# -- the service's own shape ----------------------------------------------------------------


def test_a_finish_the_store_refuses_is_kept_and_written_on_the_next_pass() -> None:
    rig = make_rig()
    agreement_id, originate = start_one(rig)
    finish = rig.store.agreements.finish_attempt
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is down")
        return finish(*args, **kwargs)

    rig.store.agreements.finish_attempt = flaky  # type: ignore[method-assign]
    rig.send(
        f"Response: Error\r\nActionID: {originate.action_id}\r\nMessage: No such channel\r\n\r\n"
    )
    rig.advance(0)
    assert rig.attempts(agreement_id)[0]["outcome"] is None
    assert rig.service.status()["status"] == "degraded"
    rig.pass_once()
    assert rig.attempts(agreement_id)[0]["outcome"] == "failed"
    assert rig.service.status()["status"] == "ok"
    assert rig.actions("Originate") == []


def test_passes_run_on_the_clock_and_a_kick_runs_one_soon() -> None:
    rig = make_rig(start=False)

    def passes() -> int:
        count: int = rig.service.status()["passes"]
        return count

    before = passes()
    rig.advance(60)
    assert passes() == before  # not started: no pass
    rig.service.start()
    assert passes() == before + 1  # the first one at once
    rig.advance(5)
    assert passes() == before + 2
    rig.service.kick()
    rig.service.kick()  # coalesced
    rig.advance(0)
    assert passes() == before + 3
    stopped = rig.service.stop()
    assert stopped.called
    rig.advance(60)
    rig.service.kick()
    rig.advance(0)
    assert passes() == before + 3  # stopped: neither the clock nor a kick runs one
    assert not rig.service.running


# -- who is rung -------------------------------------------------------------------------------


class FreeDeviceBoard:
    """A board that, like the queues room's, knows which device of an operator is free."""

    def __init__(self, inner: Any, free: dict[str, str]) -> None:
        self._inner = inner
        self._free = free

    def operator_states(self, pbx: str) -> list[Any]:
        states: list[Any] = self._inner.operator_states(pbx)
        return states

    def free_device(self, pbx: str, username: str) -> str | None:
        return self._free.get(username)


def test_the_boards_free_device_is_the_one_rung() -> None:
    rig = make_rig()
    rig.board.set("anna")
    board = FreeDeviceBoard(rig.board, {"anna": "PJSIP/1001"})
    rig.service._board = lambda: board
    rig.callback()
    rig.pass_once()
    assert dialled(rig)["Channel"] == "PJSIP/1001"


def test_after_the_owners_grace_an_available_queue_member_is_rung() -> None:
    rig = make_rig()
    rig.board.set("anna", "on_call", "support")
    rig.board.set("bart", "available", "support")
    within = rig.callback(due=timedelta(minutes=-10), queue="support")
    report = rig.pass_once()
    assert report.rescheduled == [within]  # the owner alone until 15 minutes after due
    late = rig.callback(due=timedelta(minutes=-20), queue="support")
    report = rig.pass_once()
    assert report.dialled == [late]
    originate = dialled(rig)
    assert originate["Channel"] == "PJSIP/1002"
    assert "CTI_OPERATOR=bart" in originate.getall("Variable")
    assert rig.attempts(late)[0]["operator"] == "bart"
