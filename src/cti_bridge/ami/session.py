"""One connection's set-up, before anything downstream trusts it: login, boot, snapshot.

``ClientService``'s *prepare the connection* step, written out: log in (MD5 challenge or
plain), wait for ``FullyBooted`` (a PBX still loading modules answers actions with
half-truths), then ask ``CoreShowChannels`` and ``QueueStatus`` at once. Live events
that arrive meanwhile are held back in arrival order, each with its own arrival time;
the client delivers them after the snapshot, so a listener always starts from a
snapshot and follows events from there.

A :class:`Session` lives as long as its connection; the next connection gets a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from cti_bridge.ami.listener import ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import (
    ActionResult,
    AMIActionError,
    AMIConnectionLost,
    AMIError,
    AMIProtocol,
)
from cti_bridge.log import get_logger, register_secret

__all__ = ["AMIAccount", "AMIAuthError", "Session"]

#: One logger for the whole link (client, session, fan-out), as before the split.
log = get_logger("cti_bridge.ami.client")


@dataclass(frozen=True)
class AMIAccount:
    """Where the PBX is and who we log in as. The secret never appears in a repr or log."""

    name: str
    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    #: ``md5`` keeps the secret off the wire (``Challenge`` + ``Key``); ``plain`` sends it.
    auth: str = "md5"

    def __post_init__(self) -> None:
        if self.auth not in ("md5", "plain"):
            raise ValueError(f"AMI auth must be 'md5' or 'plain', not {self.auth!r}")
        register_secret(self.secret)

    @property
    def where(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


class AMIAuthError(AMIError):
    """The PBX refused our login: a configuration problem, not a network one."""

    def __init__(self, account: AMIAccount, message: str):
        super().__init__(
            f"AMI login refused for user {account.username!r} on PBX {account.where}: {message}"
        )
        self.username = account.username
        self.pbx = account.name
        self.message = message


@dataclass(eq=False)
class Session:
    """Per-connection state and set-up steps; a new one for every connection."""

    proto: AMIProtocol
    account: AMIAccount
    clock: IReactorTime
    login_timeout: float = 10.0
    boot_timeout: float = 60.0
    resync_timeout: float = 30.0
    max_held_events: int = 100_000
    held: list[tuple[Message, float]] = field(default_factory=list)
    fully_booted: Message | None = None
    boot_waiter: Deferred[Message] | None = None
    live: bool = False  # the snapshot was delivered: events go straight to listeners
    lost: bool = False
    told_lost: bool = False
    #: Why login/resync failed on this link (it is then dropped by us).
    setup_error: str | None = None

    # -- the steps ---------------------------------------------------------------------

    async def log_in(self) -> None:
        """Log in with events on; a refusal is :class:`AMIAuthError`."""
        account, proto, timeout = self.account, self.proto, self.login_timeout
        try:
            if account.auth == "md5":
                answer = await proto.send_action("Challenge", {"AuthType": "md5"}, timeout=timeout)
                challenge = answer.response.get("Challenge")
                if not challenge:
                    raise AMIAuthError(account, "the PBX sent no MD5 challenge")
                key = hashlib.md5(
                    (challenge + account.secret).encode("utf-8"), usedforsecurity=False
                ).hexdigest()
                headers = {"AuthType": "md5", "Username": account.username, "Key": key}
            else:
                headers = {"Username": account.username, "Secret": account.secret}
            await proto.send_action("Login", {**headers, "Events": "on"}, timeout=timeout)
        except AMIActionError as exc:
            if "shutting down" in exc.message.lower():
                # Asterisk answers every action so while it restarts (seen right after
                # Shutdown): a normal, short retry, not the long refused-login delay.
                raise AMIError(f"PBX {account.where} is shutting down") from None
            raise AMIAuthError(account, exc.message) from None

    async def resync(self) -> ResyncSnapshot:
        """Wait for ``FullyBooted``, then take the channel and queue snapshot."""
        booted = await self._wait_for_boot()
        channels_d = self.proto.send_action("CoreShowChannels", timeout=self.resync_timeout)
        queues_d = self.proto.send_action("QueueStatus", timeout=self.resync_timeout)
        queues_d.addErrback(self._without_queues)
        try:
            channels, queues = await gatherResults([channels_d, queues_d], consumeErrors=True)
        except FirstError as exc:
            exc.subFailure.raiseException()
        return ResyncSnapshot(
            pbx=self.account.name,
            channels=list(channels.items),
            queue_status=list(queues.items) if queues is not None else [],
            fully_booted=booted,
        )

    def _wait_for_boot(self) -> Deferred[Message]:
        if self.fully_booted is not None:
            return succeed(self.fully_booted)
        waiter: Deferred[Message] = Deferred()
        self.boot_waiter = waiter
        where = self.account.where

        def timed_out(result: Any, timeout: float) -> Any:
            if isinstance(result, Failure) and isinstance(result.value, CancelledError):
                raise AMIError(
                    f"PBX {where} sent no FullyBooted within {timeout:g} s "
                    "after login (does the manager user have read=system?)"
                )
            return result

        waiter.addTimeout(self.boot_timeout, self.clock, onTimeoutCancel=timed_out)
        return waiter

    def _without_queues(self, failure: Failure) -> ActionResult | None:
        if isinstance(failure.value, AMIActionError):
            log.warning(
                "ami_resync_without_queues", pbx=self.account.name, error=str(failure.value)
            )
            return None
        return failure  # type: ignore[return-value]

    # -- events before the snapshot ----------------------------------------------------

    def early_event(self, msg: Message, at: float) -> None:
        """A live event before the snapshot: ``FullyBooted`` is taken, the rest held."""
        name = msg.get("Event")
        if name == "FullyBooted" and self.fully_booted is None:
            self.fully_booted = msg
            waiter, self.boot_waiter = self.boot_waiter, None
            if waiter is not None:
                waiter.callback(msg)
            return
        if name == "Shutdown":
            self.proto.drop(f"PBX {self.account.where} shut down during login/resync")
            return
        self.held.append((msg, at))
        if len(self.held) > self.max_held_events:
            self.proto.drop(f"more than {self.max_held_events} events held during resync")

    def go_live(self) -> list[tuple[Message, float]]:
        """From now on events go straight through; returns the ones held so far."""
        held, self.held = self.held, []
        self.live = True
        return held

    def close(self, reason: str) -> None:
        """The connection is gone: whatever waits for ``FullyBooted`` fails."""
        self.lost = True
        waiter, self.boot_waiter = self.boot_waiter, None
        if waiter is not None:
            waiter.errback(AMIConnectionLost("waiting for FullyBooted", reason))
