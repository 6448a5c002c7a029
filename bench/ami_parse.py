"""AMI parse throughput, messages/s: cti-bridge's parser against its peers (issue 5, #1).

    python bench/ami_parse.py [TRACE] [REPEAT] [--rounds N] [--chunk BYTES]

TRACE (default: the recorded burst, tests/fixtures/ami-traces/12-burst.ami) is repeated
REPEAT times (default: to about a million messages) behind one banner, as one long AMI
connection, and cut into reads of --chunk bytes (64 KiB, what a busy socket delivers).
Every contender parses the same reads in this one process; each yields every message
with its headers as text. Measured, per contender:

* cti-bridge: ``AMIParser.feed(read)`` for every read (the live link's code path), and
  ``cti-bridge (1 feed per trace copy)``: one ``feed()`` per 1.3 MB copy of the trace.
* ``cti-bridge (the daemon's filter)``: the same reads with the event filter the daemon
  gives its link (the call model's events and ``VarSet`` variables, the client's own):
  every message is read, only those are built. Its rate counts every message of the
  stream, like the others'; it is what the live link does, not a like-for-like parse.
* panoramisk 1.4: ``AMIProtocol.data_received(read)`` on a connected protocol with a
  fake transport: its framing, decoding and ``Message.from_line``, then its
  ``handle_message`` (response lookup) and a ``factory.dispatch`` that only counts.
* pyst2 0.5.1: its reader loop, ``Manager._receive_data``, unchanged, iterating the
  lines of the stream from an in-memory file (in place of its socket file), and for each
  message what its ``message_loop`` does: ``ManagerMsg(lines)`` and ``Event(message)``.
  The thread hand-offs (``queue.Queue`` between its threads) are left out: they are
  threading, not parsing, and would only make pyst2 slower.
* minimal: split the reads on blank lines, decode, ``dict`` of ``"Name: value"`` pairs;
  no banner logic beyond the first line, no bare-LF support, no repeated headers, no
  malformed lines. What a parser cannot beat in pure Python: the practical limit.

Before timing, every contender parses one copy of the trace and must produce the same
messages as cti-bridge (same count, same value for every header that occurs once).
Figures are CPU time of this process, best of --rounds rounds, interleaved.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib

MISSING = benchlib.ensure_modules("panoramisk", "asterisk.manager")

from cti_bridge.ami.listener import wanted_by  # noqa: E402
from cti_bridge.ami.parser import AMIParser, EventFilter, Message  # noqa: E402
from cti_bridge.calls.model import CallModel  # noqa: E402
from cti_bridge.calls.pipeline import CallPipeline  # noqa: E402
from cti_bridge.queues.members import MEMBER_EVENTS  # noqa: E402


class _MembersWants:
    """What the queues room's members listener wants (``queues/feed.py``)."""

    wanted_events = MEMBER_EVENTS

    def ami_event(self, msg: Message, received_at: float) -> None: ...


#: What the daemon's link builds: its listeners are the call pipeline and the members
#: board's feed.
DAEMON_FILTER = wanted_by([CallPipeline(CallModel("bench")), _MembersWants()])


class MinimalParser:
    """The practical limit: split on blank lines, one dict per message."""

    def __init__(self) -> None:
        self._buf = b""
        self._banner = True

    def feed(self, data: bytes) -> list[dict[str, str]]:
        buf = self._buf + data
        if self._banner:
            nl = buf.find(b"\r\n")
            if nl < 0:
                self._buf = buf
                return []
            buf = buf[nl + 2 :]
            self._banner = False
        parts = buf.split(b"\r\n\r\n")
        self._buf = parts.pop()
        return [dict([ln.split(": ", 1) for ln in p.decode().split("\r\n")]) for p in parts]


def run_cti(reads: list[bytes], wanted: EventFilter | None = None) -> int:
    parser = AMIParser(wanted=wanted)
    n = 0
    for data in reads:
        n += len(parser.feed(data))
    return n


def run_minimal(reads: list[bytes]) -> int:
    parser = MinimalParser()
    n = 0
    for data in reads:
        n += len(parser.feed(data))
    return n


