"""The ``cti-bridge`` command as an administrator uses it: one process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.store import open_store
from tests.support.paths import TRACES


def cti(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cti_bridge.app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cti.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "cti.sqlite3"}"\n'
        '[[pbx]]\nname = "main"\nhost = "127.0.0.1"\nport = 1\nusername = "cti"\n'
        'secret_env = "CTI_TEST_AMI_SECRET"\n'
    )
    return path


def test_a_bad_config_stops_start_up_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[web]\nport = 8080\nbind = "x"\n')
    done = cti("run", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr == f"cti-bridge: {bad}: web.bind: unknown key\n"


def test_a_missing_secret_names_the_variable(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTI_TEST_AMI_SECRET", raising=False)
    done = cti("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"cti-bridge: {config}: pbx[0].secret_env: environment variable "
        "CTI_TEST_AMI_SECRET is not set"
    )


def test_the_daemon_refuses_an_out_of_date_schema(config: Path) -> None:
    done = cti("run", "--config", str(config), env={"CTI_TEST_AMI_SECRET": "s"})
    assert done.returncode == 2
    assert f"run `cti-bridge db upgrade --config {config}`" in done.stderr
    assert done.stderr.count("\n") == 1  # one line, no traceback


def test_db_upgrade_then_operators(config: Path, tmp_path: Path) -> None:
    env = {"CTI_TEST_AMI_SECRET": "s", "CTI_BRIDGE_CONFIG": str(config)}
    done = cti("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert cti("db", "upgrade", env=env).returncode == 0  # idempotent

    done = cti(
        "operators",
        "add",
        "anna",
        "--role",
        "operator",
        "--name",
        "Anna Peeters",
        "--device",
        "PJSIP/1001",
        stdin="first password\n",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    done = cti(
        "operators",
        "add",
        "sofie",
        "--role",
        "supervisor",
        "--password-env",
        "PW",
        env={**env, "PW": "supervisor password"},
    )
    assert done.returncode == 0, done.stderr
    done = cti("operators", "bind-device", "anna", "Local/1001@agents", env=env)
    assert done.returncode == 0, done.stderr
    done = cti("operators", "set-password", "anna", stdin="second password\n", env=env)
    assert done.returncode == 0, done.stderr

    store = open_store(f"sqlite:///{tmp_path / 'cti.sqlite3'}")
    try:
        anna = store.accounts.get_operator("anna")
        assert anna is not None
        assert (anna.name, anna.role) == ("Anna Peeters", "operator")
        assert set(anna.devices) == {"PJSIP/1001", "Local/1001@agents"}
        assert store.accounts.verify_login("anna", "second password", "test").id == anna.id
        sofie = store.accounts.get_operator("sofie")
        assert sofie is not None
        assert sofie.role == "supervisor"
    finally:
        store.close()

    done = cti("operators", "add", "anna", "--role", "operator", stdin="x" * 12 + "\n", env=env)
    assert done.returncode == 2 and done.stderr.startswith("cti-bridge: ")
    assert "anna" in done.stderr and "Traceback" not in done.stderr
    done = cti("operators", "add", "bob", "--role", "operator", stdin="short\n", env=env)
    assert done.returncode == 2 and "at least 8 characters" in done.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pg.toml"
    path.write_text('[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    done = cti("db", "upgrade", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("cti-bridge: database unreachable:")
    assert "Traceback" not in done.stderr


def replayed(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = cti("replay", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_replay_prints_the_records_a_recording_makes() -> None:
    queue, busy, xfer = (
        replayed(str(TRACES / name))
        for name in (
            "pjsip/02-queue-busy-then-answered.ami",
            "08-callback-originate-customer-busy.ami",
            "timestamped/05-blind-transfer.ami",
        )
    )
    (call,) = queue
    assert (call["outcome"], call["answered_by"], call["queue"]) == (
        "answered",
        "PJSIP/1002",
        "support-sip",
    )
    assert call["rang"] == ["PJSIP/1002", "PJSIP/1001"]
    assert call["caller_number"] == "+3250987654" and call["caller_name"] == "Marie Dubois"
    (call,) = busy  # operator first: Anna answered, then the customer was busy
    assert (call["outcome"], call["answered_by"], call["direction"]) == ("failed", None, "outbound")
    assert call["rang"] == ["Local/1001@agents"]  # the customer's phone is no operator
    assert [(r["device"], r["result"], r["outside"]) for r in call["rings"]] == [
        ("Local/1001@agents", "answered", False),
        ("Local/0478554433@pstn-out", "busy", True),
    ]
    (call,) = xfer
    assert call["outcome"] == "transferred"
    assert call["wait_seconds"] == pytest.approx(2.005, abs=0.001)  # Timestamp headers
    assert call["talk_seconds"] == pytest.approx(20.508, abs=0.001)


def test_replay_into_the_configured_database_is_idempotent(config: Path, tmp_path: Path) -> None:
    env = {"CTI_TEST_AMI_SECRET": "s", "CTI_BRIDGE_CONFIG": str(config)}
    assert cti("db", "upgrade", env=env).returncode == 0
    trace = str(TRACES / "12-burst.ami")
    first = replayed(trace, env=env)
    second = replayed(trace, env=env)
    assert len(first) == len(second) == 40
    assert [c["id"] for c in first] == [c["id"] for c in second]
    outcomes = [c["outcome"] for c in second]
    assert (outcomes.count("answered"), outcomes.count("abandoned")) == (24, 16)
    store = open_store(f"sqlite:///{tmp_path / 'cti.sqlite3'}")
    try:
        assert len(store.queries.list_calls(limit=500)) == 40
        assert {c["pbx"] for c in store.queries.list_calls(limit=500)} == {"main"}
    finally:
        store.close()


def test_replay_of_something_else_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ami"
    junk.write_bytes(b"")
    done = cti("replay", str(junk))
    assert done.returncode == 2
    assert done.stderr == f"cti-bridge: {junk}: no AMI messages in it\n"
