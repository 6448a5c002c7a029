"""Every recorded Asterisk 22 trace parses completely, also when it arrives in pieces.

The counts are the recording notes' tables (the shared ``ami-traces/README.md``
"Event/message counts" and ``timestamped/`` tables, ``pjsip/README.md`` "Event counts"),
copied here so the suite runs on a fresh clone: messages, events (messages starting with
``Event:``, forged ones included) and responses.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cti_bridge.ami.parser import AMIParser, Message, parse_stream
from tests.support.paths import TRACES

#: trace -> (bytes, messages, events, responses)
COUNTS: dict[str, tuple[int, int, int, int]] = {
    "01-queue-answered.ami": (53866, 135, 133, 2),
    "02-queue-abandoned.ami": (48628, 127, 125, 2),
    "03-ring-no-answer-then-answered.ami": (56743, 139, 137, 2),
    "04-direct-call.ami": (39286, 105, 103, 2),
    "05-blind-transfer.ami": (85790, 218, 215, 3),
    "05-blind-transfer-redirect.ami": (82549, 213, 210, 3),
    "06-attended-transfer.ami": (108731, 278, 275, 3),
    "07-callback-originate-answered.ami": (43970, 114, 111, 3),
    "07-callback-originate-answered-channelid.ami": (43265, 112, 109, 3),
    "08-callback-originate-customer-busy.ami": (30282, 81, 78, 3),
    "08-callback-originate-failed-busy.ami": (9339, 28, 25, 3),
    "08-callback-originate-failed-busy-channelid.ami": (9408, 28, 25, 3),
    "08-callback-originate-failed-congestion.ami": (9333, 28, 25, 3),
    "08-callback-originate-failed-invalid.ami": (4249, 17, 13, 4),
    "08-callback-originate-failed-noanswer.ami": (9772, 29, 26, 3),
    "08-callback-originate-failed-operator-noanswer.ami": (11510, 34, 31, 3),
    "09-queue-status.ami": (83003, 200, 188, 12),
    "10-agent-pause.ami": (5814, 33, 20, 13),
    "11-restart-shutdown.ami": (91372, 239, 237, 2),
    "11-restart-reconnect.ami": (4754, 32, 28, 4),
    "12-burst.ami": (1296206, 3345, 3343, 2),
    "13-hostile-callerid.ami": (375104, 903, 897, 6),
    "13-hostile-callerid-crlf-injection.ami": (69537, 156, 153, 3),
    "14-login-failure.ami": (178, 2, 0, 2),
    "14-login-md5-challenge.ami": (753, 6, 2, 4),
    "14-login-security-events.ami": (1567, 7, 5, 2),
    # pjsip/README.md "Event counts": messages = events + Login + Logoff (+ Originate).
    "pjsip/01-queue-answered.ami": (45002, 120, 118, 2),
    "pjsip/02-queue-busy-then-answered.ami": (41668, 106, 104, 2),
    "pjsip/03-queue-abandoned.ami": (49514, 135, 133, 2),
    "pjsip/04-direct-call.ami": (39808, 106, 104, 2),
    "pjsip/04b-direct-call-no-answer.ami": (19717, 62, 60, 2),
    "pjsip/05-callback-originate-answered.ami": (45972, 118, 115, 3),
    "pjsip/06-callback-originate-customer-busy.ami": (22959, 64, 61, 3),
    "pjsip/06b-callback-originate-operator-no-answer.ami": (9283, 34, 31, 3),
    "pjsip/07-operator-unreachable.ami": (39917, 113, 111, 2),
    "pjsip/07b-operator-gone-before-qualify.ami": (45323, 126, 124, 2),
    "timestamped/01-queue-answered.ami": (59451, 143, 141, 2),
    "timestamped/02-queue-abandoned.ami": (52066, 127, 125, 2),
    "timestamped/03-ring-no-answer-then-answered.ami": (60513, 139, 137, 2),
    "timestamped/04-direct-call.ami": (42138, 105, 103, 2),
    "timestamped/05-blind-transfer.ami": (91759, 218, 215, 3),
    "timestamped/06-attended-transfer.ami": (116409, 278, 275, 3),
    "timestamped/07-callback-originate-answered.ami": (47050, 114, 111, 3),
    "timestamped/08-callback-originate-customer-busy.ami": (32434, 81, 78, 3),
    "timestamped/12-burst.ami": (1401614, 3358, 3356, 2),
}

_cache: dict[str, list[Message]] = {}


def load(name: str) -> list[Message]:
    if name not in _cache:
        _cache[name] = parse_stream((TRACES / name).read_bytes())
    return _cache[name]


def canon(msgs: list[Message]) -> list[tuple[dict[str, str], object, object]]:
    """Everything a message holds, for comparing two parses."""
    return [(dict(m), m.multi, m.malformed) for m in msgs]


def test_every_trace_file_is_listed() -> None:
    on_disk = {str(p.relative_to(TRACES)) for p in TRACES.rglob("*.ami")}
    assert on_disk == set(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_trace_parses_completely(name: str) -> None:
    size, messages, events, responses = COUNTS[name]
    data = (TRACES / name).read_bytes()
    assert len(data) == size
    parser = AMIParser()
    msgs = parser.feed(data)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert parser.buffered == 0, "bytes left over: the last message did not end"
    assert len(msgs) == messages
    assert sum(next(iter(m)) == "Event" for m in msgs) == events
    assert sum(next(iter(m)) == "Response" for m in msgs) == responses
    assert not any(m.malformed for m in msgs)


def n(name: str, number: int) -> Message:
    """Message ``#number`` as the READMEs count them (banner removed, from 1)."""
    return load(name)[number - 1]


