"""The AGI caller lookup: routing profiles from the store (``@every_backend``: the memory
twin, SQLite and PostgreSQL), the service-token endpoint, and the dialplan script
(dialplans/agi/caller_lookup.py) speaking real AGI through pyst2 over a socket, against a
real local HTTP server. The port itself: test_caller_directory.py."""

from __future__ import annotations

import http.server
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from twisted.internet.defer import fail, succeed
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from cti_bridge.agi.lookup import PRIORITY, AgiLookupResource, CallerProfiles
from cti_bridge.store import Store
from cti_bridge.testing.store_contract import every_backend
from tests.support.paths import AGI_SCRIPT

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

SCRIPT = AGI_SCRIPT
TODAY = date(2026, 11, 27)
TOKEN = "agi-service-token-0123456789"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("caller_lookup", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["caller_lookup"] = module
    spec.loader.exec_module(module)
    return module


script = load_script()


# --- profiles -----------------------------------------------------------------------------


@pytest.fixture
def profiles(store: Store) -> CallerProfiles:
    customers = store.customers
    premium = customers.add_customer(
        "Jan Peeters", numbers=["050123456"], language="nl", tier="premium"
    )
    customers.add_contract(premium, valid_from=TODAY - timedelta(days=5), covered=["phone"])
    standard = customers.add_customer(
        "Marie Dubois", numbers=["050765432"], language="fr", tier="standard"
    )
    customers.add_contract(standard, valid_from=TODAY - timedelta(days=5), covered=["phone"])
    lapsed = customers.add_customer("Luc Claes", numbers=["0470123456"], tier="premium")
    customers.add_contract(
        lapsed,
        valid_from=TODAY - timedelta(days=400),
        valid_until=TODAY - timedelta(days=1),
        covered=["phone"],
    )
    return CallerProfiles(store.callers, today=lambda: TODAY)


@every_backend
@pytest.mark.parametrize(
    ("number", "level", "name"),
    [
        ("+3250123456", "premium_contract", "Jan Peeters"),
        ("0032 50 76 54 32", "contract", "Marie Dubois"),
        ("0470123456", "known", "Luc Claes"),
    ],
)
def test_known_callers_get_their_priority(
    profiles: CallerProfiles, number: str, level: str, name: str
) -> None:
    profile = profiles.lookup(number)
    assert profile["known"] is True
    assert profile["name"] == name
    assert profile["priority"] == PRIORITY[level]
    assert profile["valid_contract"] is (level != "known")


@every_backend
@pytest.mark.parametrize("number", ["+3292345678", "anonymous", "12", "<script>"])
def test_unknown_callers_are_just_unknown(profiles: CallerProfiles, number: str) -> None:
    profile = profiles.lookup(number)
    assert profile["known"] is False and profile["priority"] == 0
    assert set(profile) == {"known", "number", "priority"}


# --- the endpoint ---------------------------------------------------------------------------


def get(resource: AgiLookupResource, number: str | None, token: str | None) -> tuple[int, Any]:
    request = DummyRequest([b""])
    if number is not None:
        request.args[b"number"] = [number.encode()]
    if token is not None:
        request.requestHeaders.addRawHeader(b"authorization", f"Bearer {token}".encode())
    result = resource.render_GET(request)
    body = b"".join(request.written) if result == NOT_DONE_YET else result
    assert isinstance(body, bytes)
    return request.responseCode or 200, json.loads(body)


def test_the_endpoint_wants_the_service_token() -> None:
    asked: list[str] = []

    def lookup(number: str) -> Any:
        asked.append(number)
        return succeed({"known": False, "number": None, "priority": 0})

    resource = AgiLookupResource(lookup, TOKEN)
    assert get(resource, "050123456", None)[0] == 401
    assert get(resource, "050123456", "wrong-token-wrong-token")[0] == 401
    assert get(resource, "050123456", TOKEN[:-1])[0] == 401
    assert asked == []
    assert get(resource, "050123456", TOKEN) == (
        200,
        {"known": False, "number": None, "priority": 0},
    )
    assert asked == ["050123456"]
    assert get(resource, "", TOKEN)[0] == 400
    assert get(resource, "1" * 65, TOKEN)[0] == 400


def test_the_endpoint_says_unavailable_when_the_lookup_fails() -> None:
    resource = AgiLookupResource(lambda number: fail(RuntimeError("db down")), TOKEN)
    assert get(resource, "050123456", TOKEN) == (503, {"error": "lookup unavailable"})


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        AgiLookupResource(lambda number: succeed({}), "short")


# --- the script -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, {"CTI_LOOKUP": "failed"}),
        ({"known": False, "priority": 0}, {"CTI_LOOKUP": "unknown", "CTI_PRIORITY": "0"}),
        (
            {
                "known": True,
                "customer_id": 7,
                "name": 'Jan "de Baas" ${EVIL}; $[1+1] \\ O\'Brien & Zonen',
                "language": "nl",
                "tier": "premium",
                "priority": 10,
            },
            {
                "CTI_LOOKUP": "known",
                "CTI_PRIORITY": "10",
                "CTI_CUSTOMER_ID": "7",
                "CTI_CUSTOMER_NAME": "Jan de Baas EVIL 1 1 O'Brien Zonen",
                "CTI_LANGUAGE": "nl",
                "CTI_TIER": "premium",
            },
        ),
        (
            {
                "known": True,
                "customer_id": "7; Hangup",
                "name": "<script>\r\n",
                "language": "nl,Hangup()",
                "tier": "gold tier",
                "priority": 1000,
            },
            {"CTI_LOOKUP": "known", "CTI_PRIORITY": "100", "CTI_CUSTOMER_NAME": "script"},
        ),
        (
            {"known": True, "name": "Łódź Zoë", "language": "fr-BE", "priority": True},
            {"CTI_LOOKUP": "known", "CTI_CUSTOMER_NAME": "Łódź Zoë", "CTI_LANGUAGE": "fr_BE"},
        ),
    ],
)
def test_only_safe_values_reach_the_channel(
    profile: dict[str, Any] | None, expected: dict[str, str]
) -> None:
    assert script.variables_for(profile) == expected


