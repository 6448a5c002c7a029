"""``POST /api/login`` through the web's real Klein app and ``web/accounts.py`` on the memory
store and a Clock (issue 13): failures are counted against the client's address, which is
the peer unless the peer is a trusted proxy (then ``X-Forwarded-For``, right-most
untrusted); one guesser behind the helpdesk's NAT cannot lock the others out, and the
per-user and per-source slowing still holds."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, TypeVar, cast

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge.bus import MemoryBus
from cti_bridge.store import Accounts as AccountStore
from cti_bridge.store.memory import open_memory_store
from cti_bridge.testing.store import START, cheap_hasher
from cti_bridge.web.accounts import Accounts
from cti_bridge.web.api import WebApp
from cti_bridge.web.clients import client_host, parse_networks
from cti_bridge.web.ws import Hub
from tests.support.web_requests import RecordingRequest, at_once

T = TypeVar("T")
WINDOW = 300.0
PROXY = "10.0.0.1"


class Front:
    """The web with Anna and Bart (operators), and one way to ask it for a login."""

    def __init__(self, trusted: tuple[str, ...] = (PROXY,)) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        store = open_memory_store(
            clock=self.clock.seconds,
            accounts={"hasher": cheap_hasher(), "failure_window": WINDOW},
        )
        for name in ("anna", "bart"):
            store.accounts.add_operator(name, role="operator", password=f"{name}-secret")
        accounts = Accounts(cast(AccountStore, store.accounts), at_once)
        web = WebApp(
            accounts,
            Hub(self.clock, MemoryBus(self.clock), accounts.resolve_token),
            health=lambda: {"status": "ok"},
            metrics=lambda: b"",
            trusted_proxies=parse_networks(trusted),
        )
        self.resource = web.resource()

    def login(
        self, username: str, password: str, *, peer: str, forwarded: str | None = None
    ) -> int:
        channel = DummyChannel(peer=IPv4Address("TCP", peer, 40000))
        channel.site = Site(self.resource, reactor=self.clock)
        request = RecordingRequest(channel)
        request.content = BytesIO(json.dumps({"username": username, "password": password}).encode())
        if forwarded is not None:
            request.requestHeaders.setRawHeaders(b"x-forwarded-for", [forwarded.encode()])
        request.requestReceived(b"POST", b"/api/login", b"HTTP/1.1")
        assert request.finished, "the answer is not synchronous"
        if request.code == 200:
            assert json.loads(request.body)["token"]
        return request.code


def test_one_guesser_behind_the_nat_does_not_lock_the_helpdesk_out() -> None:
    front = Front(trusted=())
    nat = "192.0.2.10"
    # Five wrong passwords for Anna, then 45 more usernames: the NAT is hot.
    codes = [front.login("anna", "guess", peer=nat) for _ in range(5)]
    codes += [front.login(f"user{n}", "guess", peer=nat) for n in range(45)]
    assert codes == [401] * 50
    # Per user and source: Anna from the NAT is refused, also with her password.
    assert front.login("anna", "anna-secret", peer=nat) == 429
    assert front.login("user3", "guess", peer=nat) == 429  # a second guess: refused
    # Bart behind the same NAT still gets in; Anna from elsewhere too.
    assert front.login("bart", "bart-secret", peer=nat) == 200
    assert front.login("anna", "anna-secret", peer="192.0.2.77") == 200
    front.clock.advance(WINDOW + 1)
    assert front.login("anna", "anna-secret", peer=nat) == 200


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    front = Front()
    # Behind the proxy, failures are the client's: Anna at another desk gets in.
    for _ in range(5):
        assert front.login("anna", "guess", peer=PROXY, forwarded="203.0.113.9") == 401
    assert front.login("anna", "anna-secret", peer=PROXY, forwarded="203.0.113.9") == 429
    assert front.login("anna", "anna-secret", peer=PROXY, forwarded="203.0.113.10") == 200
    # A client cannot pick its address: what it wrote left of the proxy's is ignored.
    forged = "198.51.100.1, 203.0.113.9"
    assert front.login("anna", "anna-secret", peer=PROXY, forwarded=forged) == 429
    # Nor a fresh one per guess when it talks to us directly.
    codes = [
        front.login("bart", "guess", peer="198.51.100.7", forwarded=f"192.0.2.{n}")
        for n in range(6)
    ]
    assert codes == [401] * 5 + [429]


def request_from(peer: Any, *forwarded: str) -> Request:
    request = Request(DummyChannel(peer=peer))
    if forwarded:
        request.requestHeaders.setRawHeaders(b"x-forwarded-for", [f.encode() for f in forwarded])
    request.client = peer
    return request


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", ("192.0.2.1",), "203.0.113.5"),  # not a proxy: its header is text
        ("10.0.0.1", (), "10.0.0.1"),  # a proxy without the header is the client
        ("10.0.0.1", ("192.0.2.1",), "192.0.2.1"),
        ("10.0.0.1", ("6.6.6.6, 192.0.2.1",), "192.0.2.1"),  # right-most untrusted
        ("10.0.0.1", ("192.0.2.1, 10.9.0.3",), "192.0.2.1"),  # through two proxies
        ("10.0.0.1", ("192.0.2.1", "10.9.0.3"), "192.0.2.1"),  # the header twice
        ("10.0.0.1", ("10.9.0.3, 10.9.0.4",), "10.9.0.3"),  # all trusted: the left-most
        ("10.0.0.1", ("192.0.2.1, junk",), "10.0.0.1"),  # not appended by a proxy
        ("10.0.0.1", (" 2001:db8::7 ",), "2001:db8::7"),
        ("::ffff:10.0.0.1", ("192.0.2.1",), "192.0.2.1"),  # v4 on a v6 socket
    ],
)
def test_the_client_address(peer: str, forwarded: tuple[str, ...], client: str) -> None:
    trusted = parse_networks(["10.0.0.1", "10.9.0.0/16"])
    address: Any = IPv6Address("TCP", peer, 1) if ":" in peer else IPv4Address("TCP", peer, 1)
    assert client_host(request_from(address, *forwarded), trusted) == client
