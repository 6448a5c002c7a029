"""The attempt machine: the recorded callback traces replayed through it, then the table's
corners one input at a time. Pure: messages in, states and outcomes out."""

from __future__ import annotations

import pytest

from cti_bridge.ami.parser import Message, parse_stream
from cti_bridge.dialer.attempt import (
    CLAIMED,
    CUSTOMER_DIALLING,
    ENDED,
    OPERATOR_ANSWERED,
    OPERATOR_RINGING,
    ORIGINATING,
    OUTCOME,
    RESOLVE,
    STATES,
    TALKING,
    TRANSITIONS,
    CallbackAttempt,
    find_call,
)
from cti_bridge.vocabulary import ATTEMPT_OUTCOMES
from tests.support.paths import TRACES


def events(trace: str) -> list[Message]:
    return [m for m in parse_stream((TRACES / trace).read_bytes()) if m.get("Event")]


def replay(attempt: CallbackAttempt, trace: str) -> list[tuple[str, ...]]:
    attempt.sent()
    return [out for out in (attempt.event(m) for m in events(trace)) if out]


# Each recorded callback, the ids the dialer would have given its Originate, and what the
# attempt's outcome is. ``channel_id`` None: a trace recorded without ChannelId, followed
# from its OriginateResponse (by ActionID) on. The 08-failed-* traces were recorded
# customer first (the customer's number is the first leg): read as the dialer's
# operator-first attempt, a first leg that fails is the operator's (SPEC-10's table).
CASES = [
    # trace, channel_id, action_id, outcome, final state
    ("07-callback-originate-answered.ami", None, "callback-42", "answered", ENDED),
    (
        "07-callback-originate-answered-channelid.ami",
        "cti-callback-48",
        "callback-48",
        "answered",
        ENDED,
    ),
    ("08-callback-originate-customer-busy.ami", None, "callback-cust-busy", "busy", ENDED),
    (
        "08-callback-originate-failed-busy-channelid.ami",
        "cti-callback-49",
        "callback-busy-49",
        "operator_unavailable",
        ENDED,
    ),
    ("08-callback-originate-failed-busy.ami", None, "callback-busy", "operator_unavailable", ENDED),
    (
        "08-callback-originate-failed-congestion.ami",
        None,
        "callback-congestion",
        "operator_unavailable",
        ENDED,
    ),
    (
        "08-callback-originate-failed-noanswer.ami",
        None,
        "callback-noanswer",
        "operator_no_answer",
        ENDED,
    ),
    (
        "08-callback-originate-failed-invalid.ami",
        None,
        "callback-badtech",
        "operator_unavailable",
        ENDED,
    ),
    (
        "08-callback-originate-failed-invalid.ami",
        None,
        "callback-noexten",
        "operator_unavailable",
        ENDED,
    ),
    (
        "08-callback-originate-failed-operator-noanswer.ami",
        None,
        "callback-op-noanswer",
        "operator_no_answer",
        ENDED,
    ),
    ("pjsip/05-callback-originate-answered.ami", None, "callback-42", "answered", ENDED),
    ("pjsip/06-callback-originate-customer-busy.ami", None, "callback-42", "busy", ENDED),
    (
        "pjsip/06b-callback-originate-operator-no-answer.ami",
        None,
        "callback-42",
        "operator_no_answer",
        ENDED,
    ),
]


@pytest.mark.parametrize(
    ("trace", "channel_id", "action_id", "outcome", "final"),
    CASES,
    ids=[f"{c[0]}:{c[2]}" for c in CASES],
)
def test_each_recorded_callback_ends_with_its_outcome(
    trace: str, channel_id: str | None, action_id: str, outcome: str, final: str
) -> None:
    attempt = CallbackAttempt(42, 1, channel_id=channel_id, action_id=action_id)
    outputs = replay(attempt, trace)
    assert attempt.outcome == outcome
    assert attempt.state == final
    assert outputs.count((OUTCOME,)) == 1  # one outcome, never a second
    assert attempt.detail is None or "\n" not in attempt.detail