@pytest.mark.parametrize(
    ("callerid", "number"),
    [
        ("+3250123456", "+3250123456"),
        ("050 12 34 56", "050 12 34 56"),
        ("anonymous", None),
        ("unknown", None),
        ("", None),
        ("<script>", None),
    ],
)
def test_caller_number_from_the_agi_environment(callerid: str, number: str | None) -> None:
    assert script.caller_number({"agi_callerid": callerid}) == number


class Backend(http.server.BaseHTTPRequestHandler):
    """cti-bridge as the script sees it: answers by number, or stalls."""

    stall = threading.Event()
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        Backend.seen.append((self.path, self.headers.get("Authorization")))
        if Backend.stall.is_set():
            time.sleep(2)
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(
            {
                "known": True,
                "customer_id": 3,
                "name": "Jan Peeters",
                "language": "nl",
                "tier": "premium",
                "priority": 10,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Backend.stall.clear()
    Backend.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Backend.stall.clear()
    server.shutdown()
    server.server_close()


def asterisk_side(sock: socket.socket, env: dict[str, str]) -> list[str]:
    """Play Asterisk: send the AGI environment, answer every command with success."""
    sock.sendall("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    commands = []
    reader = sock.makefile("r", encoding="utf-8", newline="\n")
    for line in reader:
        commands.append(line.rstrip("\n"))
        sock.sendall(b"200 result=1\n")
    return commands


def run_agi(env: dict[str, str], settings: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    from asterisk.agi import AGI

    ours, theirs = socket.socketpair()
    commands: list[str] = []
    pbx = threading.Thread(target=lambda: commands.extend(asterisk_side(theirs, env)))
    pbx.start()
    reader = ours.makefile("r", encoding="utf-8", newline="\n")
    writer = ours.makefile("w", encoding="utf-8", newline="\n")
    with open("/dev/null", "w", encoding="utf-8") as quiet:
        done = script.handle(AGI(stdin=reader, stdout=writer, stderr=quiet), settings)
    writer.close()
    reader.close()
    ours.close()
    pbx.join(5)
    theirs.close()
    return done, commands


def test_the_script_sets_the_variables_through_pyst2(backend: str) -> None:
    env = {"agi_request": "caller_lookup.py", "agi_callerid": "+3250123456", "agi_channel": "x"}
    done, commands = run_agi(env, {"url": backend, "token": TOKEN, "timeout": "2"})
    assert done["CTI_LOOKUP"] == "known"
    assert commands == [
        'SET VARIABLE "CTI_LOOKUP" "known"',
        'SET VARIABLE "CTI_PRIORITY" "10"',
        'SET VARIABLE "CTI_CUSTOMER_ID" "3"',
        'SET VARIABLE "CTI_CUSTOMER_NAME" "Jan Peeters"',
        'SET VARIABLE "CTI_LANGUAGE" "nl"',
        'SET VARIABLE "CTI_TIER" "premium"',
    ]
    assert Backend.seen == [("/api/agi/lookup?number=%2B3250123456", f"Bearer {TOKEN}")]


def test_a_stalled_lookup_gives_up_and_the_call_goes_on(backend: str) -> None:
    Backend.stall.set()
    env = {"agi_request": "caller_lookup.py", "agi_callerid": "050123456"}
    started = time.monotonic()
    done, commands = run_agi(env, {"url": backend, "token": TOKEN, "timeout": "0.3"})
    assert done == {"CTI_LOOKUP": "failed"}
    assert commands == ['SET VARIABLE "CTI_LOOKUP" "failed"']
    assert time.monotonic() - started < 1.8  # the deadline held; the backend stalls 2 s


@pytest.mark.parametrize(
    "settings",
    [
        {"url": "http://127.0.0.1:9", "token": TOKEN, "timeout": "0.5"},  # nobody listens
        {"url": "ftp://example.invalid", "token": TOKEN},
        {"token": ""},  # no token configured
        {"url": "http://127.0.0.1:9", "token": "bad token\r\nX-Evil: 1"},
    ],
)
def test_any_failure_sets_failed_only(settings: dict[str, str]) -> None:
    env = {"agi_request": "caller_lookup.py", "agi_callerid": "050123456"}
    done, commands = run_agi(env, settings)
    assert done == {"CTI_LOOKUP": "failed"}
    assert commands == ['SET VARIABLE "CTI_LOOKUP" "failed"']


def test_a_withheld_caller_is_not_looked_up(backend: str) -> None:
    env = {"agi_request": "caller_lookup.py", "agi_callerid": "anonymous"}
    done, _ = run_agi(env, {"url": backend, "token": TOKEN})
    assert done == {"CTI_LOOKUP": "unknown", "CTI_PRIORITY": "0"}
    assert Backend.seen == []


def test_wrong_token_is_a_failure(backend: str) -> None:
    env = {"agi_request": "caller_lookup.py", "agi_callerid": "050123456"}
    done, _ = run_agi(env, {"url": backend, "token": "x" * 20})
    assert done == {"CTI_LOOKUP": "failed"}


def test_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "agi.conf"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config.write_text(f"# cti-bridge\nurl = http://cti:8080\ntoken_file = {token_file}\n")
    settings = script.load_settings({"CTI_AGI_CONFIG": str(config)})
    assert settings["url"] == "http://cti:8080" and settings["token"] == TOKEN
    settings = script.load_settings(
        {"CTI_AGI_CONFIG": str(config), "CTI_BRIDGE_URL": "http://other", "CTI_AGI_TIMEOUT": "1"}
    )
    assert settings["url"] == "http://other" and settings["timeout"] == "1"
    assert script.load_settings({"CTI_AGI_CONFIG": str(tmp_path / "none")})["token"] == ""


def test_process_agi_mode_speaks_agi_on_stdin_and_stdout(tmp_path: Path) -> None:
    """``AGI(caller_lookup.py)``: Asterisk's side is played through the pipes."""
    env = "agi_request: caller_lookup.py\nagi_callerid: anonymous\nagi_channel: x\n\n"
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=env + "200 result=1\n" * 5,
        capture_output=True,
        text=True,
        timeout=30,
        env={"CTI_AGI_CONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        'SET VARIABLE "CTI_LOOKUP" "unknown"',
        'SET VARIABLE "CTI_PRIORITY" "0"',
    ]
    assert "anonymous" not in done.stderr  # pyst2's echo of the environment is silenced


@pytest.mark.parametrize("stdin", ["", "not an agi environment\n\n", "agi_callerid: 050\n"])
def test_process_agi_mode_never_fails(stdin: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={"CTI_AGI_CONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr == ""
