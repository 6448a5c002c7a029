"""The parser's event filter: it skips only what nobody wants, and skips it unread.

The filter decides from an event's first line (and a ``VarSet``'s ``Variable`` line)
without building the message, so here its decisions are held to the built messages:
on generated streams - forged-looking lines, ``Variable:X`` without a space,
``Variable:X: Y`` (whose header is not ``Variable``), repeats, ``ActionID`` anywhere,
bare LF, cp1252, cut anywhere - the filtered parse must be the unfiltered one minus
messages the filter may drop, and never minus one it must keep. On the recorded traces
(Asterisk's own framing) it must drop exactly the unwanted ones.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_bridge.ami.parser import AMIParser, EventFilter, Message, parse_stream
from tests.support.paths import TRACES

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

MODEL_LIKE = EventFilter(
    frozenset({"Hangup", "VarSet", "FullyBooted"}), frozenset({"QUEUESTATUS", "CTI_*"})
)
FILTERS = [
    MODEL_LIKE,
    EventFilter(frozenset({"Hangup"})),  # no VarSet at all
    EventFilter(frozenset({"VarSet"})),  # every VarSet
    EventFilter(frozenset({"VarSet"}), frozenset({"CTI_AGREEMENT_ID"})),
    EventFilter(frozenset()),
]

# A message as fields, repeated headers, malformed lines (what the parsers compare on).
Parsed = tuple[dict[str, str], dict[str, list[str]] | None, list[str] | None]


def parse(stream: bytes, cuts: list[int], wanted: EventFilter | None) -> list[Parsed]:
    return parse_counting(stream, cuts, wanted)[0]


def parse_counting(
    stream: bytes, cuts: list[int], wanted: EventFilter | None
) -> tuple[list[Parsed], int]:
    parser = AMIParser(wanted=wanted)
    msgs: list[Message] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        msgs.extend(parser.feed(stream[start:cut]))
        start = cut
    return [(dict(m), m.multi, m.malformed) for m in msgs], parser.skipped


def droppable(msg: dict[str, str], wanted: EventFilter) -> bool:
    """The contract: only events without an ActionID that the filter does not want."""
    return (
        "Event" in msg
        and "ActionID" not in msg
        and not wanted.wants(msg["Event"], msg.get("Variable"))
    )


def check(full: list[Parsed], kept: list[Parsed], wanted: EventFilter) -> list[Parsed]:
    """``kept`` is ``full`` in order minus droppable messages; returns the dropped ones."""
    dropped = []
    rest = iter(kept)
    following = next(rest, None)
    for msg in full:
        if msg == following:
            following = next(rest, None)
            continue
        assert droppable(msg[0], wanted), f"kept message dropped: {msg[0]}"
        dropped.append(msg)
    assert following is None, f"message not in the unfiltered parse: {following}"
    return dropped


first_lines = st.sampled_from(
    [
        "Event: VarSet",
        "Event: Hangup",
        "Event: Newexten",
        "Event: FullyBooted",
        "Event:VarSet",
        "Event: VarSet: x",
        "Event: ",
        "Response: Success",
        "Variable: CTI_X",
        "",
    ]
)
names = st.sampled_from(["Channel", "Variable", "Value", "ActionID", "Event", "X-Y"])
values = st.sampled_from(
    ["", "QUEUESTATUS", "CTI_AGREEMENT_ID", "CTI_", "BRIDGEPEER", "x: y", "Zoë ☎", "a\nb", "7"]
)
other_lines = st.one_of(
    st.tuples(names, values).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.sampled_from(
        [
            "Variable:CTI_X",
            "Variable:QUEUESTATUS: x",
            "Variable:  CTI_X",
            "ActionID:12",
            "Variable : CTI_X",
            "no colon",
            "",
        ]
    ),
)
messages = st.tuples(first_lines, st.lists(other_lines, max_size=6)).map(
    lambda fl: "\n".join([fl[0], *fl[1]])
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    parts = []
    crlf = draw(st.sampled_from(["crlf", "lf", "mixed"]))
    encoding = draw(st.sampled_from(["utf-8", "cp1252"]))
    for text in draw(st.lists(messages, min_size=1, max_size=8)):
        raw = text.encode(encoding, "replace") + b"\n\n" + b"\n" * draw(st.integers(0, 1))
        if crlf == "crlf" or (crlf == "mixed" and draw(st.booleans())):
            raw = raw.replace(b"\n", b"\r\n")
        parts.append(raw)
    stream = BANNER + b"".join(parts)
    return stream, draw(st.lists(st.integers(0, len(stream)), max_size=4))


@settings(max_examples=500, deadline=None)
@given(streams(), st.sampled_from(FILTERS))
def test_the_filter_drops_only_what_nobody_wants(
    case: tuple[bytes, list[int]], wanted: EventFilter
) -> None:
    stream, cuts = case
    full = parse(stream, cuts, None)
    kept, skipped = parse_counting(stream, cuts, wanted)
    assert skipped == len(check(full, kept, wanted))


def test_varset_is_judged_by_its_first_variable_header() -> None:
    stream = BANNER + (
        b"Event: VarSet\r\nVariable:QUEUESTATUS: x\r\nVariable: BRIDGEPEER\r\n\r\n"
        b"Event: VarSet\r\nVariable:CTI_X\r\n\r\n"
        b"Event: VarSet\r\nValue: 1\r\nVariable: QUEUESTATUS\r\nVariable: FOO\r\n\r\n"
        b"Event: VarSet\r\nVariable: FOO\r\nVariable: QUEUESTATUS\r\n\r\n"
        b"Event: VarSet\r\nValue: no variable\r\n\r\n"
    )
    kept = parse(stream, [], MODEL_LIKE)
    assert [m[0].get("Variable") for m in kept] == ["CTI_X", "QUEUESTATUS"]


def test_events_with_an_action_id_and_responses_are_never_skipped() -> None:
    stream = BANNER + (
        b"Response: Success\r\nActionID: 1\r\n\r\n"
        b"Event: QueueMember\r\nQueue: support\r\nActionID: 2\r\n\r\n"
        b"Event: OriginateResponse\r\nActionID: cb-42\r\nResponse: Failure\r\n\r\n"
        b"Event: DeviceStateChange\r\nDevice: PJSIP/1001\r\n\r\n"
    )
    parser = AMIParser(wanted=EventFilter(frozenset()))
    kept = parser.feed(stream)
    assert [m.get("Event") or m.get("Response") for m in kept] == [
        "Success",
        "QueueMember",
        "OriginateResponse",
    ]
    assert parser.skipped == 1


def test_the_filter_can_change_between_reads() -> None:
    parser = AMIParser(wanted=EventFilter(frozenset({"Hangup"})))
    assert [m.event for m in parser.feed(BANNER + b"Event: Newexten\r\n\r\nEvent: Hang")] == []
    parser.wanted = None
    assert [m.event for m in parser.feed(b"up\r\n\r\nEvent: Newexten\r\n\r\n")] == [
        "Hangup",
        "Newexten",
    ]
    assert parser.skipped == 1


def test_a_skipped_event_with_a_bare_lf_is_framed_like_before() -> None:
    # Bare LF: the read falls back to the general path, which must skip alike.
    stream = BANNER + b"Event: Newexten\r\nAppData: a\nb\r\n\r\nEvent: Hangup\r\nX: 1\r\n\r\n"
    assert parse(stream, [], EventFilter(frozenset({"Hangup"}))) == [
        ({"Event": "Hangup", "X": "1"}, None, None)
    ]


def test_wants_is_the_reference() -> None:
    assert MODEL_LIKE.wants("Hangup")
    assert not MODEL_LIKE.wants("Newexten")
    assert not MODEL_LIKE.wants(None)
    assert MODEL_LIKE.wants("VarSet", "QUEUESTATUS")
    assert MODEL_LIKE.wants("VarSet", "CTI_")
    assert not MODEL_LIKE.wants("VarSet", "QUEUESTATUS2")
    assert not MODEL_LIKE.wants("VarSet", "cti_x")
    assert not MODEL_LIKE.wants("VarSet", None)
    assert EventFilter(frozenset({"VarSet"})).wants("VarSet", "ANY")


ALL_TRACES = sorted(str(p.relative_to(TRACES)) for p in TRACES.rglob("*.ami"))


@pytest.mark.parametrize("name", ALL_TRACES)
def test_on_recorded_traces_exactly_the_unwanted_events_are_dropped(name: str) -> None:
    data = (TRACES / name).read_bytes()
    full = [(dict(m), m.multi, m.malformed) for m in parse_stream(data)]
    cuts = list(range(1400, len(data), 1400))  # TCP-sized reads
    kept, skipped = parse_counting(data, cuts, MODEL_LIKE)
    dropped = check(full, kept, MODEL_LIKE)
    assert skipped == len(dropped) == sum(droppable(m[0], MODEL_LIKE) for m in full)
