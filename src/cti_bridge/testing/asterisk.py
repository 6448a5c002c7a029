"""A real Asterisk 22 for tests, benchmarks and manual checks.

Asterisk runs from the Debian sid root that ``scripts/asterisk-root`` builds once and caches
(``chroot ROOT /usr/sbin/asterisk -C ... -f``). Nothing of that root is changed: every
instance gets its own directories under ``ROOT/var/lib/cti-instances/<name>/`` (config,
spool, AstDB, logs, control socket), named in its own ``asterisk.conf``, and its own free
ports on 127.0.0.1 (AMI, SIP, RTP). So CI and several engineers can run instances side by
side from one root.

The configuration is the project's own (``config/asterisk/`` and ``dialplans/``), copied
per instance with only the port numbers and the AMI secret filled in, so the tests run the
PBX that ``docker/`` ships.

This module is synchronous and uses raw sockets and subprocesses on purpose: it must work
before and without the cti-bridge AMI client, and it is driven from pytest fixtures, not
from inside a reactor.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cti_bridge.testing.chroot import (
    ASTERISK,
    DEFAULT_ROOT,
    INSTANCES,
    ROOT_STAMP,
    AsteriskError,
    asterisk_root,
    ensure_proc,
    free_ports,
    free_udp_range,
    instances_lock,
    kill_group,
    live_instances,
    reap_stale_instances,
    release_proc,
    root_problem,
    spawn,
)
from cti_bridge.testing.rawami import CONTROL, AMIClosed, RawAMI

__all__ = [
    "ASTERISK",
    "DEFAULT_ROOT",
    "INSTANCES",
    "ROOT_STAMP",
    "AMIClosed",
    "AsteriskError",
    "AsteriskInstance",
    "DialAudit",
    "RawAMI",
    "SipPorts",
    "asterisk_root",
    "free_udp_range",
    "root_problem",
]

_REPO = Path(__file__).resolve().parents[3]

# Port numbers in config/asterisk/pjsip.conf that each instance replaces with its own.
_SIP_LAB_PORTS = {"asterisk": 5060, "1001": 5171, "1002": 5172, "2001": 5173}
_TRUNK_IN, _TRUNK_OUT = 5190, 5191
_RTP_PORTS = 20
_TOKEN = re.compile(r"^[A-Za-z0-9_+*#.@/-]+$")


@dataclass(frozen=True)
class SipPorts:
    """UDP ports of one instance's SIP lab (see config/asterisk/pjsip.conf)."""

    asterisk: int
    phones: Mapping[str, int]
    trunk_in: int
    trunk_out: int
    rtp_start: int
    rtp_end: int


_AUDIT_FAMILIES = ("cti_rung", "cti_dialled")
_AUDIT_LINE = re.compile(r"^/(cti_rung|cti_dialled)/(\d+)/(\d*)/(\S+?)\s*:\s*(\S*)\s*$")


@dataclass(frozen=True)
class DialAudit:
    """Every callback leg the dialplan noted, per ``(agreement, attempt)``: ``rung`` the
    operator extensions an Originate rang (one entry per Originate that reached an
    operator's device), ``dialled`` the customer numbers dialled once an operator
    answered (one entry per dial). Lists, not counters: a second Originate or dial of the
    same attempt shows as a second entry."""

    rung: Mapping[tuple[int, int], tuple[str, ...]]
    dialled: Mapping[tuple[int, int], tuple[str, ...]]

    @classmethod
    def parse(cls, rung_output: str, dialled_output: str) -> DialAudit:
        """From two ``database show <family>`` outputs (key ``/<family>/<agreement>/
        <attempt>/<uniqueid>``, value the extension or number)."""
        found: dict[str, dict[tuple[int, int], list[str]]] = {f: {} for f in _AUDIT_FAMILIES}
        for line in (rung_output + "\n" + dialled_output).splitlines():
            match = _AUDIT_LINE.match(line.strip())
            if match:
                family, agreement, attempt, _leg, value = match.groups()
                key = (int(agreement), int(attempt or 0))
                found[family].setdefault(key, []).append(value)
        rung, dialled = (
            {key: tuple(values) for key, values in found[f].items()} for f in _AUDIT_FAMILIES
        )
        return cls(rung, dialled)

    def rung_for(self, agreement: int, attempt: int) -> tuple[str, ...]:
        return self.rung.get((agreement, attempt), ())

    def dialled_for(self, agreement: int, attempt: int) -> tuple[str, ...]:
        return self.dialled.get((agreement, attempt), ())

    def attempts_rung(self, agreement: int) -> list[int]:
        """The attempt numbers an Originate rang an operator for, in order."""
        return sorted(n for a, n in self.rung if a == agreement)