class _Sink:
    """panoramisk's factory as far as the protocol needs it: dispatch only counts."""

    save_stream = None
    forgetable_actions = ("ping", "login")

    def __init__(self, keep: list[Any] | None = None) -> None:
        self.count = 0
        self.keep = keep

    def dispatch(self, message: Any) -> None:
        self.count += 1
        if self.keep is not None:
            self.keep.append(message)

    def connection_lost(self, exc: object) -> None:
        pass


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def panoramisk_protocol(sink: _Sink) -> Any:
    from panoramisk.ami_protocol import AMIProtocol

    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    protocol.factory = sink
    protocol.encoding = "utf8"  # what panoramisk.Manager sets by default
    return protocol


def run_panoramisk(reads: list[bytes], keep: list[Any] | None = None) -> int:
    sink = _Sink(keep)
    protocol = panoramisk_protocol(sink)
    received = protocol.data_received
    for data in reads:
        received(data)
    # Responses (Login, Goodbye) go to handle_message's response lookup, not dispatch.
    return sink.count


class _PystSink:
    """Stands in for pyst2's ``_message_queue``: does what ``message_loop`` does."""

    def __init__(self, keep: list[Any] | None = None) -> None:
        from asterisk.manager import Event, ManagerMsg

        self.manager_msg = ManagerMsg
        self.event = Event
        self.count = 0
        self.keep = keep

    def put(self, lines: list[str] | None) -> None:
        if not lines:
            return
        message = self.manager_msg(lines)
        if message.has_header("Event"):
            message = self.event(message)
        self.count += 1
        if self.keep is not None:
            self.keep.append(message)


def run_pyst2(stream: bytes, keep: list[Any] | None = None) -> int:
    from asterisk.manager import Manager

    manager = Manager.__new__(Manager)  # no threads, no socket: only its state
    manager.title = None
    manager._connected = threading.Event()
    manager._running = threading.Event()
    manager._connected.set()
    manager._running.set()
    sink = _PystSink(keep)
    manager._message_queue = sink
    manager._sock = io.BytesIO(stream)
    manager._receive_data()
    manager._running.clear()  # so that its __del__ -> close() has no threads to join
    return sink.count - 1  # its reader makes a message of the banner


def _normal(headers: dict[str, Any], once: set[str]) -> dict[str, str]:
    return {k: str(v).strip() for k, v in headers.items() if k in once}