def test_01_queue_call_facts() -> None:
    t = "01-queue-answered.ami"
    assert n(t, 1)["Message"] == "Authentication accepted"
    join = n(t, 32)
    assert (join.event, join["Position"], join["Count"]) == ("QueueCallerJoin", "1", "1")
    assert join["CallerIDName"] == "Jan Peeters"
    connect = n(t, 95)
    assert connect.event == "AgentConnect"
    assert (connect["HoldTime"], connect["RingTime"], connect["MemberName"]) == ("2", "2", "Anna")
    assert n(t, 89)["Cause"] == "26"


def test_03_ring_no_answer_is_in_milliseconds() -> None:
    rna = n("03-ring-no-answer-then-answered.ami", 59)
    assert (rna.event, rna["RingTime"]) == ("AgentRingNoAnswer", "6000")


def test_04_direct_dial_string() -> None:
    dial = n("04-direct-call.ami", 47)
    assert (dial.event, dial["DialString"]) == ("DialBegin", "1001@agents/n")


def test_07_originate_response_correlates_by_action_id() -> None:
    t = "07-callback-originate-answered.ami"
    assert n(t, 4)["Message"] == "Originate successfully queued"
    resp = n(t, 34)
    assert resp.event == "OriginateResponse"
    assert (resp["Response"], resp["Reason"], resp.action_id) == ("Success", "4", "callback-42")
    assert n(t, 8).event == "VarSet"


def test_08_failed_originate_has_unknown_uniqueid() -> None:
    resp = n("08-callback-originate-failed-busy.ami", 24)
    assert (resp["Response"], resp["Reason"], resp["Uniqueid"]) == ("Failure", "5", "<unknown>")


def test_09_lists_and_command_output() -> None:
    t = "09-queue-status.ami"
    start = n(t, 114)
    assert (start.action_id, start["EventList"]) == ("qstatus-1", "start")
    complete = n(t, 122)
    assert complete.event == "QueueStatusComplete"
    assert (complete["EventList"], complete["ListItems"]) == ("Complete", "7")
    bart = n(t, 117)
    assert (bart.event, bart["Paused"], bart["PausedReason"]) == ("QueueMember", "1", "Opleiding")
    assert n(t, 118).event == "QueueEntry"
    assert n(t, 140)["ListItems"] == "6"
    assert n(t, 142)["Privilege"] == "Call"
    command = n(t, 149)
    assert command["Message"] == "Command output follows"
    assert len(command.getall("Output")) > 3
    assert any("active channel" in line for line in command.getall("Output"))
    assert n(t, 152)["Ping"] == "Pong"


def test_10_error_responses() -> None:
    t = "10-agent-pause.ami"
    errors = [m["Message"] for m in load(t) if m.get("Response") == "Error"]
    assert errors == [
        "Unable to remove interface: Not there",
        "Interface not found",
        "Unable to add interface to queue: No such queue",
    ]


def test_11_shutdown_and_reconnect() -> None:
    last = load("11-restart-shutdown.ami")[-1]
    assert (last.event, last["Shutdown"], last["Restart"]) == ("Shutdown", "Cleanly", "True")
    booted = n("11-restart-reconnect.ami", 21)
    assert (booted.event, booted["Uptime"]) == ("FullyBooted", "0")


