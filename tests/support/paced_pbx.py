"""An AMI server that replays a timestamped trace at N times its recorded pace and writes
the way Asterisk does: each message must go out within ``writetimeout`` (100 ms, the
default of ``manager.conf``), or Asterisk drops the session. It measures how close the
reader came to that: the longest wait for the socket to take more bytes, and the most
bytes the kernel held unsent for the reader (``SIOCOUTQ``).

Run as its own process (``python -m tests.support.paced_pbx --trace T --speed 10``), so
the daemon under test has its core to itself: it prints ``port P``, serves one client
(just enough AMI for cti-bridge: login, ``Events``, ``Ping``, empty resync lists), replays
the trace's events once the resync lists are answered, prints one JSON line of figures,
and keeps answering until the client goes or ``--linger`` seconds pass.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import re
import select
import socket
import struct
import sys
import termios
import time
from pathlib import Path

from cti_bridge.ami.parser import AMIParser, Message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
WRITE_TIMEOUT = 0.100
_TIMESTAMP = re.compile(rb"^Timestamp: ([0-9.]+)\r$", re.MULTILINE)
_SKIP = (b"Event: FullyBooted", b"Event: SuccessfulAuth")


def frame(*headers: tuple[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"


def events(trace: bytes) -> list[tuple[float, bytes]]:
    """The trace's events with their PBX time: what follows the recording's login."""
    out: list[tuple[float, bytes]] = []
    last = 0.0
    for raw in trace.replace(b"\r\n", b"\n").split(b"\n\n"):
        block = raw.strip(b"\n")
        if not block.startswith(b"Event: ") or block.startswith(_SKIP):
            continue
        data = block.replace(b"\n", b"\r\n") + b"\r\n\r\n"
        found = _TIMESTAMP.search(data)
        last = float(found.group(1)) if found else last
        out.append((last, data))
    return out


class Session:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = AMIParser(expect_banner=False)
        self.lists = 0
        self.max_wait = 0.0
        self.max_unsent = 0
        self.dropped = False
        self.closed = False

    def write(self, data: bytes) -> None:
        """All of ``data`` within ``WRITE_TIMEOUT``, as Asterisk's manager writes."""
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view and not self.dropped:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                started = time.monotonic()
                left = deadline - started
                ready = left > 0 and select.select([], [self.sock], [], left)[1]
                self.max_wait = max(self.max_wait, time.monotonic() - started)
                if not ready:
                    self.dropped = True  # Asterisk: the session is gone
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    self.closed = True
                    return
                raise
        unsent = struct.unpack("i", fcntl.ioctl(self.sock, termios.TIOCOUTQ, b"\0" * 4))[0]
        self.max_unsent = max(self.max_unsent, unsent)

    def serve_actions(self) -> None:
        """Answer whatever the client sent so far (never blocks)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            for msg in self.parser.feed(data):
                self.answer(msg)

    def answer(self, msg: Message) -> None:
        name = msg.get("Action", "").lower()
        aid = ("ActionID", msg.get("ActionID", ""))
        if name == "login":
            self.write(frame(("Response", "Success"), aid, ("Message", "Authentication accepted")))
            self.write(frame(("Event", "FullyBooted"), ("Privilege", "system,all")))
        elif name == "ping":
            self.write(frame(("Response", "Success"), aid, ("Ping", "Pong")))
        elif name in ("coreshowchannels", "queuestatus"):
            done = (
                "CoreShowChannelsComplete" if name == "coreshowchannels" else "QueueStatusComplete"
            )
            self.write(
                frame(("Response", "Success"), aid, ("EventList", "start"), ("Message", "ok"))
                + frame(("Event", done), aid, ("EventList", "Complete"), ("ListItems", "0"))
            )
            self.lists += 1
        elif name == "events":
            self.write(frame(("Response", "Success"), aid, ("Events", "On")))
        elif name == "logoff":
            self.write(frame(("Response", "Goodbye"), aid))
            self.closed = True
        else:
            self.write(frame(("Response", "Error"), aid, ("Message", "Invalid/unknown command")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--linger", type=float, default=60.0)
    args = parser.parse_args()
    replay = events(args.trace.read_bytes())
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"port {listener.getsockname()[1]}", flush=True)
    sock, _ = listener.accept()
    sock.setblocking(False)
    session = Session(sock)
    session.write(BANNER)
    deadline = time.monotonic() + 30
    while session.lists < 2 and not session.closed and time.monotonic() < deadline:
        select.select([sock], [], [], 0.05)
        session.serve_actions()
    started, first = time.monotonic(), replay[0][0]
    behind = 0.0
    for at, data in replay:
        due = started + (at - first) / args.speed
        while (wait := due - time.monotonic()) > 0:
            select.select([sock], [], [], wait)
            session.serve_actions()
        behind = max(behind, time.monotonic() - due)
        session.serve_actions()
        session.write(data)
        if session.dropped or session.closed:
            break
    figures = {
        "events": len(replay),
        "speed": args.speed,
        "seconds": round(time.monotonic() - started, 3),
        "max_write_wait_ms": round(session.max_wait * 1000, 2),
        "max_unsent_bytes": session.max_unsent,
        "server_behind_ms": round(behind * 1000, 2),
        "dropped": session.dropped,
        "closed": session.closed,
    }
    print(json.dumps(figures), flush=True)
    end = time.monotonic() + args.linger
    while not session.closed and time.monotonic() < end:
        select.select([sock], [], [], 0.2)
        session.serve_actions()
    sys.exit(0)


if __name__ == "__main__":
    main()
