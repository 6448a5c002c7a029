"""``cti-bridge check-config``: what a config can do that start-up does not refuse.

A config that loads can still give the daemon more than it should have or leave the PBX
open: an AMI user that may run CLI commands or rewrite the PBX's configuration, a
manager.conf that listens beyond loopback for anybody with the secret, a secret written
in a TOML file that is copied into backups and tickets. Each finding is an **error**
(fix before running) or a **warning** (a choice somebody should make knowingly);
docs/security.md ("check-config") has the table.

The AMI part reads the PBX's ``manager.conf`` when ``[[pbx]] manager_conf`` (or the
command's ``--manager-conf``) names it: Asterisk's own syntax, ``#include`` and
templates followed, the last ``write`` of the user counting, as Asterisk reads it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .config import Config

__all__ = [
    "ACTIONS",
    "DANGEROUS_WRITE",
    "Finding",
    "ManagerConf",
    "check_config",
    "check_manager_conf",
    "check_toml_secrets",
    "parse_manager_conf",
]

Severity = Literal["error", "warning"]

#: Asterisk's permission classes (manager.c ``perms``), as ``read``/``write`` take them.
CLASSES = frozenset(
    {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message"}
)  # fmt: skip


@dataclass(frozen=True)
class Action:
    """An AMI action the daemon sends: the write classes that allow it (any one of them
    does, as in manager.c; none: every logged-in user), and what fails without it."""

    classes: frozenset[str]
    purpose: str
    #: ``dialer``: only with ``[dialer] enabled``; ``optional``: the daemon copes without.
    needed: Literal["always", "dialer", "optional"] = "always"


#: Every action cti-bridge sends (``grep send_action src/``), with Asterisk 22's privilege.
ACTIONS: dict[str, Action] = {
    "Login": Action(frozenset(), "logging in"),
    "Challenge": Action(frozenset(), "the MD5 login"),
    "Ping": Action(frozenset(), "the keep-alive"),
    "Logoff": Action(frozenset(), "logging off"),
    "QueueStatus": Action(frozenset(), "the queues' resync"),
    "CoreShowChannels": Action(frozenset({"system", "reporting"}), "the channels' resync"),
    "Status": Action(frozenset({"system", "call", "reporting"}), "the dialer's and queues' checks"),
    "DeviceStateList": Action(frozenset({"call", "reporting"}), "the phones' states"),
    "QueuePause": Action(frozenset({"agent"}), "pausing operators (POST .../pause)"),
    "Originate": Action(frozenset({"originate"}), "callbacks", needed="dialer"),
    "PJSIPShowEndpoints": Action(
        frozenset({"system"}), "phones' reachability in the Team view", needed="optional"
    ),
}
#: The least ``write`` for every feature but the optional one.
LEAST_WRITE = ("call", "reporting", "agent", "originate")
#: Write classes that hand over the PBX itself: ``command`` runs any CLI command (``core
#: stop``, ``dialplan add``, ``database put``), ``config`` reads and rewrites every
#: configuration file (manager.conf's secrets included) through ``GetConfig``/
#: ``UpdateConfig``; ``all`` is every class.
DANGEROUS_WRITE = frozenset({"command", "config"})


@dataclass(frozen=True)
class Finding:
    severity: Severity
    where: str
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


# -- manager.conf ---------------------------------------------------------------------------


@dataclass
class ManagerConf:
    """manager.conf as Asterisk reads it: sections of (key, value) lines, in order."""

    path: Path
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: Files named by ``#include`` that could not be read (their lines are unknown).
    unread: list[str] = field(default_factory=list)

    def get(self, section: str, key: str) -> str | None:
        """The last value of ``key`` in ``section`` (as Asterisk's retrieve does)."""
        values = self.getall(section, key)
        return values[-1] if values else None

    def getall(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    @property
    def users(self) -> list[str]:
        return [name for name in self.sections if name != "general"]


_SECTION = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")
_INCLUDE = re.compile(r'^#\s*(include|tryinclude)\s+"?([^"]+?)"?\s*$')


def parse_manager_conf(path: str | os.PathLike[str]) -> ManagerConf:
    """Read ``path`` (``OSError`` if it cannot be read) and what it includes."""
    conf = ManagerConf(Path(path))
    templates: set[str] = set()
    current: list[str | None] = [None]

    def read(file: Path, depth: int) -> None:
        text = file.read_text(encoding="utf-8", errors="replace")
        for raw in text.splitlines():
            line = _strip_comment(raw).strip()
            if not line:
                continue
            if line.startswith("#"):
                match = _INCLUDE.match(line)
                if match and depth < 8:
                    name = match.group(2).strip()
                    target = Path(name) if os.path.isabs(name) else file.parent / name
                    try:
                        read(target, depth + 1)
                    except OSError:
                        if match.group(1) == "include":
                            conf.unread.append(str(target))
                continue
            section = _SECTION.match(line)
            if section:
                name = section.group(1).strip().lower()
                options = [o.strip().lower() for o in (section.group(2) or "").split(",")]
                lines = conf.sections.setdefault(name, [])
                if "+" not in options:
                    lines.clear()
                for option in options:
                    if option == "!":
                        templates.add(name)
                    elif option and option != "+":
                        lines.extend(conf.sections.get(option, []))
                current[0] = name
                continue
            key, sep, value = line.partition("=")
            if not sep or current[0] is None:
                continue
            conf.sections[current[0]].append((key.strip().lower(), value.removeprefix(">").strip()))

    read(conf.path, 0)
    for name in templates:
        conf.sections.pop(name, None)
    return conf


def _strip_comment(line: str) -> str:
    """Asterisk's comments: ``;`` to the end of the line, unless escaped as ``\\;``."""
    out, escaped = [], False
    for char in line:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ";":
            break
        else:
            out.append(char)
    return "".join(out)


def _classes(value: str | None) -> frozenset[str]:
    """A ``read``/``write`` value as classes (``all``, ``yes``: every one; ``none``: none)."""
    if value is None:
        return frozenset()
    words = {w.strip().lower() for w in value.split(",") if w.strip()}
    if words & {"all", "yes", "true", "on", "y", "t", "1"}:
        return CLASSES | {"all"}
    return frozenset(words & CLASSES)


def _is_loopback(address: str | None) -> bool:
    if address is None:
        return False  # Asterisk's default bindaddr is 0.0.0.0
    host = address.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]  # tlsbindaddr = 127.0.0.1:5039
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _denies_everything(rule: str) -> bool:
    """``deny = 0.0.0.0/0.0.0.0`` (or ``/0``, or ``::/0``); no mask is one host."""
    address, _, mask = rule.partition("/")
    anywhere = ("0.0.0.0", "::")  # noqa: S104 - an ACL's "every address", not a bind
    return address.strip() in anywhere and mask.strip() in ("0", *anywhere)


def check_manager_conf(
    conf: ManagerConf, username: str, *, dialer: bool, where: str
) -> list[Finding]:
    """The AMI user's write classes against what the daemon sends, and who may reach
    AMI when it listens beyond loopback."""
    found: list[Finding] = []
    here = f"{where}: {conf.path}"
    for unread in conf.unread:
        found.append(Finding("warning", here, f"cannot read the included {unread}; not checked"))
    if conf.get("general", "enabled") is None or not _truthy(conf.get("general", "enabled")):
        found.append(Finding("error", here, "AMI is not enabled ([general] enabled = yes)"))
    user = username.lower()
    if user not in conf.sections:
        found.append(Finding("error", here, f"no [{username}] user: cti-bridge cannot log in"))
    else:
        found += _check_write(conf, user, dialer=dialer, where=f"{here}: [{username}]")
    found += _check_listening(conf, where=here)
    return found


def _check_write(conf: ManagerConf, user: str, *, dialer: bool, where: str) -> list[Finding]:
    found: list[Finding] = []
    write = _classes(conf.get(user, "write"))
    for name, action in ACTIONS.items():
        if not action.classes or write & action.classes:
            continue
        if action.needed == "always" or (action.needed == "dialer" and dialer):
            wanted = " or ".join(sorted(action.classes))
            found.append(
                Finding("error", where, f"write lacks {wanted}: {name} ({action.purpose}) fails")
            )
    used = {c for a in ACTIONS.values() for c in a.classes}
    if not dialer:
        used.discard("originate")
    extra = sorted((write - {"all"}) - used)
    least = ",".join(c for c in LEAST_WRITE if dialer or c != "originate")
    if "all" in write or write & DANGEROUS_WRITE:
        handed = "every class" if "all" in write else ", ".join(sorted(write & DANGEROUS_WRITE))
        found.append(
            Finding(
                "error",
                where,
                f"write = {conf.get(user, 'write')} gives {handed}: whoever has this secret "
                f"controls the PBX (CLI commands, its configuration); cti-bridge needs "
                f"write = {least}",
            )
        )
    elif extra:
        found.append(
            Finding(
                "warning",
                where,
                f"write has {', '.join(extra)}, which cti-bridge never uses; it needs "
                f"write = {least}",
            )
        )
    if "system" in write and "originate" in write and "all" not in write:
        found.append(
            Finding(
                "warning",
                where,
                "write has system and originate: that lets this user Originate System() "
                "(a shell on the PBX host); cti-bridge uses system only for "
                "PJSIPShowEndpoints (phones' reachability), without it phones go by their "
                "device state",
            )
        )
    if not dialer and "originate" in write and "all" not in write:
        found.append(Finding("warning", where, "write has originate but [dialer] is not enabled"))
    return found


def _check_listening(conf: ManagerConf, *, where: str) -> list[Finding]:
    listens = []
    bind = conf.get("general", "bindaddr")
    if not _is_loopback(bind):
        listens.append(f"bindaddr = {bind or '0.0.0.0 (the default)'}")
    if _truthy(conf.get("general", "tlsenable")):
        tls = conf.get("general", "tlsbindaddr")
        if not _is_loopback(tls):
            listens.append(f"tlsbindaddr = {tls or '0.0.0.0 (the default)'}")
    if not listens:
        return []
    found: list[Finding] = []
    for user in conf.users:
        denies = conf.getall(user, "deny")
        named_acl = conf.getall(user, "acl")
        if named_acl:
            continue  # an acl.conf list: not followed here
        if not denies:
            permits = " (permit alone restricts nothing: add deny = 0.0.0.0/0.0.0.0 first)"
            found.append(
                Finding(
                    "error",
                    f"{where}: [{user}]",
                    f"AMI listens beyond loopback ({'; '.join(listens)}) and this user has "
                    "no deny/permit: any host that reaches the port may log in with its "
                    "secret" + (permits if conf.getall(user, "permit") else ""),
                )
            )
        elif not any(_denies_everything(rule) for rule in denies):
            found.append(
                Finding(
                    "warning",
                    f"{where}: [{user}]",
                    f"AMI listens beyond loopback ({'; '.join(listens)}) and this user's "
                    "deny does not cover every address (deny = 0.0.0.0/0.0.0.0, then permit "
                    "the daemon's host)",
                )
            )
    return found


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("yes", "true", "on", "y", "t", "1")


# -- secrets in the TOML file ---------------------------------------------------------------


def check_toml_secrets(path: str | os.PathLike[str]) -> list[Finding]:
    """Secrets written in the TOML file itself instead of the environment: a warning
    each, an error when the file is readable by every user of the host."""
    file = Path(path)
    data = tomllib.loads(file.read_text(encoding="utf-8"))
    try:
        open_to_all = bool(file.stat().st_mode & stat.S_IROTH)
    except OSError:
        open_to_all = False
    severity: Severity = "error" if open_to_all else "warning"
    readable = " and the file is readable by every user of this host" if open_to_all else ""
    found: list[Finding] = []

    def written(where: str, what: str, instead: str) -> None:
        found.append(
            Finding(
                severity, f"{file}: {where}", f"{what} is written in the file{readable}; {instead}"
            )
        )

    for index, pbx in enumerate(_tables(data.get("pbx"))):
        if pbx.get("secret") is not None:
            written(
                f"pbx[{index}] ({pbx.get('name', '?')})",
                "the AMI secret",
                'give secret_env = "VAR" and the secret in that environment variable',
            )
    agi = data.get("agi")
    if isinstance(agi, Mapping) and agi.get("token") is not None:
        written("agi", "the AGI service token", 'give token_env = "VAR" instead')
    web = data.get("web")
    if isinstance(web, Mapping) and web.get("status_token") is not None:
        written("web", "the status token", 'give status_token_env = "VAR" instead')
    for section, hint in (
        ("database", "leave it out of the URL (PostgreSQL: PGPASSWORD or ~/.pgpass)"),
        ("bus", "leave it out of the URL or restrict who can read the file"),
    ):
        table = data.get(section)
        url = table.get("url") if isinstance(table, Mapping) else None
        if isinstance(url, str) and _url_password(url):
            written(f"{section}.url", "a password", hint)
    return found


def _tables(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _url_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


# -- the whole check --------------------------------------------------------------------------


def check_config(
    config: Config,
    path: str | os.PathLike[str] | None,
    manager_confs: Mapping[str, str] | None = None,
) -> tuple[list[Finding], list[str]]:
    """Every finding for ``config`` (read from ``path``), and notes on what was not
    checked. ``manager_confs``: a PBX's manager.conf by PBX name, over its
    ``manager_conf`` key."""
    found: list[Finding] = []
    notes: list[str] = []
    if path is not None:
        found += check_toml_secrets(path)
    given = dict(manager_confs or {})
    for pbx in config.pbx:
        where = f"pbx {pbx.name}"
        conf_path = given.get(pbx.name)
        if conf_path is None and pbx.manager_conf is not None:
            # In the config file: relative to the file, as a site writes it.
            base = Path(path).parent if path is not None else Path.cwd()
            conf_path = str(base / pbx.manager_conf)
        if conf_path is None:
            notes.append(
                f"{where}: no manager_conf: the AMI user's permissions and where AMI "
                "listens were not checked"
            )
            continue
        try:
            conf = parse_manager_conf(conf_path)
        except OSError as error:
            found.append(Finding("error", where, f"cannot read {conf_path}: {error.strerror}"))
            continue
        found += check_manager_conf(conf, pbx.username, dialer=config.dialer.enabled, where=where)
    return found, notes
