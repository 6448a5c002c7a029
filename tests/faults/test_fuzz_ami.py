"""Malformed AMI (issue 13): the recorded traces mutated byte-wise, random bytes and
random AMI-shaped frames, through the link's protocol into the call model.

What is injected: every trace of ``tests/fixtures/ami-traces`` (the PJSIP and
timestamped ones too; the 1.3 MB bursts cut to their first 128 KiB) with bytes flipped,
inserted, deleted and duplicated, fed in reads split at random points; random bytes;
and random frames built from the model's own event names and a small pool of channels,
so that they reach its handlers instead of being turned away as unknown.

What must survive:

- nothing raises out of ``AMIProtocol.dataReceived`` (a framing error drops the link,
  as designed), and no event handler raises either (the protocol would log and go on:
  here that is a failure);
- the model stays consistent: every channel belongs to exactly one live call, under its
  own Linkedid, and that call lists it; no live call is among the ended ones; per
  Linkedid one ``CallStarted`` first and at most one ``CallEnded`` last, ever; every
  ``RingEnded`` closes a ring that was opened; a shutdown afterwards leaves nothing;
- the parser's memory is bounded: what it buffers never passes ``MAX_MESSAGE_BYTES``,
  and a message over ``MAX_HEADERS`` lines or ``MAX_MESSAGE_BYTES`` is dropped unbuilt
  and logged (``ami_message_dropped``), the stream going on after it.

Bounded for CI: a few hundred examples in all, well under a minute on one core.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from cti_bridge.ami.parser import MAX_HEADERS, MAX_MESSAGE_BYTES, AMIParser, FramingError
from cti_bridge.ami.protocol import AMIProtocol
from cti_bridge.calls.events import CallEnded, CallStarted, DomainEvent, OperatorRinging, RingEnded
from cti_bridge.calls.handlers import CONSUMED_EVENTS
from cti_bridge.calls.model import CallModel
from tests.support.paths import TRACES
from tests.support.reliability import record

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
WINDOW = 128 * 1024


@cache
def traces() -> dict[str, bytes]:
    found = {
        str(path.relative_to(TRACES)): path.read_bytes()[:WINDOW]
        for path in sorted(TRACES.rglob("*.ami"))
    }
    assert len(found) > 30
    return found


# -- feeding ---------------------------------------------------------------------------------


@dataclass
class Link:
    """A link's protocol on a fake transport, its events into a call model."""

    clock: Clock = field(default_factory=Clock)
    model: CallModel = field(default_factory=lambda: CallModel("main"))
    events: list[DomainEvent] = field(default_factory=list)
    handler_errors: list[BaseException] = field(default_factory=list)
    most_buffered: int = 0

    def __post_init__(self) -> None:
        self.proto = AMIProtocol(self.clock)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.proto.on_event = self._event

    def _event(self, msg: Any, at: float) -> None:
        try:
            self.events += self.model.feed(msg, at)
        except Exception as error:  # the protocol would swallow it: a bug here
            self.handler_errors.append(error)
            raise

    def feed(self, stream: bytes, cuts: list[int]) -> None:
        """``stream`` in reads split at ``cuts``; stops where the link drops it."""
        start = 0
        for cut in [*sorted(set(cuts)), len(stream)]:
            if self.transport.disconnecting:  # the link dropped the stream
                break
            self.clock.advance(0.01)
            self.proto.dataReceived(stream[start:cut])
            self.most_buffered = max(self.most_buffered, self.proto.parser.buffered)
            start = cut