def test_12_burst_has_forty_callers() -> None:
    msgs = load("12-burst.ami")
    assert sum(m.event == "QueueCallerJoin" for m in msgs) == 40
    assert sum(m.event == "AgentConnect" for m in msgs) == 24


def test_13_hostile_names_arrive_verbatim() -> None:
    names = {m.get("CallerIDName") for m in load("13-hostile-callerid.ami")}
    assert "<script>alert(1)</script>" in names
    assert "Zoë Müller" in names
    assert "Łódź \u2013 Ślęża ☎ 日本" in names
    assert "Event: Hangup" in names
    long_names = [x for x in names if x and len(x) == 216]
    assert len(long_names) == 1
    assert long_names[0].startswith("Vereniging van Mede-Eigenaars")
    assert long_names[0].endswith("BELGIË")
    complete = [m for m in load("13-hostile-callerid.ami") if m.event == "QueueStatusComplete"]
    assert [m["ListItems"] for m in complete] == ["11"]


def test_13_crlf_forged_messages_are_messages_of_their_own() -> None:
    t = "13-hostile-callerid-crlf-injection.ami"
    assert n(t, 24)["AppData"] == "CALLERID(name)=Piet Fraude"
    forged = n(t, 25)
    assert (forged.event, forged["Channel"]) == ("Hangup", "Local/1001@agents-00000999;1")
    truncated = n(t, 96)
    assert (truncated.event, truncated["CallerIDName"]) == ("QueueEntry", "Piet Fraude")
    assert truncated.action_id is None
    forged_item = n(t, 97)
    assert (forged_item.event, forged_item.action_id) == ("Hangup", "qstatus-crlf")
    assert n(t, 98)["ListItems"] == "4"


def test_14_login_traces() -> None:
    assert n("14-login-failure.ami", 2)["Message"] == "Authentication failed"
    assert n("14-login-md5-challenge.ami", 1)["Challenge"] == "139252470"
    assert n("14-login-security-events.ami", 5).event == "InvalidPassword"


def test_pjsip_facts() -> None:
    peer = n("pjsip/07-operator-unreachable.ami", 6)
    assert (peer.event, peer["Peer"], peer["PeerStatus"]) == (
        "PeerStatus",
        "PJSIP/1002",
        "Unreachable",
    )
    resp = n("pjsip/06b-callback-originate-operator-no-answer.ami", 27)
    assert (resp.event, resp["Reason"], resp["Channel"], resp["Uniqueid"]) == (
        "OriginateResponse",
        "3",
        "PJSIP/1001",
        "<unknown>",
    )


@pytest.mark.parametrize("name", sorted(x for x in COUNTS if x.startswith("timestamped/")))
def test_timestamped_events_all_but_login_fully_booted(name: str) -> None:
    msgs = load(name)
    without = [(i, m.event) for i, m in enumerate(msgs, 1) if m.event and "Timestamp" not in m]
    assert without == [(2, "FullyBooted")]
    assert all(list(m)[2] == "Timestamp" for m in msgs if m.event and "Timestamp" in m)


def feed_in_chunks(data: bytes, sizes: list[int]) -> list[Message]:
    parser = AMIParser()
    out: list[Message] = []
    pos = i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.extend(parser.feed(data[pos : pos + size]))
        pos += size
        i += 1
    assert parser.buffered == 0
    return out


# Small sizes split CRLFs and UTF-8 characters; large ones keep 1.3 MB traces fast.
chunk_sizes = st.lists(
    st.one_of(st.integers(1, 8), st.integers(9, 600), st.integers(601, 8000)),
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_trace_in_random_chunks_gives_the_same_messages(name: str) -> None:
    data = (TRACES / name).read_bytes()
    whole = canon(load(name))

    # @given sits on an inner function so that pytest plugins which wrap test
    # functions (pytest-twisted runs them in a reactor greenlet) never see it.
    @settings(
        max_examples=4,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(sizes=chunk_sizes)
    def same_messages(sizes: list[int]) -> None:
        assert canon(feed_in_chunks(data, sizes)) == whole

    same_messages()


def test_hostile_trace_byte_by_byte() -> None:
    # Every UTF-8 character and every CRLF of the hostile names split.
    name = "13-hostile-callerid-crlf-injection.ami"
    assert canon(feed_in_chunks((TRACES / name).read_bytes(), [1])) == canon(load(name))