@pytest.mark.parametrize(
    ("trace", "channel_id", "outcome"),
    [
        ("07-callback-originate-answered-channelid.ami", "cti-callback-48", "answered"),
        (
            "08-callback-originate-failed-busy-channelid.ami",
            "cti-callback-49",
            "operator_unavailable",
        ),
    ],
)
def test_a_channel_id_trace_is_followed_by_its_channel_id_alone(
    trace: str, channel_id: str, outcome: str
) -> None:
    # No ActionID: the OriginateResponse is not recognised, the channel's events decide.
    attempt = CallbackAttempt(48, 1, channel_id=channel_id, action_id=None)
    replay(attempt, trace)
    assert attempt.outcome == outcome
    assert attempt.state == ENDED


@pytest.mark.parametrize(
    ("trace", "action_id", "outcome"),
    [
        ("07-callback-originate-answered.ami", "callback-42", "answered"),
        ("pjsip/06-callback-originate-customer-busy.ami", "callback-42", "busy"),
    ],
)
def test_a_pbx_that_ignored_the_channel_id_is_followed_by_the_originate_response(
    trace: str, action_id: str, outcome: str
) -> None:
    attempt = CallbackAttempt(42, 1, channel_id="cti-callback-ours", action_id=action_id)
    replay(attempt, trace)
    assert attempt.outcome == outcome
    assert attempt.first_leg != "cti-callback-ours"


def test_the_channel_id_trace_passes_through_every_phase_in_order() -> None:
    attempt = CallbackAttempt(48, 1, channel_id="cti-callback-48", action_id="callback-48")
    attempt.sent()
    seen = [attempt.state]
    for msg in events("07-callback-originate-answered-channelid.ami"):
        attempt.event(msg)
        if attempt.state != seen[-1]:
            seen.append(attempt.state)
    assert seen == [
        ORIGINATING,
        OPERATOR_RINGING,
        OPERATOR_ANSWERED,
        CUSTOMER_DIALLING,
        TALKING,
        ENDED,
    ]


def test_the_outcome_is_known_when_the_customer_answers_not_at_the_hang_up() -> None:
    attempt = CallbackAttempt(48, 1, channel_id="cti-callback-48", action_id="callback-48")
    attempt.sent()
    trace = events("07-callback-originate-answered-channelid.ami")
    at = next(
        i
        for i, m in enumerate(trace)
        if m.get("Event") == "DialEnd" and m.get("Uniqueid") == "cti-callback-48"
    )
    for msg in trace[:at]:
        assert attempt.event(msg) != (OUTCOME,)
    assert attempt.event(trace[at]) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (TALKING, "answered")


def test_another_calls_events_change_nothing() -> None:
    attempt = CallbackAttempt(7, 1, channel_id="cti-someone-else", action_id="cti-originate-x")
    attempt.sent()
    for trace in ("01-queue-answered.ami", "07-callback-originate-answered-channelid.ami"):
        for msg in events(trace):
            assert attempt.event(msg) == ()
    assert attempt.state == ORIGINATING


# -- the table's corners, one input at a time -------------------------------------------------

LEG = "cti-leg"


def msg(**headers: str) -> Message:
    return Message(headers)


def customer_dial(event: str, status: str = "") -> Message:
    extra = {"DialStatus": status} if status else {}
    return msg(
        Event=event,
        Channel="PJSIP/1001-1",
        Uniqueid=LEG,
        Linkedid=LEG,
        DestChannel="PJSIP/pstn-2",
        DestUniqueid="17.2",
        DestLinkedid=LEG,
        **extra,
    )


def hangup(cause: str) -> Message:
    return msg(Event="Hangup", Channel="PJSIP/1001-1", Uniqueid=LEG, Linkedid=LEG, Cause=cause)


def answered_attempt() -> CallbackAttempt:
    attempt = CallbackAttempt(1, 2, channel_id=LEG, action_id="a-1")
    attempt.sent()
    attempt.originate_result(True, 4, LEG)
    assert attempt.state == OPERATOR_ANSWERED
    return attempt


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("BUSY", "busy"),
        ("CANCEL", "cancelled"),
        ("CONGESTION", "failed"),
        ("CHANUNAVAIL", "failed"),
        ("SOMETHINGNEW", "failed"),
    ],
)
def test_the_customers_dial_end_says_the_outcome(status: str, outcome: str) -> None:
    attempt = answered_attempt()
    attempt.event(customer_dial("DialBegin"))
    assert attempt.state == CUSTOMER_DIALLING
    assert attempt.event(customer_dial("DialEnd", status)) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (ENDED, outcome)
    assert status in (attempt.detail or "")