def check_model(link: Link) -> None:
    """The model's invariants, and that a shutdown leaves nothing behind."""
    assert link.handler_errors == []
    state = link.model.state
    owners: dict[str, str] = {}
    for linkedid, call in state.calls.items():
        assert call.linkedid == linkedid
        assert linkedid not in state.recently_ended, "a live call among the ended"
        for uid, channel in call.channels.items():
            assert uid not in owners, f"channel {uid} in two calls"
            owners[uid] = linkedid
            assert state.channels.get(uid) is channel
            assert channel.call is call and channel.linkedid == linkedid
        call.snapshot()  # a consistent call can always be shown
    for uid, channel in state.channels.items():
        assert channel.uniqueid == uid
        assert owners.get(uid) == channel.linkedid, f"channel {uid} belongs to no live call"
    link.events += link.model.shutdown(link.clock.seconds())
    assert link.model.state.calls == {} and link.model.state.channels == {}
    check_events(link.events)


def check_events(events: list[DomainEvent]) -> None:
    by_call: dict[str, list[DomainEvent]] = {}
    for event in events:
        by_call.setdefault(event.call.linkedid, []).append(event)
    for linkedid, mine in by_call.items():
        kinds = [type(e) for e in mine]
        assert kinds[0] is CallStarted and kinds.count(CallStarted) == 1, linkedid
        assert kinds.count(CallEnded) == 1 and kinds[-1] is CallEnded, linkedid
        ringing: set[str] = set()
        for event in mine:
            if isinstance(event, OperatorRinging):
                assert event.ring.uniqueid not in ringing
                ringing.add(event.ring.uniqueid)
            elif isinstance(event, RingEnded):
                assert event.ring.uniqueid in ringing, f"{linkedid}: RingEnded of no ring"
                ringing.discard(event.ring.uniqueid)
        assert not ringing, f"{linkedid}: rings left open at the end"


# -- mutations -------------------------------------------------------------------------------

Mutation = Callable[[bytearray, random.Random], None]


def _flip(data: bytearray, rnd: random.Random) -> None:
    if data:
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)


def _insert(data: bytearray, rnd: random.Random) -> None:
    junk = rnd.choice(
        [
            bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16))),
            b"\r\n",
            b"\r\n\r\n",
            b": ",
            b"\n",
            b"\x00",
            "é".encode(),
            b"\xff\xfe",
            b"ActionID: 1\r\n",
            b"Event: Hangup\r\n",
            b"Response: Follows\r\n",
        ]
    )
    at = rnd.randrange(len(data) + 1)
    data[at:at] = junk


def _delete(data: bytearray, rnd: random.Random) -> None:
    if data:
        at = rnd.randrange(len(data))
        del data[at : at + rnd.randint(1, 64)]


def _duplicate(data: bytearray, rnd: random.Random) -> None:
    if data:
        at = rnd.randrange(len(data))
        data[at:at] = data[at : at + rnd.randint(1, 2048)]


MUTATIONS: tuple[Mutation, ...] = (_flip, _insert, _delete, _duplicate)


@FUZZ
@given(
    name=st.sampled_from(sorted(traces())),
    seed=st.integers(0, 2**32 - 1),
    mutations=st.integers(1, 40),
    reads=st.integers(1, 30),
)
def test_mutated_traces_never_raise_nor_corrupt_the_model(
    name: str, seed: int, mutations: int, reads: int
) -> None:
    rnd = random.Random(seed)
    data = bytearray(traces()[name])
    for _ in range(mutations):
        rnd.choice(MUTATIONS)(data, rnd)
    link = Link()
    link.feed(bytes(data), [rnd.randrange(len(data) + 1) for _ in range(reads)])
    assert link.most_buffered <= MAX_MESSAGE_BYTES
    check_model(link)


@pytest.mark.parametrize("name", sorted(traces()))
def test_every_trace_split_everywhere_keeps_the_invariants(name: str) -> None:
    """The unmutated traces, in reads of 1 to 97 bytes: the reference the mutations
    are measured against (they hold on real streams, at any split)."""
    data = traces()[name]
    rnd = random.Random(name)
    cuts, at = [], 0
    while at < len(data):
        at += rnd.randint(1, 97)
        cuts.append(at)
    link = Link()
    link.feed(data, cuts)
    check_model(link)


