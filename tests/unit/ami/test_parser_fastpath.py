"""The parser's fast paths must give exactly what the careful path gives, for any bytes.

The fast paths (Asterisk's CRLF framing decoded a read at a time; one ``partition`` per
line) are there for speed only (bench/ami_parse.py). Here a reference built from the
careful path alone (``_parse_lines`` per message, CRLF turned into LF first) parses
generated streams - values with ": ", lines without it, repeated headers, bare LFs,
lone CRs, extra blank lines, UTF-8 and cp1252 bytes - cut into random reads.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cti_bridge.ami.parser import AMIParser, Message, _parse_lines, decode_text

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# A message as fields, repeated headers, malformed lines (what the parsers compare on).
Parsed = tuple[dict[str, str], dict[str, list[str]] | None, list[str] | None]


def reference(stream: bytes) -> list[Parsed]:
    """Careful path only: what the parser must return for a complete stream."""
    body = stream[len(BANNER) :].replace(b"\r\n", b"\n")
    out: list[Parsed] = []
    for block in body.split(b"\n\n"):
        block = block.lstrip(b"\n")  # noqa: PLW2901
        if block:
            msg = _parse_lines(decode_text(block).split("\n"), follows=False)
            out.append((dict(msg), msg.multi, msg.malformed))
    return out


def parsed(stream: bytes, cuts: list[int]) -> list[Parsed]:
    parser = AMIParser()
    msgs: list[Message] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        msgs.extend(parser.feed(stream[start:cut]))
        start = cut
    assert parser.buffered <= 4  # at most extra blank lines wait
    return [(dict(m), m.multi, m.malformed) for m in msgs]


names = st.sampled_from(["Event", "Channel", "Uniqueid", "CallerIDName", "Variable", "X-Y"])
values = st.sampled_from(
    ["", "1", "a: b", "a:b", ": ", "Zoë ☎", "x\ny", "x\ry", " sp ", "Local/1001@agents;2"]
)
line = st.one_of(
    st.tuples(names, values).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.sampled_from(["no colon here", "Uptime:12", "--END COMMAND--", ""]),
)
message = st.lists(line, min_size=1, max_size=8).map("\n".join)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    messages = draw(st.lists(message, min_size=1, max_size=6))
    crlf = draw(st.sampled_from(["crlf", "lf", "mixed"]))
    encoding = draw(st.sampled_from(["utf-8", "cp1252"]))
    parts = []
    for text in messages:
        raw = text.encode(encoding, "replace") + b"\n\n" + b"\n" * draw(st.integers(0, 2))
        if crlf == "crlf" or (crlf == "mixed" and draw(st.booleans())):
            raw = raw.replace(b"\n", b"\r\n")
        parts.append(raw)
    stream = BANNER + b"".join(parts)
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=5))
    return stream, cuts


@settings(max_examples=400, deadline=None)
@given(streams())
def test_fast_paths_agree_with_the_careful_path(case: tuple[bytes, list[int]]) -> None:
    stream, cuts = case
    assert parsed(stream, cuts) == reference(stream)


def test_asterisk_framing_with_a_bare_lf_in_a_value_splits_it_like_before() -> None:
    # A bare LF is a line break wherever it is (as the careful path has it).
    stream = BANNER + b"Event: A\r\nCallerIDName: x\ny: z\r\n\r\nEvent: B\r\n\r\n"
    assert parsed(stream, []) == reference(stream)
    assert parsed(stream, [])[0][0] == {"Event": "A", "CallerIDName": "x", "y": "z"}


def test_crlf_read_followed_by_a_complete_lf_message_is_not_held_back() -> None:
    stream = BANNER + b"Event: A\r\n\r\nEvent: B\n\n"
    assert [m[0]["Event"] for m in parsed(stream, [])] == ["A", "B"]


def test_undecodable_read_falls_back_per_message() -> None:
    stream = BANNER + b"Event: A\r\nName: \xe9\r\n\r\nEvent: B\r\nName: \xc3\xa9\r\n\r\n"
    (a, _, _), (b, _, _) = parsed(stream, [])
    assert a["Name"] == "é"
    assert b["Name"] == "é"
