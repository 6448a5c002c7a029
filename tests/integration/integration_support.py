"""Helpers for tests that run on the real reactor (pytest-twisted): waiting, HTTP, a daemon.

The daemon under test is the real one (``cti_bridge.app.daemon.Daemon``) with its own
SQLite file, on free loopback ports; only the PBX it talks to varies (the simulator or the
real Asterisk).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from cti_bridge.app.config import Config, parse_config
from cti_bridge.app.daemon import Daemon
from cti_bridge.store import Store, open_store, upgrade

T = TypeVar("T")

PASSWORD = "correct horse battery"
#: The text of every answer ``http`` got, in order: for the scans that no secret (the AMI
#: secret, a password) is in any API answer or page (``test_daemon_sim.py``).
ANSWERS: list[str] = []


def sleep(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def eventually(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` on the reactor until it returns something truthy."""
    deadline = reactor.seconds() + timeout
    while True:
        result = check()
        if result:
            return result
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        await sleep(0.02)


@implementer(IBodyProducer)
class _Body:
    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


async def http(
    method: str, url: str, body: Any = None, *, token: str | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request."""
    headers = Headers({b"content-type": [b"application/json"]})
    if token is not None:
        headers.addRawHeader(b"authorization", f"Bearer {token}".encode())
    producer = None if body is None else _Body(json.dumps(body).encode())
    response = await Agent(reactor).request(method.encode(), url.encode(), headers, producer)
    raw = await readBody(response)
    ANSWERS.append(raw.decode("utf-8", "replace"))
    kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
    data: Any = json.loads(raw) if kind.startswith(b"application/json") else raw.decode()
    return response.code, data


def daemon_config(
    db_url: str,
    pbx_host: str,
    pbx_port: int,
    username: str,
    secret: str | None,
    *,
    agi: dict[str, Any] | None = None,
    **pbx: Any,
) -> Config:
    return parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0, "login_max_failures": 3},
            "database": {"url": db_url},
            "bus": {"url": "memory://"},
            "phone": {"default_region": "BE"},
            "pbx": [
                {
                    "name": "main",
                    "host": pbx_host,
                    "port": pbx_port,
                    "username": username,
                    # None: the PBX entry names its own (``secret_env=...``).
                    **({} if secret is None else {"secret": secret}),
                    "ping_interval": 5,
                    **pbx,
                }
            ],
            "agi": agi or {},
        }
    )


def prepared_store(folder: Path) -> tuple[str, Store]:
    url = f"sqlite:///{folder / 'cti.sqlite3'}"
    upgrade(url)
    return url, open_store(url)


async def started_daemon(config: Config) -> Daemon:
    """The daemon, opening its own store from the config as ``cti-bridge run`` does."""
    daemon = Daemon(config, reactor)
    await daemon.start()
    return daemon


async def login(daemon: Daemon, username: str, password: str = PASSWORD) -> str:
    status, body = await http(
        "POST", daemon.url + "api/login", {"username": username, "password": password}
    )
    assert status == 200, body
    token: str = body["token"]
    return token


async def in_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work (the Asterisk harness, direct store reads) off the reactor."""
    result: T = await deferToThread(work, *args, **kwargs)
    return result


async def poll_in_thread(
    find: Callable[[], T | None], timeout: float = 30.0, what: str = "", every: float = 0.2
) -> T:
    """Run the blocking ``find`` in a thread until it returns something (not None)."""
    deadline = reactor.seconds() + timeout
    while True:
        found = await in_thread(find)
        if found is not None:
            return found
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or find}")
        await sleep(every)