@FUZZ
@given(st.lists(st.binary(max_size=512), max_size=40))
def test_random_bytes_never_raise(reads: list[bytes]) -> None:
    link = Link()
    stream = b"".join(reads)
    cuts = list(accumulate(len(r) for r in reads))
    link.feed(stream, cuts)
    check_model(link)


# -- random frames ---------------------------------------------------------------------------

#: Channels as (Uniqueid, Channel, Linkedid): two calls, a Local pair, a transfer target.
IDENTITIES = [
    ("1.1", "PJSIP/pstn-00000001", "1.1"),
    ("1.2", "Local/1001@agents-00000002;1", "1.1"),
    ("1.3", "Local/1001@agents-00000002;2", "1.1"),
    ("1.4", "PJSIP/1001-00000003", "1.1"),
    ("2.1", "PJSIP/1002-00000004", "2.1"),
    ("2.2", "PJSIP/pstn-00000005", "2.1"),
]
CHANNELS = [channel for _, channel, _ in IDENTITIES]
FIELDS: dict[str, st.SearchStrategy[str]] = {
    "ChannelState": st.sampled_from(["0", "4", "5", "6", "x"]),
    "Context": st.sampled_from(["from-pstn", "agents", "callback", ""]),
    "Exten": st.sampled_from(["3200", "1001", "s", ""]),
    "CallerIDNum": st.sampled_from(["+3250123456", "anonymous", "", "<unknown>"]),
    "CallerIDName": st.text(max_size=12),
    "Queue": st.sampled_from(["support", "sales"]),
    "Interface": st.sampled_from(["Local/1001@agents", "PJSIP/1002"]),
    "MemberName": st.sampled_from(["Anna", "Bart"]),
    "DialStatus": st.sampled_from(["ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION"]),
    "Cause": st.sampled_from(["16", "17", "19", "21", "0", "x"]),
    "BridgeUniqueid": st.sampled_from(["b1", "b2"]),
    "Timestamp": st.sampled_from(["1795735383.000001", "0", "-5", "1e308", "nan", "x"]),
    "Position": st.sampled_from(["1", "2", "0", "-1"]),
    "Variable": st.sampled_from(["CTI_AGREEMENT_ID", "CTI_ATTEMPT", "BRIDGEPEER", "X"]),
    "Value": st.sampled_from(["1", "2", "x", ""]),
    "ActionID": st.sampled_from(["1", "cti-1"]),
    "Response": st.sampled_from(["Success", "Failure"]),
    "Reason": st.sampled_from(["4", "5", "8", "0"]),
    "TransferTargetChannel": st.sampled_from(CHANNELS),
    "Extension": st.sampled_from(["1002", "3200"]),
}


@st.composite
def identity(draw: st.DrawFn) -> tuple[str, str, str]:
    """Mostly a channel as the PBX names it, so events reach the handlers; sometimes a
    mix of two (a contradiction the model must refuse)."""
    if draw(st.integers(0, 9)):
        return draw(st.sampled_from(IDENTITIES))
    uid, _, _ = draw(st.sampled_from(IDENTITIES))
    _, channel, linkedid = draw(st.sampled_from(IDENTITIES))
    return uid, channel, linkedid


#: Every event the model takes, the ones a call is made of more often.
EVENTS = [
    *sorted(CONSUMED_EVENTS),
    *["Newchannel"] * 6,
    *["DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "Hangup"] * 2,
    *["QueueCallerJoin", "AgentCalled", "AgentConnect", "AgentComplete"] * 2,
]


@st.composite
def frames(draw: st.DrawFn) -> dict[str, str]:
    frame = {"Event": draw(st.sampled_from(EVENTS))}
    frame["Uniqueid"], frame["Channel"], frame["Linkedid"] = draw(identity())
    if draw(st.booleans()):
        frame["DestUniqueid"], frame["DestChannel"], frame["DestLinkedid"] = draw(identity())
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=12, unique=True)):
        frame[name] = draw(FIELDS[name])
    return frame