def customer_hangup(cause: str) -> Message:
    return msg(Event="Hangup", Channel="PJSIP/pstn-2", Uniqueid="17.2", Linkedid=LEG, Cause=cause)


@pytest.mark.parametrize(
    ("cause", "outcome", "said"),
    [
        ("19", "no_answer", "NOANSWER"),  # rang out
        ("16", "no_answer", "NOANSWER"),  # the Dial's own timeout
        ("1", "failed", "cause 1 (unallocated number)"),  # a trunk's SIP 404
        ("28", "failed", "cause 28 (invalid number format)"),
    ],
)
def test_a_customers_no_answer_waits_for_the_customer_legs_cause(
    cause: str, outcome: str, said: str
) -> None:
    # Asterisk's DialEnd says NOANSWER for a customer who let it ring out and for a
    # number that does not exist (a 404): only the customer leg's Hangup cause differs.
    attempt = answered_attempt()
    attempt.event(customer_dial("DialBegin"))
    assert attempt.event(customer_dial("DialEnd", "NOANSWER")) == ()
    assert (attempt.state, attempt.outcome) == (CUSTOMER_DIALLING, None)
    assert attempt.event(customer_hangup(cause)) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (ENDED, outcome)
    assert said in (attempt.detail or "")


def test_a_no_answer_whose_customer_hangup_was_missed_is_no_answer_at_the_first_legs_end() -> None:
    attempt = answered_attempt()
    attempt.event(customer_dial("DialBegin"))
    attempt.event(customer_dial("DialEnd", "NOANSWER"))
    # The first leg's own cause (1 here) is not the customer's: it proves nothing.
    assert attempt.event(hangup("1")) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (ENDED, "no_answer")


def test_a_call_that_ends_without_a_customer_dial_failed() -> None:
    # Operator answered, the callback context had no such number: hang-up, no DialBegin.
    attempt = answered_attempt()
    assert attempt.event(hangup("16")) == (OUTCOME,)
    assert attempt.outcome == "failed"
    assert "callback context" in (attempt.detail or "")


def test_a_hang_up_while_the_customer_rings_is_cancelled() -> None:
    attempt = answered_attempt()
    attempt.event(customer_dial("DialBegin"))
    attempt.event(hangup("16"))
    assert (attempt.state, attempt.outcome) == (ENDED, "cancelled")


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [("19", "operator_no_answer"), ("18", "operator_no_answer"), ("17", "operator_unavailable")],
)
def test_the_operators_leg_hanging_up_unanswered_uses_its_cause(cause: str, outcome: str) -> None:
    # As after a restart: no OriginateResponse will come on the new link.
    attempt = CallbackAttempt.resumed(1, 2, channel_id=LEG, action_id="a-1")
    attempt.found(msg(Event="Status", Uniqueid=LEG, ChannelState="5"))
    assert attempt.state == OPERATOR_RINGING
    attempt.event(hangup(cause))
    assert attempt.outcome == outcome


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        (3, "operator_no_answer"),
        (5, "operator_unavailable"),
        (8, "operator_unavailable"),
        (0, "operator_unavailable"),
        (1, "operator_unavailable"),
        (None, "operator_unavailable"),
    ],
)
def test_originate_failure_reasons(reason: int | None, outcome: str) -> None:
    attempt = CallbackAttempt(1, 1, channel_id=LEG, action_id="a-1")
    attempt.sent()
    assert attempt.originate_result(False, reason, None) == (OUTCOME,)
    assert attempt.outcome == outcome


def test_not_sent_is_cancelled_and_refused_is_failed() -> None:
    not_sent = CallbackAttempt(1, 1, channel_id=LEG)
    not_sent.sent()
    assert not_sent.originate_failed("not_sent", "link down") == (OUTCOME,)
    assert (not_sent.outcome, not_sent.detail) == ("cancelled", "not sent")
    refused = CallbackAttempt(1, 1, channel_id=LEG)
    refused.sent()
    assert refused.originate_failed("refused", "Extension does not exist.") == (OUTCOME,)
    assert refused.outcome == "failed"
    assert "Extension does not exist." in (refused.detail or "")


