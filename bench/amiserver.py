"""A raw AMI server for the benchmarks: just enough Asterisk for cti-bridge's client,
then the events we hand it, written to the socket as they are.

It answers what the client sends on connect - ``Challenge``/``Login`` (any secret),
``Events``, ``Ping``, empty ``CoreShowChannels``/``QueueStatus`` lists, ``Logoff`` - and
sends ``FullyBooted`` after the login, in Asterisk 22's framing (banner, CRLF). When the
client's resync lists are answered the session is *ready*: the benchmark then writes
pre-built event bytes (``RawPBXSession.send``), at once or paced.

Run as a script it is the PBX of ``bench/pipeline.py`` in a process of its own, so the
daemon being measured has its core to itself:

    python bench/amiserver.py --trace TRACE --repeat N   (prints "port P", then serves)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

from cti_bridge.ami.parser import AMIParser, Message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def frame(*headers: tuple[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"


class RawPBXSession(Protocol):
    def __init__(self, pbx: RawPBX) -> None:
        self.pbx = pbx
        self.parser = AMIParser(expect_banner=False)
        self.lists_answered = 0
        self.ready_at: float | None = None

    @property
    def wire(self) -> ITransport:
        """The connection's transport (set from ``connectionMade`` on)."""
        assert self.transport is not None, "not connected"
        return self.transport

    def connectionMade(self) -> None:
        self.wire.write(BANNER)

    def send(self, data: bytes) -> None:
        self.wire.write(data)

    def dataReceived(self, data: bytes) -> None:
        for msg in self.parser.feed(data):
            self.action(msg)

    def action(self, msg: Message) -> None:
        name = msg.get("Action", "").lower()
        aid = ("ActionID", msg.get("ActionID", ""))
        write = self.wire.write
        if name == "challenge":
            write(frame(("Response", "Success"), aid, ("Challenge", "840415273")))
        elif name == "login":
            write(frame(("Response", "Success"), aid, ("Message", "Authentication accepted")))
            write(
                frame(
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", "1290"),
                    ("LastReload", "1016"),
                    ("Status", "Fully Booted"),
                )
            )
        elif name == "ping":
            write(frame(("Response", "Success"), aid, ("Ping", "Pong"), ("Timestamp", "0")))
        elif name in ("coreshowchannels", "queuestatus"):
            complete = (
                "CoreShowChannelsComplete"
                if name == "coreshowchannels"
                else ("QueueStatusComplete")
            )
            write(
                frame(("Response", "Success"), aid, ("EventList", "start"), ("Message", "ok"))
                + frame(("Event", complete), aid, ("EventList", "Complete"), ("ListItems", "0"))
            )
            self.lists_answered += 1
            if self.lists_answered == 2:
                self.ready_at = time.perf_counter()
                self.pbx.on_ready(self)
        elif name == "logoff":
            write(frame(("Response", "Goodbye"), aid, ("Message", "Thanks for all the fish.")))
            self.wire.loseConnection()
        elif name == "events":
            write(frame(("Response", "Success"), aid, ("Events", "On")))
        else:
            write(frame(("Response", "Error"), aid, ("Message", "Invalid/unknown command")))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.pbx.on_lost(self)


class RawPBX(ServerFactory):
    def __init__(
        self,
        on_ready: Callable[[RawPBXSession], None],
        on_lost: Callable[[RawPBXSession], None] = lambda session: None,
    ) -> None:
        self.on_ready = on_ready
        self.on_lost = on_lost

    def buildProtocol(self, addr: object) -> RawPBXSession:
        return RawPBXSession(self)


def main() -> None:
    import benchlib
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description="AMI server writing a trace's events")
    parser.add_argument("--trace", type=Path, default=benchlib.BURST)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--drop", nargs="*", default=[], help="event names to leave out")
    args = parser.parse_args()
    stream, count = benchlib.event_stream(
        args.trace.read_bytes(), args.repeat, drop=frozenset(args.drop)
    )

    def ready(session: RawPBXSession) -> None:
        session.send(stream)

    def lost(session: RawPBXSession) -> None:
        if reactor.running:
            reactor.stop()

    port = reactor.listenTCP(args.port, RawPBX(ready, lost), interface="127.0.0.1")
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    print(f"port {address.port} events {count} bytes {len(stream)}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