def check_equivalent(trace: bytes, chunk: int, contenders: list[str]) -> None:
    """Every contender must see the same messages before any of them is timed."""
    stream = benchlib.repeated_stream(trace, 1)
    reads = benchlib.chunked(stream, chunk)
    reference: list[Message] = []
    parser = AMIParser()
    for data in reads:
        reference.extend(parser.feed(data))
    # Headers that occur once: peers keep the first, the last or a list of a repeat.
    once = [{k for k in m if not (m.multi and k in m.multi)} for m in reference]
    want = [_normal(m, o) for m, o in zip(reference, once, strict=True)]
    got: dict[str, list[dict[str, str]]] = {}
    minimal = MinimalParser()
    got["minimal"] = [m for data in reads for m in minimal.feed(data)]
    if "panoramisk" in contenders:
        kept: list[Any] = []
        protocol = panoramisk_protocol(_Sink())
        original = protocol.handle_message

        def keep_all(message: Any) -> None:
            kept.append(message)
            original(message)

        protocol.handle_message = keep_all
        for data in reads:
            protocol.data_received(data)
        got["panoramisk"] = [dict(m.items()) for m in kept]
    if "pyst2" in contenders:
        kept = []
        run_pyst2(stream, kept)
        got["pyst2"] = [dict(m.headers) for m in kept[1:]]
    for name, messages in got.items():
        if len(messages) != len(want):
            sys.exit(f"{name}: {len(messages)} messages, cti-bridge {len(want)}: not comparable")
        lost = 0
        for i, (theirs, ours) in enumerate(zip(messages, want, strict=True)):
            mine = _normal(theirs, once[i])
            lost += len(ours) - len(mine)
            if any(ours.get(k) != v for k, v in mine.items()) or len(mine) < len(ours) - 1:
                sys.exit(f"{name}: message #{i + 1} differs:\n  {theirs}\n  {dict(ours)}")
        note = f"; it drops {lost} empty last headers (e.g. 'PriorCallID: ')" if lost else ""
        print(f"# {name}: same {len(messages)} messages and header values as cti-bridge{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", nargs="?", type=Path, default=benchlib.BURST)
    parser.add_argument("repeat", nargs="?", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    parser.add_argument("--only", nargs="*", default=None, help="contenders to run (default: all)")
    args = parser.parse_args()
    trace = args.trace.read_bytes()
    per_copy = len(AMIParser().feed(benchlib.repeated_stream(trace, 1)))
    repeat = args.repeat or max(1, round(1_000_000 / per_copy))
    filtered = "cti-bridge (the daemon's filter)"
    names = [
        "cti-bridge",
        "cti-bridge (1 feed per trace copy)",
        filtered,
        "panoramisk",
        "pyst2",
        "minimal",
    ]
    if MISSING:
        print(f"# not installed: {', '.join(MISSING)} (run bench/setup); those peers skipped")
        names = [n for n in names if not (n == "panoramisk" and "panoramisk" in MISSING)]
        names = [n for n in names if not (n == "pyst2" and "asterisk.manager" in MISSING)]
    if args.only:
        names = [n for n in names if n in args.only]
    stream = benchlib.repeated_stream(trace, repeat)
    reads = benchlib.chunked(stream, args.chunk)
    _, body = benchlib.split_banner(trace)
    copies = [benchlib.split_banner(trace)[0] + body] + [body] * (repeat - 1)
    total = per_copy * repeat
    benchlib.context(
        trace=f"{args.trace.name} x {repeat} = {total} messages, {len(stream) / 1e6:.0f} MB",
        reads=f"{args.chunk} bytes each ({len(reads)} reads)",
        timing=f"CPU time, best of {args.rounds} interleaved rounds",
    )
    check_equivalent(trace, args.chunk, names)

    runs: dict[str, Callable[[], int]] = {
        "cti-bridge": lambda: run_cti(reads),
        "cti-bridge (1 feed per trace copy)": lambda: run_cti(copies),
        filtered: lambda: run_cti(reads, DAEMON_FILTER),
        "panoramisk": lambda: run_panoramisk(reads),
        "pyst2": lambda: run_pyst2(stream),
        "minimal": lambda: run_minimal(reads),
    }
    built = run_cti(benchlib.chunked(benchlib.repeated_stream(trace, 1), args.chunk), DAEMON_FILTER)
    print(f"# the daemon's filter builds {built} of the {per_copy} messages of a copy")
    expected = {
        # panoramisk dispatches events only; the Login and Goodbye responses of each
        # copy go to its response lookup.
        "panoramisk": total - 2 * repeat,
        filtered: built * repeat,
    }

    def check(name: str, count: object) -> None:
        want = expected.get(name, total)
        if count != want:
            sys.exit(f"{name}: parsed {count} messages, expected {want}")

    results = benchlib.interleaved([(n, runs[n]) for n in names], args.rounds, check)
    rate = {name: total / r.best for name, r in results.items()}
    for name in names:
        print(f"# {name}: {results[name].spread()}")
    for name in names:
        benchlib.line(name, rate[name], "msgs/s")
    ours = rate.get("cti-bridge")
    if ours is not None:
        if "minimal" in rate:
            print(f"# ratio cti-bridge / minimal: {ours / rate['minimal']:.2f}x (target >= 0.8x)")
        if "panoramisk" in rate:
            ratio = ours / rate["panoramisk"]
            print(f"# ratio cti-bridge / panoramisk: {ratio:.2f}x (target >= 3x)")
        if "pyst2" in rate:
            print(f"# ratio cti-bridge / pyst2: {ours / rate['pyst2']:.2f}x")


if __name__ == "__main__":
    main()