def test_an_unknown_outcome_asks_the_pbx_and_its_answer_decides() -> None:
    attempt = CallbackAttempt(1, 1, channel_id=LEG, action_id="a-1")
    attempt.sent()
    assert attempt.originate_failed("outcome_unknown", "the link dropped") == (RESOLVE,)
    assert attempt.state == ORIGINATING
    # Still there and dialling the customer: follow on.
    assert attempt.found(msg(Uniqueid=LEG, ChannelState="6", Application="Dial")) == ()
    assert attempt.state == CUSTOMER_DIALLING
    assert attempt.found(None) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (ENDED, "unknown")


def test_found_bridged_is_answered_and_a_late_gone_changes_nothing() -> None:
    attempt = CallbackAttempt.resumed(1, 1, channel_id=LEG, action_id=None)
    assert attempt.found(msg(Uniqueid=LEG, ChannelState="6", BridgeID="b-1")) == (OUTCOME,)
    assert (attempt.state, attempt.outcome) == (TALKING, "answered")
    assert attempt.found(None) == ()
    assert (attempt.state, attempt.outcome) == (ENDED, "answered")


def test_a_late_originate_response_changes_nothing() -> None:
    attempt = answered_attempt()
    attempt.event(customer_dial("DialBegin"))
    attempt.event(customer_dial("DialEnd", "BUSY"))
    assert attempt.originate_result(True, 4, LEG) == ()
    assert attempt.originate_result(False, 3, None) == ()
    assert attempt.outcome == "busy"


def test_every_state_and_outcome_of_the_table_is_a_known_one() -> None:
    for (state, _), transition in TRANSITIONS.items():
        assert state in STATES and transition.to in STATES
        if transition.outcome is not None:
            assert transition.outcome in ATTEMPT_OUTCOMES
    assert not any(state == ENDED for state, _ in TRANSITIONS)  # the end is the end
    assert {t.to for t in TRANSITIONS.values()} >= set(STATES) - {CLAIMED}


def test_find_call_by_channel_id_then_linkedid_then_variables() -> None:
    first = msg(Uniqueid=LEG, Linkedid=LEG, Channel="PJSIP/1001-1")
    customer = msg(Uniqueid="17.2", Linkedid=LEG, Channel="PJSIP/pstn-2")
    tagged = Message({"Uniqueid": "99.1", "Linkedid": "99.1"})
    tagged.multi = {"Variable": ["CTI_AGREEMENT_ID=5", "CTI_ATTEMPT=2"]}
    other = Message({"Uniqueid": "98.1", "Linkedid": "98.1"})
    other.multi = {"Variable": ["CTI_AGREEMENT_ID=5", "CTI_ATTEMPT=1"]}
    items = [customer, other, tagged, first]
    assert find_call(items, channel_id=LEG, agreement_id=5, number=2) is first
    assert find_call([customer, tagged], channel_id=LEG, agreement_id=5, number=2) is customer
    assert find_call([other, tagged], channel_id="gone", agreement_id=5, number=2) is tagged
    assert find_call([other], channel_id=None, agreement_id=5, number=2) is None


def test_a_call_found_by_its_variables_is_followed_by_its_linkedid() -> None:
    attempt = CallbackAttempt.resumed(5, 2, channel_id="ignored-by-the-pbx", action_id=None)
    item = Message({"Uniqueid": "99.1", "Linkedid": "99.1", "ChannelState": "6"})
    item.multi = {"Variable": ["CTI_AGREEMENT_ID=5", "CTI_ATTEMPT=2"]}
    assert find_call([item], channel_id="ignored-by-the-pbx", agreement_id=5, number=2) is item
    attempt.found(item)
    assert attempt.state == OPERATOR_ANSWERED
    attempt.event(msg(Event="Hangup", Uniqueid="99.1", Linkedid="99.1", Cause="16"))
    assert (attempt.state, attempt.outcome) == (ENDED, "failed")