class AsteriskInstance:
    """One Asterisk process with the project's configuration, on free loopback ports.

    ``start()`` returns once AMI has said ``FullyBooted``; ``stop()`` (or leaving the
    ``with`` block) shuts it down and removes everything the instance created. Asterisk is
    killed when the test process dies (``PR_SET_PDEATHSIG``), so a killed test run leaves
    no PBX behind; the next instance to start removes what such a run left.
    """

    ami_host = "127.0.0.1"

    def __init__(
        self,
        root: Path | None = None,
        *,
        config_dir: Path | None = None,
        dialplan_dir: Path | None = None,
        username: str = "cti",
        secret: str | None = None,
        boot_timeout: float = 30.0,
    ) -> None:
        self.root = (root or asterisk_root()).resolve()
        self.config_dir = config_dir or _REPO / "config" / "asterisk"
        self.dialplan_dir = dialplan_dir or _REPO / "dialplans"
        self.username = username
        self.secret = secret or secrets.token_urlsafe(18)
        self.boot_timeout = boot_timeout
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.ami_port = 0
        self.sip = SipPorts(0, {}, 0, 0, 0, 0)
        self._process: subprocess.Popen[bytes] | None = None
        self._sequence = 0

    # ------------------------------------------------------------------ paths
    @property
    def chroot_dir(self) -> str:
        """The instance's directory as Asterisk sees it, inside the root."""
        return f"/{INSTANCES}/{self.name}"

    @property
    def instance_dir(self) -> Path:
        """The same directory seen from the host."""
        return self.root / INSTANCES / self.name

    @property
    def spool_dir(self) -> Path:
        return self.instance_dir / "spool"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Prepare the instance, start Asterisk and wait for FullyBooted."""
        if self._process is not None:
            raise AsteriskError("instance already started")
        problem = root_problem(self.root)
        if problem:
            raise AsteriskError(problem)
        for needed in (self.config_dir / "manager.conf", self.dialplan_dir / "helpdesk.conf"):
            if not needed.is_file():
                raise AsteriskError(f"{needed} not found: pass config_dir/dialplan_dir")
        try:
            with instances_lock(self.root):
                reap_stale_instances(self.root)
                self.instance_dir.mkdir(parents=True)
                (self.instance_dir / "owner").write_text(f"{os.getpid()}\n")
                ensure_proc(self.root)
            self._pick_ports()
            self._write_config()
            self._spawn()
            self.wait_fully_booted(self.boot_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Asterisk (gracefully, then by force) and remove the instance's files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(AsteriskError):
                self._cli_raw("core stop now", timeout=timeout)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(3)
                except subprocess.TimeoutExpired:
                    kill_group(process.pid, signal.SIGKILL)
                    process.wait(3)
        if self.root.is_dir():
            with instances_lock(self.root):
                shutil.rmtree(self.instance_dir, ignore_errors=True)
                if not live_instances(self.root):
                    release_proc(self.root)

    def restart(self, timeout: float | None = None) -> None:
        """``core restart now`` (same process, re-executed) and wait for FullyBooted again."""
        if not self.running:
            raise AsteriskError("instance is not running")
        # A connection of the old process closes when it goes down: waiting for that
        # makes sure the FullyBooted below comes from the new one.
        with self.ami(events="system") as watcher:
            self._cli_raw("core restart now", timeout=10)
            with contextlib.suppress(AMIClosed, OSError):
                watcher.wait_for(lambda m: False, timeout=15, what="close after restart")
        self.wait_fully_booted(timeout or self.boot_timeout)

    # ------------------------------------------------------------------ faults
    def crash(self) -> None:
        """SIGKILL Asterisk: no ``Shutdown`` event, no hang-ups; its sockets just close.

        The instance keeps its ports and files, so ``boot_again`` brings the same PBX back
        (as a supervisor such as systemd would after a crash)."""
        process = self._process
        if process is None or process.poll() is not None:
            raise AsteriskError("instance is not running")
        kill_group(process.pid, signal.SIGKILL)
        process.wait(10)

    def boot_again(self, timeout: float | None = None) -> None:
        """Start Asterisk again after ``crash``, on the same ports, and wait for FullyBooted."""
        if self.running:
            raise AsteriskError("instance is still running")
        with contextlib.suppress(FileNotFoundError):
            (self.instance_dir / "run" / "asterisk.ctl").unlink()  # the dead one's socket
        self._spawn()
        self.wait_fully_booted(timeout or self.boot_timeout)

    def freeze(self) -> None:
        """SIGSTOP Asterisk: its sockets stay open and say nothing (a hung PBX)."""
        if not self.running:
            raise AsteriskError("instance is not running")
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)

    def __enter__(self) -> AsteriskInstance:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ AMI
    def wait_fully_booted(self, timeout: float) -> None:
        """Log in on AMI with the plain secret and wait for the FullyBooted event."""
        deadline = time.monotonic() + timeout
        last_error = "AMI never accepted a connection"
        while time.monotonic() < deadline:
            if not self.running:
                raise AsteriskError(
                    f"Asterisk exited (code {self._exit_code()}) before FullyBooted\n"
                    + self.output_tail()
                )
            try:
                _ami_login_and_wait_booted(
                    self.ami_host, self.ami_port, self.username, self.secret, deadline
                )
                return
            except ConnectionRefusedError:
                last_error = "AMI connection refused"
            except (OSError, TimeoutError) as e:
                last_error = f"AMI: {e}"
            time.sleep(0.05)
        raise AsteriskError(
            f"Asterisk did not report FullyBooted on {self.ami_host}:{self.ami_port} "
            f"within {timeout:.0f} s ({last_error})\n" + self.output_tail()
        )

    def ami(self, events: str = "on", timeout: float = 5.0) -> RawAMI:
        """A new raw AMI connection, logged in as the instance's user."""
        connection = RawAMI(self.ami_host, self.ami_port, timeout)
        try:
            connection.login(self.username, self.secret, events)
        except BaseException:
            connection.close()
            raise
        return connection

    # ------------------------------------------------------------------ CLI and calls
    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command (``asterisk -rx``) in this instance and return its output."""
        if not self.running:
            raise AsteriskError("instance is not running")
        return self._cli_raw(command, timeout)

    def active_channels(self) -> int:
        """How many channels exist right now (``core show channels count``)."""
        output = self.cli("core show channels count")
        found = re.search(r"(\d+) active channels?", output)
        if not found:
            raise AsteriskError(f"unexpected 'core show channels count' output: {output!r}")
        return int(found.group(1))

    def wait_idle(self, timeout: float = 30.0, hangup_after: float | None = None) -> None:
        """Wait until no channel is left, hanging up everything after ``hangup_after`` s.

        Tests share one instance per session: each one ends by leaving the PBX idle.
        """
        start = time.monotonic()
        hung_up = False
        while self.active_channels():
            waited = time.monotonic() - start
            if hangup_after is not None and waited >= hangup_after and not hung_up:
                self.cli("channel request hangup all")
                hung_up = True
            if waited > timeout:
                raise AsteriskError(f"channels still up after {timeout} s")
            time.sleep(0.1)

    def set_operator(self, ext: str, ring: float = 2, talk: float = 60) -> None:
        """Simulate operator phone ``ext``: ring ``ring`` s, answer, talk ``talk`` s, hang up."""
        _check_token(ext, "extension")
        self.cli(f"database put agentsim {ext}/ring {ring:g}")
        self.cli(f"database put agentsim {ext}/talk {talk:g}")

    def clear_operator(self, ext: str) -> None:
        """Stop simulating ``ext``: its calls go to the real phone PJSIP/<ext> again."""
        _check_token(ext, "extension")
        self.cli(f"database deltree agentsim {ext}")

    def set_global(self, name: str, value: str) -> None:
        """Set a dialplan global until the next reload (``dialplan set global``), e.g.
        ``CALLBACK_RING_SECONDS`` for short tests; ``extensions.conf`` has the defaults."""
        _check_token(name, "global name")
        _check_token(value, "global value")
        self.cli(f"dialplan set global {name} {value}")

    def dial_audit(self) -> DialAudit:
        """What the PBX itself noted of callback legs (``[globals] CALLBACK_AUDIT``, see
        ``dialplans/helpdesk.conf``): read from AstDB, independent of cti-bridge."""
        return DialAudit.parse(
            self.cli("database show cti_rung"), self.cli("database show cti_dialled")
        )

    def clear_dial_audit(self) -> None:
        """Forget the audit (before a test that counts from zero)."""
        for family in _AUDIT_FAMILIES:
            self.cli(f"database deltree {family}")

    def place_call(
        self,
        did: str = "3200",
        caller_number: str | None = None,
        caller_name: str | None = None,
        *,
        hold: int = 30,
        withheld: bool = False,
        context: str = "from-pstn",
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """Drop a call file: a simulated customer calls ``did`` and hangs up after ``hold`` s.

        The customer is ``Local/hold<hold>@sim-caller`` as in the recorded traces. A caller
        name a call file cannot carry (CR/LF, longer than 79 bytes) arrives through
        ``sim-trunk`` instead, URI-encoded, so hostile caller IDs reach the PBX byte for
        byte. Returns the value of the channel variable ``CTI_SIM_CALL`` set on the call.
        """
        for value, what in ((did, "DID"), (context, "context")):
            _check_token(value, what)
        if caller_number is not None and CONTROL.search(caller_number):
            raise ValueError("caller number contains control characters")
        self._sequence += 1
        tag = f"{self.name}-{self._sequence}"
        headers: list[tuple[str, str]] = [("Channel", f"Local/hold{int(hold)}@sim-caller")]
        via_trunk = caller_name is not None and (
            CONTROL.search(caller_name) is not None or len(caller_name.encode()) > 79
        )
        if caller_name is not None and not via_trunk:
            escaped = caller_name.replace("\\", "\\\\").replace('"', '\\"')
            headers.append(("CallerID", f'"{escaped}" <{caller_number or ""}>'))
        elif caller_number is not None:
            headers.append(("CallerID", f"<{caller_number}>"))
        headers += [
            ("Context", "sim-trunk" if via_trunk else context),
            ("Extension", did),
            ("Priority", "1"),
            ("MaxRetries", "0"),
            ("WaitTime", "30"),
            ("Set", f"CTI_SIM_CALL={tag}"),
        ]
        if via_trunk:
            assert caller_name is not None
            headers.append(("Set", "SIM_CNAME=" + urllib.parse.quote(caller_name, safe="")))
        if withheld:
            headers.append(("Set", "CALLERID(pres)=prohib"))
        for key, value in (variables or {}).items():
            _check_token(key, "variable name")
            if CONTROL.search(value):
                raise ValueError(f"variable {key} contains control characters")
            headers.append(("Set", f"{key}={value}"))
        self._drop_call_file(tag, headers)
        return tag

    # ------------------------------------------------------------------ diagnostics
    def output_tail(self, lines: int = 40) -> str:
        """The last lines of Asterisk's output and messages log, for error messages."""
        parts = []
        for path in (self.instance_dir / "asterisk.out", self.instance_dir / "log/messages.log"):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or "(Asterisk wrote no output)"

    # ------------------------------------------------------------------ internals
    def _spawn(self) -> None:
        argv = ["/usr/sbin/chroot", str(self.root), ASTERISK]
        argv += ["-C", f"{self.chroot_dir}/etc/asterisk.conf", "-f", "-n"]
        self._process = spawn(argv, self.instance_dir / "asterisk.out")
        (self.instance_dir / "asterisk.pid").write_text(f"{self._process.pid}\n")

    def _exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def _cli_raw(self, command: str, timeout: float) -> str:
        argv = ["/usr/sbin/chroot", str(self.root), ASTERISK]
        argv += ["-C", f"{self.chroot_dir}/etc/asterisk.conf", "-rx", command]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise AsteriskError(f"CLI {command!r} timed out after {timeout} s") from e
        output = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")
            raise AsteriskError(f"CLI {command!r} failed ({done.returncode}): {output}{err}")
        return output

    def _pick_ports(self) -> None:
        tcp = free_ports(socket.SOCK_STREAM, 1)
        udp = free_ports(socket.SOCK_DGRAM, len(_SIP_LAB_PORTS) + 2)
        self.ami_port = tcp[0]
        rtp_start = free_udp_range(_RTP_PORTS)
        phones = dict(zip(("1001", "1002", "2001"), udp[1:4], strict=True))
        self.sip = SipPorts(udp[0], phones, udp[4], udp[5], rtp_start, rtp_start + _RTP_PORTS - 1)

    def _write_config(self) -> None:
        for sub in ("etc/dialplans", "run", "log", "db", "cache", "agi", "spool/tmp"):
            (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.spool_dir / "outgoing").mkdir()
        etc = self.instance_dir / "etc"
        sip = self.sip
        replacements: dict[str, dict[str, str]] = {
            "manager.conf": {"port = 5038": f"port = {self.ami_port}"},
            "rtp.conf": {
                "rtpstart = 10000": f"rtpstart = {sip.rtp_start}",
                "rtpend = 20000": f"rtpend = {sip.rtp_end}",
            },
            "pjsip.conf": {
                f"127.0.0.1:{_SIP_LAB_PORTS[key]}": f"127.0.0.1:{port}"
                for key, port in [("asterisk", sip.asterisk), *sip.phones.items()]
            }
            | {
                f"127.0.0.1:{_TRUNK_IN}": f"127.0.0.1:{sip.trunk_in}",
                f"127.0.0.1:{_TRUNK_OUT}": f"127.0.0.1:{sip.trunk_out}",
            },
        }
        options = ""
        for source in sorted(self.config_dir.glob("*.conf")):
            text = source.read_text()
            for old, new in replacements.get(source.name, {}).items():
                if old not in text:
                    raise AsteriskError(f"{source} no longer contains {old!r} to replace")
                text = text.replace(old, new)
            if source.name == "asterisk.conf":
                options = text
            else:
                (etc / source.name).write_text(text)
        _check_token(self.secret, "AMI secret")
        (etc / "manager-cti-secret.conf").write_text(f"secret = {self.secret}\n")
        if self.username != "cti":
            text = (etc / "manager.conf").read_text().replace("[cti]", f"[{self.username}]")
            (etc / "manager.conf").write_text(text)
        for source in sorted(self.dialplan_dir.glob("*.conf")):
            shutil.copy(source, etc / "dialplans" / source.name)
        if (self.dialplan_dir / "agi").is_dir():
            shutil.copytree(
                self.dialplan_dir / "agi", self.instance_dir / "agi", dirs_exist_ok=True
            )
        inside = self.chroot_dir
        directories = {
            "astetcdir": f"{inside}/etc",
            "astmoddir": "/usr/lib/x86_64-linux-gnu/asterisk/modules",
            "astvarlibdir": "/var/lib/asterisk",
            "astdbdir": f"{inside}/db",
            "astkeydir": "/var/lib/asterisk",
            "astdatadir": "/usr/share/asterisk",
            "astagidir": f"{inside}/agi",
            "astspooldir": f"{inside}/spool",
            "astrundir": f"{inside}/run",
            "astlogdir": f"{inside}/log",
            "astcachedir": f"{inside}/cache",
            "astsbindir": "/usr/sbin",
        }
        moddirs = list((self.root / "usr/lib").glob("*/asterisk/modules"))
        if moddirs:
            directories["astmoddir"] = "/" + str(moddirs[0].relative_to(self.root))
        header = "[directories]\n" + "".join(f"{k} => {v}\n" for k, v in directories.items())
        (etc / "asterisk.conf").write_text(header + "\n" + options)

    def _drop_call_file(self, tag: str, headers: list[tuple[str, str]]) -> None:
        lines = [f"{key}: {value.replace(';', chr(92) + ';')}" for key, value in headers]
        data = ("\n".join(lines) + "\n").encode()
        if any(len(line) > 254 for line in data.split(b"\n")):
            raise ValueError("call file line longer than 254 bytes")
        tmp = self.spool_dir / "tmp" / f"{tag}.call"
        tmp.write_bytes(data)
        past = time.time() - 1  # pbx_spool runs files whose mtime is not in the future
        os.utime(tmp, (past, past))
        tmp.rename(self.spool_dir / "outgoing" / tmp.name)


def _ami_login_and_wait_booted(
    host: str, port: int, username: str, secret: str, deadline: float
) -> None:
    with RawAMI(host, port, timeout=2) as ami:
        ami.login(username, secret, events="system")
        ami.wait_for(
            lambda m: m.get("Event") == "FullyBooted",
            max(0.01, deadline - time.monotonic()),
            what="FullyBooted",
        )
        with contextlib.suppress(OSError):
            ami.send("Logoff")


def _check_token(value: str, what: str) -> None:
    if not _TOKEN.match(value):
        raise ValueError(f"invalid {what}: {value!r}")