def to_bytes(frame: dict[str, str]) -> bytes:
    text = "".join(f"{k}: {v}\r\n" for k, v in frame.items()) + "\r\n"
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.lists(frames(), max_size=60), st.integers(0, 2**32 - 1))
def test_random_frames_never_corrupt_the_model(frames: list[dict[str, str]], seed: int) -> None:
    stream = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(to_bytes(f) for f in frames)
    rnd = random.Random(seed)
    link = Link()
    link.feed(stream, [rnd.randrange(len(stream) + 1) for _ in range(8)])
    check_model(link)


# -- bounds ----------------------------------------------------------------------------------


def test_a_message_with_too_many_headers_is_dropped_and_logged() -> None:
    many = b"Event: Newchannel\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 10))
    after = b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
    link = Link()
    seen: list[Any] = []
    link.proto.on_event = lambda msg, at: seen.append(msg)
    with capture_logs() as logs:
        link.feed(b"Asterisk Call Manager/11.0.0\r\n" + many + b"\r\n" + after, [70000])
    assert [m["Event"] for m in seen] == ["FullyBooted"]
    dropped = [e for e in logs if e["event"] == "ami_message_dropped"]
    assert dropped == [
        {
            "event": "ami_message_dropped",
            "log_level": "warning",
            "reason": "too many headers",
            "first_line": "Event: Newchannel",
        }
    ]
    assert link.proto.parser.dropped_count == 1


def test_a_complete_message_over_the_byte_limit_is_dropped_alone() -> None:
    parser = AMIParser(expect_banner=False)
    huge = b"Event: UserEvent\r\nData: " + b"x" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n"
    out = parser.feed(huge + b"Event: Ping\r\n\r\n")
    assert [m["Event"] for m in out] == ["Ping"]
    assert parser.take_dropped() == [("too large", "Event: UserEvent")]


def test_an_endless_message_drops_the_link_with_a_clear_line() -> None:
    link = Link()
    with capture_logs() as logs:
        stream = b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\nData: " + b"y" * (9 << 20)
        link.feed(stream, list(range(65536, len(stream), 65536)))
    assert link.most_buffered <= MAX_MESSAGE_BYTES
    assert link.transport.disconnecting
    assert any(e["event"] == "ami_framing_error" for e in logs)
    with pytest.raises(FramingError):
        AMIParser(expect_banner=False).feed(b"Event: X\r\n" + b"z" * (MAX_MESSAGE_BYTES + 1))


def test_the_fuzz_covers_every_trace_folder() -> None:
    folders = {Path(name).parent.name for name in traces()}
    assert {"", "pjsip", "timestamped"} <= folders


# -- coverage-guided: atheris ------------------------------------------------------------------

ATHERIS_SECONDS = 10


def test_atheris_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    """``atheris_ami.py`` for ``ATHERIS_SECONDS`` from a seed corpus of the traces' first
    kilobytes: no crash, no broken invariant (libFuzzer exits non-zero and keeps the
    input under ``tmp_path`` if it finds one)."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, data in enumerate(traces().values()):
        (corpus / f"seed-{index}").write_bytes(b"\x00" + data[:4096])
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    run = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("atheris_ami.py")),
            f"-max_total_time={ATHERIS_SECONDS}",
            "-max_len=8192",
            "-timeout=10",
            "-rss_limit_mb=1536",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=ATHERIS_SECONDS + 60,
        check=False,
    )
    tail = "\n".join((run.stdout + run.stderr).splitlines()[-30:])
    assert run.returncode == 0, tail
    assert "Done" in tail, tail
    runs = re.search(r"Done (\d+) runs", tail)
    record(
        "Malformed AMI: coverage-guided fuzzing (atheris)",
        injected=f"libFuzzer's inputs for {ATHERIS_SECONDS} s, seeded with every trace,"
        " through the parser, the protocol and the call model",
        expected="nothing raised, no invariant broken (hypothesis: 300 examples each of"
        " mutated traces, random bytes and random frames, in the same file)",
        inputs=runs.group(1) if runs else "?",
        crashes=0,
    )
