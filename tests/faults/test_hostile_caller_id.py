"""Hostile caller ID (issue 13): injected through the real AMI path, survived as text.

What is injected: one set of caller IDs a caller (or a SIP trunk) can send, markup, quotes,
SQL, CR/LF with a forged log line after it, ANSI escapes, NUL and other control
characters, a 10 KB name, invalid UTF-8 bytes in the raw AMI frame, a right-to-left
override, and withheld numbers (``anonymous``, empty). Each is a real call on the
simulated PBX, read by the whole daemon (real TCP, real SQLite, real WebSocket).

What must survive:

* the call record (``GET /api/calls`` and ``/api/calls/{id}``) holds the text as sent,
  bounded as the model defines (512 characters, NUL as U+FFFD, invalid UTF-8 decoded
  as cp1252 by the parser, never dropped); a withheld number is ``caller_number: null``,
  ``caller_withheld: true``;
* the pop (``screen_pop`` on the operator's WebSocket) carries the same text in JSON;
* every line the daemon logged (captured at DEBUG as it writes them) is one JSON object:
  no raw CR/LF, ESC, NUL or bidi control from caller text, no forged line;
* the daemon stays up: ``/healthz`` is ok after every call.

The same names on the console in Chromium: ``tests/browser/test_console_hostile.py``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.ami.parser import decode_text
from cti_bridge.app.daemon import Daemon
from cti_bridge.log import escape_control_characters
from cti_bridge.sim import SimulatedPBX
from cti_bridge.store import Store
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    http,
    login,
    prepared_store,
    sleep,
    started_daemon,
)
from tests.integration.pop_support import Screen, open_screen
from tests.support.reliability import record

pytest_plugins = ["tests.support.log_capture"]  # log_stream

SPEED = 8.0
OPERATORS = [("PJSIP/1001", "Anna"), ("PJSIP/1002", "Bart")]
NAME_LIMIT = 512  # calls.caller_name and the pop's caller.name


@dataclass(frozen=True)
class Hostile:
    """One caller ID: what the caller sends, and what must be stored and shown."""

    label: str
    number: str
    name: str  # as the caller sends it (surrogate escapes: raw bytes on the wire)
    stored_name: str
    withheld: bool = False


def _invalid_utf8(raw: bytes) -> str:
    """The raw bytes, as a str the simulator writes back as exactly those bytes."""
    return raw.decode("utf-8", "surrogateescape")


def bounded(name: str) -> str:
    """As the call record and the pop keep a name: NUL as U+FFFD, 512 characters."""
    return name.replace("\x00", "\ufffd")[:NAME_LIMIT]


_LATIN1_BYTES = b"Caf\xe9 M\xfcller \xff\xfe"
HOSTILE = [
    Hostile("script", "050111001", "<script>alert(1)</script>", "<script>alert(1)</script>"),
    Hostile(
        "img",
        "050111002",
        '"><img src=x onerror=alert(1)>',
        '"><img src=x onerror=alert(1)>',
    ),
    Hostile("sql", "050111003", "'; DROP TABLE calls; --", "'; DROP TABLE calls; --"),
    Hostile(
        "crlf",
        "050111004",
        "Jan\r\nlevel=error event=forged",
        "Jan\r\nlevel=error event=forged",
    ),
    Hostile(
        "json-crlf",
        "050111005",
        'Jan\n{"event": "forged", "level": "error"}',
        'Jan\n{"event": "forged", "level": "error"}',
    ),
    Hostile(
        "ansi",
        "050111006",
        "\x1b[31mRED\x1b[0m \x1b]0;owned\x07",
        bounded("\x1b[31mRED\x1b[0m \x1b]0;owned\x07"),
    ),
    Hostile(
        "controls",
        "050111007",
        "nul\x00bel\x07bs\x08tab\tdel\x7f",
        bounded("nul\x00bel\x07bs\x08tab\tdel\x7f"),
    ),
    Hostile(
        "10k",
        "050111008",
        "A" * 5000 + "\u00e9" * 2600 + "B" * 2640,
        bounded("A" * 5000 + "\u00e9" * 2600 + "B" * 2640),
    ),
    Hostile("invalid-utf8", "050111009", _invalid_utf8(_LATIN1_BYTES), decode_text(_LATIN1_BYTES)),
    Hostile(
        "rtl", "050111010", "\u202eexe.txt\u202c \u2066x\u2069", "\u202eexe.txt\u202c \u2066x\u2069"
    ),
    Hostile("anonymous", "anonymous", "Withheld <b>x</b>", "Withheld <b>x</b>", withheld=True),
    Hostile("empty", "", "No number \u202e", "No number \u202e", withheld=True),
]

#: What must never be in the log's raw text: the renderer's JSON escapes them all, and
#: the log's own processor turns them into visible escapes before that.
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Setup:
    def __init__(self, sim: SimulatedPBX, daemon: Daemon, store: Store, anna: Screen):
        self.sim, self.daemon, self.store, self.anna = sim, daemon, store, anna


@pytest_twisted.async_yield_fixture
async def setup(tmp_path: Path, log_stream: io.StringIO) -> AsyncIterator[Setup]:
    sim = SimulatedPBX(reactor, seed=13, speed=SPEED, operators=OPERATORS)
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)
    store.accounts.add_operator(
        "anna", role="operator", password=PASSWORD, name="Anna", devices=["PJSIP/1001"]
    )
    store.accounts.add_operator(
        "bart", role="operator", password=PASSWORD, name="Bart", devices=["PJSIP/1002"]
    )
    store.accounts.add_operator("sofie", role="supervisor", password=PASSWORD)
    daemon = await started_daemon(daemon_config(url, "127.0.0.1", port, sim.username, sim.secret))
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    anna = await open_screen(daemon, "anna")
    yield Setup(sim, daemon, store, anna)
    anna.close()
    await daemon.stop()
    await sim.stop()
    store.close()


async def ended_call(setup: Setup, linkedid: str, token: str) -> dict[str, Any]:
    """The call ``linkedid``, from the listing, once it has ended."""

    async def find() -> dict[str, Any] | None:
        status, body = await http("GET", setup.daemon.url + "api/calls?limit=100", token=token)
        assert status == 200, body
        return next((c for c in body["calls"] if c["linkedid"] == linkedid and c["ended_at"]), None)

    found: list[dict[str, Any]] = []

    async def check() -> bool:
        call = await find()
        if call is not None:
            found.append(call)
        return call is not None

    deadline = reactor.seconds() + 20
    while not await check():
        assert reactor.seconds() < deadline, f"no ended call {linkedid}"
        await sleep(0.05)
    return found[0]


async def current_call(setup: Setup, linkedid: str, token: str) -> dict[str, Any]:
    """Anna's ``current_call`` in the supervisor's ``GET /api/agents`` while on ``linkedid``."""
    deadline = reactor.seconds() + 20
    while True:
        status, body = await http("GET", setup.daemon.url + "api/agents", token=token)
        assert status == 200, body
        for agent in body["agents"]:
            call = agent.get("current_call")
            if agent["operator"] == "anna" and call and call["linkedid"] == linkedid:
                return dict(call)
        assert reactor.seconds() < deadline, f"anna never on {linkedid}"
        await sleep(0.05)


async def assert_healthy(daemon: Daemon) -> None:
    status, body = await http("GET", daemon.url + "healthz")
    assert status == 200 and body["status"] == "ok", body


def check_log(text: str) -> list[dict[str, Any]]:
    """Every line one JSON object, no raw control character, nothing forged."""
    assert text.endswith("\n")
    assert "\r" not in text and "\x1b" not in text and "\x00" not in text
    bad = [
        (n, m.group())
        for n, line in enumerate(text.split("\n"))
        for m in [_RAW_CONTROL.search(line)]
        if m
    ]
    assert bad == []
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # a forged line would not parse, or parse as "forged"
        assert isinstance(entry, dict), line
        assert entry.get("event") != "forged", line
        entries.append(entry)
    return entries


@pytest_twisted.ensureDeferred
async def test_hostile_caller_ids_are_stored_popped_and_logged_as_text(
    setup: Setup, log_stream: io.StringIO
) -> None:
    sofie = await login(setup.daemon, "sofie")
    seen: dict[str, dict[str, Any]] = {}
    for hostile in HOSTILE:
        placed = setup.sim.place_call(
            "queue_answered",
            caller=(hostile.number, hostile.name),
            operator="PJSIP/1001",
            ring=1.0,
            talk=6.0,
        )
        current = await current_call(setup, placed.linkedid, sofie)
        assert current["caller_name"] == hostile.stored_name, hostile.label  # the Team view
        assert current["caller_withheld"] is hostile.withheld, hostile.label
        call = await ended_call(setup, placed.linkedid, sofie)
        seen[hostile.label] = call
        await assert_healthy(setup.daemon)

    for hostile in HOSTILE:
        call = seen[hostile.label]
        what = hostile.label
        assert call["caller_name"] == hostile.stored_name, what
        status, one = await http("GET", setup.daemon.url + f"api/calls/{call['id']}", token=sofie)
        assert status == 200, (what, one)
        assert one["caller_name"] == hostile.stored_name, what
        if hostile.withheld:
            assert (call["caller_number"], call["caller_withheld"]) == (None, True), what
        else:
            assert call["caller_withheld"] is False, what
            assert call["caller_number"] == "+32" + hostile.number[1:], what
            assert call["caller_number_raw"] == hostile.number, what

        (pop,) = setup.anna.of("screen_pop", call["linkedid"])
        assert pop["caller"]["name"] == hostile.stored_name, what
        assert pop["caller"]["withheld"] is hostile.withheld, what
        if hostile.withheld:
            assert pop["caller"]["number"] is None, what

    # The 10 KB name is bounded, not refused; the invalid bytes are decoded, not dropped.
    assert len(seen["10k"]["caller_name"]) == NAME_LIMIT
    assert seen["invalid-utf8"]["caller_name"] == "Caf\u00e9 M\u00fcller \u00ff\u00fe"

    # Calls alone log no caller text. The daemon does log whole AMI messages it drops
    # (an orphan list item, a message that is neither Event nor Response): send each
    # name in both, the second one raw, CR/LF unescaped, as a broken PBX would.
    (session,) = setup.sim.factory.sessions
    for n, hostile in enumerate(HOSTILE):
        orphan = [("Event", "Newchannel"), ("EventList", "start")]  # a list item: dropped
        name = lone_cr(hostile.name)
        session.write([*orphan, ("CallerIDNum", hostile.number), ("CallerIDName", name)])
        raw = f"Bogus: {n}\r\nCallerIDName: {hostile.name}\r\n\r\n"
        session.out.write(raw.encode("utf-8", "surrogateescape"))
    await eventually(
        lambda: log_stream.getvalue().count("ami_message_ignored") >= len(HOSTILE), 10, "logged"
    )
    await assert_healthy(setup.daemon)

    entries = check_log(log_stream.getvalue())
    assert any(e.get("event") == "http request" for e in entries)  # the daemon's lines
    orphans = [e["msg"] for e in entries if e["event"] == "ami_orphan_list_item_dropped"]
    ignored = [e["msg"] for e in entries if e["event"] == "ami_message_ignored"]
    assert len(orphans) == len(ignored) == len(HOSTILE)
    for hostile, orphan in zip(HOSTILE, orphans, strict=True):
        sent = decode_text(lone_cr(hostile.name).encode("utf-8", "surrogateescape"))
        assert orphan["CallerIDName"] == visible(sent), hostile.label
    # The raw CR/LF split the name: what followed is a line of its own, still escaped.
    crlf = ignored[[h.label for h in HOSTILE].index("crlf")]
    assert crlf["CallerIDName"] == "Jan"
    record(
        "Hostile caller ID through the whole path",
        injected=f"{len(HOSTILE)} callers: " + ", ".join(h.label for h in HOSTILE),
        expected="stored and shown as text in records, API, pops, agents view, logs; no"
        " forged log line; the daemon healthy",
        records_stored_verbatim=len(HOSTILE),
        pops_as_text=len(HOSTILE),
        forged_log_lines=0,
    )


def lone_cr(text: str) -> str:
    """Line breaks as lone CRs: they stay inside one AMI header value (only CR LF and LF
    end a line), so a raw CR reaches the logged message."""
    return text.replace("\r\n", "\r").replace("\n", "\r")


def visible(text: str) -> str:
    """``text`` as the log's processor writes it: control characters as escapes."""
    value: str = escape_control_characters(None, "", {"v": text})["v"]
    return value
