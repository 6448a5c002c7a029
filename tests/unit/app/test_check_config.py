"""``cti-bridge check-config`` (issue 13): an AMI user with more write permissions than
the daemon needs, a manager.conf listening beyond loopback without deny/permit, and
secrets written in the TOML file; errors exit 1, warnings alone 0, a config that does
not load 2. Through the command (``main``) on files in a temporary directory, and the
project's own manager.conf (the lab's, and as the Docker entrypoint narrows it)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cti_bridge.app.checks import ACTIONS, LEAST_WRITE, check_manager_conf, parse_manager_conf
from cti_bridge.app.cli import main

ROOT = Path(__file__).resolve().parents[3]
LAB_MANAGER_CONF = ROOT / "config" / "asterisk" / "manager.conf"
ENTRYPOINT = ROOT / "docker" / "asterisk-entrypoint.sh"

GOOD_MANAGER = """\
[general]
enabled = yes
port = 5038
bindaddr = 127.0.0.1

[cti]
secret = s3cret
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = call,reporting,agent,originate
"""


def toml(tmp_path: Path, pbx: str = 'secret_env = "CTI_TEST_AMI"', extra: str = "") -> Path:
    file = tmp_path / "cti-bridge.toml"
    file.write_text(
        f"""
[database]
url = "sqlite:///x.sqlite3"
{extra}
[[pbx]]
name = "main"
username = "cti"
{pbx}
manager_conf = "manager.conf"
"""
    )
    file.chmod(0o600)
    return file


def run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manager: str | None = GOOD_MANAGER,
    **kwargs: str,
) -> tuple[int, list[str]]:
    monkey = os.environ.setdefault("CTI_TEST_AMI", "from-the-environment")
    assert monkey
    config = toml(tmp_path, **kwargs)
    argv = ["check-config", "--config", str(config)]
    if manager is not None:
        (tmp_path / "manager.conf").write_text(manager)
        argv += ["--manager-conf", str(tmp_path / "manager.conf")]
    code = main(argv)
    return code, capsys.readouterr().out.splitlines()


def findings(lines: list[str], severity: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{severity}: ")]


def test_a_least_privilege_loopback_setup_has_no_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(tmp_path, capsys, extra="[dialer]\nenabled = true\n")
    assert code == 0, lines
    assert lines == ["check-config: no findings"]


W = "write = call,reporting,agent,originate"
NO_DENY = ("deny = 0.0.0.0/0.0.0.0\n", "")


@dataclass(frozen=True)
class Case:
    name: str
    changes: tuple[tuple[str, str], ...]
    severity: str
    words: tuple[str, ...]
    dialer: bool = True


CASES = [
    Case("write = all", ((W, "write = all"),), "error", ("every class", W)),
    Case("write has command", ((W, W + ",command"),), "error", ("command", "controls the PBX")),
    Case("write has config", ((W, W + ",config"),), "error", ("config",)),
    Case("unused classes", ((W, W + ",dtmf,user"),), "warning", ("dtmf, user", "never uses")),
    Case("system and originate", ((W, W + ",system"),), "warning", ("System()", "PJSIPShow")),
    Case("originate, no dialer", (), "warning", ("originate", "[dialer]"), dialer=False),
    Case(
        "no originate with the dialer",
        ((W, "write = call,reporting,agent"),),
        "error",
        ("Originate (callbacks) fails",),
    ),
    Case("no agent", ((W, "write = call,reporting,originate"),), "error", ("QueuePause",)),
    Case("no write at all", ((W, ""),), "error", ("CoreShowChannels",)),
    Case(
        "every address, no deny",
        (("bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0"), NO_DENY),
        "error",
        ("beyond loopback", "no deny/permit"),
    ),
    Case(
        "no bindaddr is every address",
        (("bindaddr = 127.0.0.1\n", ""), NO_DENY),
        "error",
        ("0.0.0.0 (the default)",),
    ),
    Case(
        "TLS beyond loopback",
        (("port = 5038", "tlsenable = yes\ntlsbindaddr = 0.0.0.0:5039"), NO_DENY),
        "error",
        ("tlsbindaddr = 0.0.0.0:5039",),
    ),
    Case("AMI off", (("enabled = yes", "enabled = no"),), "error", ("not enabled",)),
    Case("another user name", (("[cti]", "[crm]"),), "error", ("no [cti] user",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_manager_conf_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    manager = GOOD_MANAGER
    for old, new in case.changes:
        assert old in manager
        manager = manager.replace(old, new)
    extra = "[dialer]\nenabled = true\n" if case.dialer else ""
    code, lines = run(tmp_path, capsys, manager, extra=extra)
    hits = [line for line in findings(lines, case.severity) if all(w in line for w in case.words)]
    assert hits, lines
    assert code == (1 if findings(lines, "error") else 0)
    assert lines[-1].startswith("check-config: ")


def test_beyond_loopback_with_permit_only_is_an_error_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = GOOD_MANAGER.replace("bindaddr = 127.0.0.1", "bindaddr = 192.0.2.10").replace(
        "deny = 0.0.0.0/0.0.0.0\n", ""
    )
    code, lines = run(tmp_path, capsys, manager)
    assert code == 1
    assert any("permit alone restricts nothing" in line for line in findings(lines, "error"))


def test_beyond_loopback_with_deny_everything_then_permit_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = GOOD_MANAGER.replace("bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0").replace(
        "permit = 127.0.0.1/255.255.255.255", "permit = 10.1.2.3/255.255.255.255"
    )
    code, lines = run(tmp_path, capsys, manager, extra="[dialer]\nenabled = true\n")
    assert (code, lines) == (0, ["check-config: no findings"])


def test_a_partial_deny_beyond_loopback_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = GOOD_MANAGER.replace("bindaddr = 127.0.0.1", "bindaddr = ::").replace(
        "deny = 0.0.0.0/0.0.0.0", "deny = 192.0.2.0/24"
    )
    code, lines = run(tmp_path, capsys, manager, extra="[dialer]\nenabled = true\n")
    assert code == 0
    assert any("does not cover every address" in line for line in findings(lines, "warning"))


def test_includes_and_templates_are_followed(tmp_path: Path) -> None:
    (tmp_path / "perms.conf").write_text("write = all ; the include's line counts\n")
    (tmp_path / "manager.conf").write_text(
        "[general]\nenabled = yes\nbindaddr = 127.0.0.1\n"
        "[base](!)\nread = all\nwrite = call,reporting,agent\n"
        '[cti](base)\n#include "perms.conf"\n'
    )
    conf = parse_manager_conf(tmp_path / "manager.conf")
    assert "base" not in conf.sections  # a template is no user
    assert conf.get("cti", "write") == "all"  # the last write wins, as in Asterisk
    found = check_manager_conf(conf, "cti", dialer=False, where="pbx main")
    assert [f.severity for f in found] == ["error"] and "every class" in found[0].message


def test_secrets_written_in_the_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = '[agi]\ntoken = "a-service-token-0123456789"\n'
    extra += '[web]\nstatus_token = "a-status-token-0123456789"\n'
    code, lines = run(tmp_path, capsys, pbx='secret = "written-here"', extra=extra)
    warnings = findings(lines, "warning")
    assert code == 0
    assert any("pbx[0] (main)" in w and "AMI secret" in w and "secret_env" in w for w in warnings)
    assert any(": agi: " in w and "token_env" in w for w in warnings)
    assert any(": web: " in w and "status_token_env" in w for w in warnings)
    assert "written-here" not in "\n".join(lines)  # the finding never repeats the secret


def test_a_secret_in_a_file_everybody_can_read_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml(tmp_path, pbx='secret = "written-here"')
    (tmp_path / "manager.conf").write_text(GOOD_MANAGER)
    config.chmod(0o644)
    code = main(
        ["check-config", "--config", str(config), "--manager-conf", str(tmp_path / "manager.conf")]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert any("readable by every user" in line for line in findings(lines, "error"))


def test_a_password_in_the_database_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = toml(tmp_path)
    config.write_text(
        config.read_text().replace(
            'url = "sqlite:///x.sqlite3"', 'url = "postgresql+psycopg://cti:pw@db/cti"'
        )
    )
    config.chmod(0o600)
    (tmp_path / "manager.conf").write_text(GOOD_MANAGER)
    assert main(["check-config", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("database.url" in w and "PGPASSWORD" in w for w in findings(lines, "warning"))


def test_without_a_manager_conf_it_says_what_it_did_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml(tmp_path)
    config.write_text(config.read_text().replace('manager_conf = "manager.conf"\n', ""))
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "note: pbx main: no manager_conf" in out


def test_an_unreadable_manager_conf_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml(tmp_path)
    code = main(
        ["check-config", "--config", str(config), "--manager-conf", str(tmp_path / "nope.conf")]
    )
    assert code == 1
    assert "cannot read" in capsys.readouterr().out


def test_a_config_that_does_not_load_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nport = 'x'\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("cti-bridge: ")


def test_the_labs_manager_conf_is_flagged_for_write_all() -> None:
    """The tests' Asterisk gives ``cti`` every class (the harness runs CLI commands
    through it): exactly that is an error, nothing else."""
    conf = parse_manager_conf(LAB_MANAGER_CONF)
    found = check_manager_conf(conf, "cti", dialer=True, where="pbx main")
    errors = [f for f in found if f.severity == "error"]
    assert len(errors) == 1 and "every class" in errors[0].message


def test_the_docker_entrypoint_narrows_it_to_what_check_config_accepts(tmp_path: Path) -> None:
    script = ENTRYPOINT.read_text()
    default = re.search(r'CTI_AMI_WRITE="\$\{CTI_AMI_WRITE:-([a-z,]+)\}"', script)
    assert default is not None and default.group(1) == ",".join(LEAST_WRITE)
    assert "s/^write = all\\$/write = $CTI_AMI_WRITE/" in script
    narrowed = tmp_path / "manager.conf"
    narrowed.write_text(
        LAB_MANAGER_CONF.read_text().replace("write = all\n", f"write = {default.group(1)}\n")
    )
    (tmp_path / "manager-cti-secret.conf").write_text("secret = x\n")
    found = check_manager_conf(parse_manager_conf(narrowed), "cti", dialer=True, where="pbx")
    assert found == []


def test_every_action_the_daemon_sends_is_in_the_table() -> None:
    """A new ``send_action("X", ...)`` in the code needs its privilege here."""
    sent: set[str] = set()
    pattern = re.compile(r'send_action\(\s*"([A-Za-z]+)"|up\[pbx\]\("([A-Za-z]+)"')
    for path in (ROOT / "src" / "cti_bridge").rglob("*.py"):
        if {"sim", "testing"} & set(path.parts):
            continue
        for match in pattern.finditer(path.read_text()):
            sent.add(match.group(1) or match.group(2))
    assert sent, "the pattern found nothing"
    assert sent - set(ACTIONS) == set()
