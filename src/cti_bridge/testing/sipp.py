"""Real SIP parties (SIPp) for an :class:`AsteriskInstance`: an operator's phone and a
customer calling in over the trunk, as in the recorded PJSIP traces.

Most sites run PJSIP phones, so the PBX is also checked with real SIP signalling, not only
with Local channels. SIPp (Debian ``sip-tester``, installed by ``scripts/asterisk-root``)
runs on the host, on the loopback ports the instance chose for its lab set-up
(``instance.sip``); the scenarios are ``config/asterisk/sipp/*.xml``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from cti_bridge.testing.asterisk import AsteriskError, AsteriskInstance, free_udp_range

SCENARIOS = Path(__file__).resolve().parents[3] / "config" / "asterisk" / "sipp"


class SipParty:
    """One SIPp process; stopped by its own PID when the ``with`` block ends."""

    def __init__(self, name: str, args: list[str]) -> None:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise AsteriskError("SIPp is not installed (apt-get install sip-tester)")
        self.name = name
        self._logs = Path(tempfile.mkdtemp(prefix=f"sipp-{name}-"))
        self._out = (self._logs / "sipp.out").open("wb")
        argv = [sipp, *args, "-nostdin", "-bind_local"]
        argv += ["-trace_err", "-error_file", str(self._logs / "errors.log")]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout: float) -> int:
        """SIPp's exit code: 0 when every call of the scenario succeeded."""
        return self._process.wait(timeout)

    def output(self) -> str:
        parts = []
        for path in sorted(self._logs.iterdir()):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.running:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._out.close()
        shutil.rmtree(self._logs, ignore_errors=True)

    def __enter__(self) -> SipParty:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _media(port_count: int = 4) -> list[str]:
    return ["-mi", "127.0.0.1", "-mp", str(free_udp_range(port_count))]


def sip_phone(
    instance: AsteriskInstance, ext: str, ring_ms: int = 1000, talk_ms: int = 60000
) -> SipParty:
    """Operator phone ``ext`` (1001, 1002, 2001) that rings, answers and talks, reachable
    (qualified ``Avail``) when this returns. ``instance.clear_operator(ext)`` makes the
    dialplan ring it instead of the simulated phone."""
    port = instance.sip.phones[ext]
    args = ["-sf", str(SCENARIOS / "uas-answer.xml"), "-i", "127.0.0.1", "-p", str(port)]
    args += [*_media(), "-set", "RING_MS", str(ring_ms), "-set", "TALK_MS", str(talk_ms)]
    phone = SipParty(f"phone-{ext}", args)
    try:
        _wait_reachable(instance, ext, phone)
    except BaseException:
        phone.stop()
        raise
    return phone


def sip_customer(
    instance: AsteriskInstance,
    dialled: str,
    caller_number: str,
    caller_name: str,
    hold_ms: int = 10000,
) -> SipParty:
    """A customer on the trunk ``pstn`` dials ``dialled`` (a DID or an extension) and hangs
    up ``hold_ms`` after the answer."""
    target = f"127.0.0.1:{instance.sip.asterisk}"
    args = [target, "-sf", str(SCENARIOS / "uac-call.xml"), "-s", dialled]
    args += ["-i", "127.0.0.1", "-p", str(instance.sip.trunk_in), *_media()]
    args += ["-m", "1", "-timeout", "120s", "-set", "CID_NUM", caller_number]
    args += ["-set", "CID_NAME", caller_name, "-set", "HOLD_MS", str(hold_ms)]
    return SipParty(f"customer-{dialled}", args)


def _wait_reachable(instance: AsteriskInstance, ext: str, phone: SipParty) -> None:
    """Qualify now instead of waiting for the next OPTIONS round (qualify_frequency)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not phone.running:
            raise AsteriskError(f"SIPp phone {ext} exited\n{phone.output()}")
        instance.cli(f"pjsip qualify {ext}")
        time.sleep(0.2)
        contacts = instance.cli(f"pjsip show contacts like {ext}")
        if any(" Avail " in line for line in contacts.splitlines() if f"{ext}/sip:" in line):
            return
    raise AsteriskError(f"SIP phone {ext} did not become reachable\n{phone.output()}")


def sip_register(
    instance: AsteriskInstance, ext: str = "1003", expires: int = 300, port: int | None = None
) -> int:
    """One REGISTER of lab endpoint ``ext`` (``config/asterisk/pjsip.conf``: no static
    contact) with ``Expires: expires`` from loopback ``port`` (default: a free one), the
    contact ``sip:<ext>@127.0.0.1:<port>``; ``expires=0`` unregisters that contact. Returns
    the port (pass it again to unregister the same binding); raises when Asterisk did not
    answer 200."""
    port = port or free_udp_range(1)
    target = f"127.0.0.1:{instance.sip.asterisk}"
    args = [target, "-sf", str(SCENARIOS / "uac-register.xml"), "-s", ext]
    args += ["-i", "127.0.0.1", "-p", str(port), "-m", "1", "-timeout", "10s"]
    args += ["-set", "EXPIRES", str(expires), "-set", "CONTACT", f"127.0.0.1:{port}"]
    with SipParty(f"register-{ext}", args) as party:
        try:
            code = party.wait(30)
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"REGISTER of {ext}: no answer\n{party.output()}") from None
        if code != 0:
            raise AsteriskError(f"REGISTER of {ext} failed ({code})\n{party.output()}")
    return port
