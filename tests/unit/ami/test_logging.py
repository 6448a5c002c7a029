"""cti_bridge.log: JSON lines from structlog, stdlib and Twisted; redaction; no injection."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from twisted.logger import Logger
from twisted.python.failure import Failure

from cti_bridge.log import configure_logging, get_logger, register_secret

Lines = Callable[[], list[dict[str, Any]]]


def fail_with(exc: Exception) -> None:
    raise exc


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


@pytest.fixture
def lines(stream: io.StringIO) -> Lines:
    def read() -> list[dict[str, Any]]:
        raw = stream.getvalue().splitlines()
        return [json.loads(line) for line in raw]  # every line is one JSON object

    return read


def test_structlog_entries_are_json_lines(lines: Lines) -> None:
    get_logger("cti_bridge.test").info("call_answered", call_id=7, operator="anna")
    (entry,) = lines()
    assert entry["event"] == "call_answered"
    assert entry["level"] == "info"
    assert entry["logger"] == "cti_bridge.test"
    assert entry["call_id"] == 7 and entry["operator"] == "anna"
    assert entry["timestamp"].endswith("Z")  # ISO 8601, UTC
    assert entry["timestamp"][10] == "T"


def test_level_filters(lines: Lines) -> None:
    log = get_logger("cti_bridge.test")
    log.debug("hidden")
    log.warning("shown")
    assert [e["event"] for e in lines()] == ["shown"]


def test_stdlib_logging_is_routed(lines: Lines) -> None:
    logging.getLogger("sqlalchemy.engine").warning("pool %s exhausted", "main")
    (entry,) = lines()
    assert entry == {
        "event": "pool main exhausted",
        "level": "warning",
        "logger": "sqlalchemy.engine",
        "timestamp": entry["timestamp"],
    }


def test_twisted_log_is_routed_with_its_traceback(lines: Lines) -> None:
    twisted_log = Logger(namespace="twisted.internet.defer")
    twisted_log.info("Starting factory {factory}", factory="<AMIProtocolFactory>")
    try:
        fail_with(RuntimeError("unhandled in a Deferred"))
    except RuntimeError:
        twisted_log.failure("Unhandled error in Deferred:", Failure())
    info, error = lines()
    assert (info["logger"], info["level"], info["event"]) == (
        "twisted.internet.defer",
        "info",
        "Starting factory <AMIProtocolFactory>",
    )
    assert error["level"] == "critical"
    assert "RuntimeError: unhandled in a Deferred" in error["exception"]


def test_exceptions_are_logged_with_traceback(lines: Lines) -> None:
    try:
        empty: dict[str, str] = {}
        empty["missing"]
    except KeyError:
        get_logger("cti_bridge.test").exception("listener_failed")
    (entry,) = lines()
    assert entry["level"] == "error"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in entry["exception"]


@pytest.mark.parametrize(
    "key",
    ["secret", "Secret", "password", "db_password", "token", "api_token", "Authorization", "key"],
)
def test_credential_keys_are_redacted(lines: Lines, key: str) -> None:
    get_logger("t").info("x", **{key: "hunter2-value"})
    assert lines()[0][key] == "***"


def test_nested_credentials_are_redacted_and_other_keys_kept(lines: Lines) -> None:
    get_logger("t").info(
        "ami_action_sent",
        headers={"Username": "cti", "Secret": "hunter2", "Key": "abc", "Events": "on"},
        monkey="kept",
        keyboard="kept",
        items=[{"password": "p"}, "plain"],
    )
    entry = lines()[0]
    assert entry["headers"] == {"Username": "cti", "Secret": "***", "Key": "***", "Events": "on"}
    assert entry["monkey"] == "kept" and entry["keyboard"] == "kept"
    assert entry["items"] == [{"password": "***"}, "plain"]


def test_registered_secret_is_cut_out_everywhere(stream: io.StringIO, lines: Lines) -> None:
    secret = "Xq9-registered-secret"
    register_secret(secret)
    log = get_logger("t")
    log.info(f"connecting with {secret}", note=f"a{secret}b", raw=secret.encode(), n=3)
    try:
        fail_with(ValueError(f"login failed for {secret}"))
    except ValueError:
        log.exception("login_crashed", error=ValueError(secret))
    logging.getLogger("other").error("stdlib text %s", secret)
    assert secret not in stream.getvalue()
    first = lines()[0]
    assert first["event"] == "connecting with ***"
    assert first["note"] == "a***b"
    assert first["n"] == 3  # numbers stay numbers
    assert "ValueError: login failed for ***" in lines()[1]["exception"]


def test_control_characters_cannot_forge_log_lines(stream: io.StringIO, lines: Lines) -> None:
    hostile = 'Piet Fraude\r\n{"level": "critical", "event": "forged"}\x1b[2J\u2028\u202e'
    get_logger("cti_bridge.pop").info("screen_pop", caller_name=hostile)
    logging.getLogger("cti_bridge.std").info("caller %s", hostile)
    raw = stream.getvalue()
    assert raw.count("\n") == 2, "one line per entry, whatever the caller name holds"
    assert "\u2028" not in raw and "\x1b" not in raw
    pop, std = lines()
    assert pop["caller_name"] == (
        'Piet Fraude\\x0d\\x0a{"level": "critical", "event": "forged"}\\x1b[2J\\u2028\\u202e'
    )
    assert "\\x0d\\x0a" in std["event"]
    assert not any(e.get("event") == "forged" for e in lines())


def test_configuring_again_does_not_duplicate_lines(stream: io.StringIO) -> None:
    configure_logging("INFO", stream)
    configure_logging("INFO", stream)
    get_logger("t").info("once")
    logging.getLogger("s").info("once too")
    assert stream.getvalue().count("\n") == 2
