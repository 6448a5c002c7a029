"""The link to one PBX, kept up for the daemon's lifetime: login, resync, reconnect.

Each connection goes through the same steps before anything downstream trusts it
(``ClientService``'s *prepare the connection* step, written out here)::

    connecting -> logging_in -> resyncing -> connected -> (lost) -> disconnected -> ...
                  Challenge/     FullyBooted,            link_lost to listeners,
                  Login          CoreShowChannels +      capped jittered back-off,
                                 QueueStatus snapshot    long delay after a refused login

Live events that arrive before the snapshot is delivered are held back and delivered
after it, in arrival order, so a listener always starts from a snapshot and follows
events from there. Nothing is re-sent after a reconnect; actions issued while the link
is down fail at once with :class:`AMINotConnected` (the caller decides, e.g. the dialer
marks the attempt "failed" and retries by its own policy).

Why not ``twisted.application.internet.ClientService`` itself: Twisted 26.10's
ClientService raises ``NoTransition`` when the connection drops *during*
``prepareConnection`` (exactly what Asterisk does after a refused login), and its retry
policy cannot tell a refused login from a refused connection. The back-off below is
its ``backoffPolicy`` with the jitter kept under the cap.

The listener interface (:class:`AMIListener`) is the contract with the call model and
every other consumer; see ``docs/architecture.md``. Listeners say which events they act
on; the parser then skips, unread, every event that no listener nor the client itself
wants - on a busy PBX most of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.python.failure import Failure

from cti_bridge.ami.listener import CLIENT_EVENTS, AMIListener, ResyncSnapshot, wanted_by
from cti_bridge.ami.parser import EventFilter, Message
from cti_bridge.ami.protocol import (
    DEFAULT_ACTION_TIMEOUT,
    ActionResult,
    AMIActionError,
    AMIConnectionLost,
    AMIError,
    AMIProtocol,
    AMIProtocolFactory,
    CommandOutput,
)
from cti_bridge.backoff import Backoff
from cti_bridge.log import get_logger, register_secret

__all__ = [
    "CLIENT_EVENTS",
    "AMIAccount",
    "AMIAuthError",
    "AMIClient",
    "AMIListener",
    "AMINotConnected",
    "Backoff",
    "ResyncSnapshot",
    "wanted_by",
]

log = get_logger("cti_bridge.ami.client")

STOPPED = "stopped"
DISCONNECTED = "disconnected"
CONNECTING = "connecting"
LOGGING_IN = "logging_in"
RESYNCING = "resyncing"  # logged in; waiting for FullyBooted and the snapshot
CONNECTED = "connected"


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


class AMINotConnected(AMIError):
    """An action was issued while the link is down or not logged in; it was not sent."""

    def __init__(self, action: str, where: str, state: str):
        super().__init__(f"AMI link to PBX {where} is {state}; {action} was not sent")
        self.action = action
        self.state = state


@dataclass(eq=False)
class _Link:
    """Per-connection state; a new one for every connection."""

    proto: AMIProtocol
    held: list[tuple[Message, float]] = field(default_factory=list)
    fully_booted: Message | None = None
    boot_waiter: Deferred[Message] | None = None
    live: bool = False  # the snapshot was delivered: events go straight to listeners
    lost: bool = False
    told_lost: bool = False
    #: Why login/resync failed on this link (it is then dropped by us).
    setup_error: str | None = None


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


class AMIClient:
    """Keeps one PBX link up and feeds listeners; actions go out through it.

    ``reactor`` provides ``IReactorTime`` (and ``IReactorTCP`` when no ``endpoint`` is
    given). Public API: :meth:`start`, :meth:`stop`, :meth:`add_listener`,
    :meth:`send_action`, :meth:`command`, :meth:`when_connected`, :meth:`status`.
    """

    def __init__(
        self,
        reactor: Any,
        account: AMIAccount,
        *,
        endpoint: IStreamClientEndpoint | None = None,
        listeners: tuple[object, ...] | list[object] = (),
        backoff: Backoff | None = None,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        login_timeout: float = 10.0,
        boot_timeout: float = 60.0,
        resync_timeout: float = 30.0,
        max_held_events: int = 100_000,
        connect_timeout: float = 10.0,
    ) -> None:
        self.reactor = reactor
        self.account = account
        self._endpoint: IStreamClientEndpoint = endpoint or HostnameEndpoint(
            reactor, account.host, account.port, timeout=connect_timeout
        )
        self._factory = AMIProtocolFactory(reactor, action_timeout=action_timeout)
        self._factory.noisy = False
        self._listeners: list[object] = list(listeners)
        #: ``(listener, its ami_event)``, rebuilt (never changed in place) when listeners
        #: come and go: delivery iterates it as it was when the event arrived.
        self._event_handlers: tuple[tuple[object, Callable[[Message, float], None]], ...] = ()
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.login_timeout = login_timeout
        self.boot_timeout = boot_timeout
        self.resync_timeout = resync_timeout
        self.max_held_events = max_held_events

        self._state = STOPPED
        self._since: float = reactor.seconds()
        self._link: _Link | None = None
        self._connecting: Deferred[Any] | None = None
        self._retry_call: IDelayedCall | None = None
        self._next_attempt_at: float | None = None
        self._attempts = 0
        self._auth_failed = False
        self._last_error: str | None = None
        self._last_event_at: float | None = None
        self._banner: str | None = None
        self._ready_waiters: list[Deferred[None]] = []
        self._stop_waiters: list[Deferred[None]] = []
        self._skipped_before = 0  # events skipped on earlier links
        self._listeners_changed()

    # -- public -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def wanted(self) -> EventFilter | None:
        """What the parser builds for the listeners and the client (``None``: all)."""
        return self._factory.wanted

    def add_listener(self, listener: object) -> None:
        self._listeners.append(listener)
        self._listeners_changed()

    def remove_listener(self, listener: object) -> None:
        self._listeners.remove(listener)
        self._listeners_changed()

    def _listeners_changed(self) -> None:
        self._event_handlers = tuple(
            (listener, handler)
            for listener in self._listeners
            if (handler := getattr(listener, "ami_event", None)) is not None
        )
        wanted = wanted_by(self._listeners)
        self._factory.wanted = wanted
        if self._link is not None:
            self._link.proto.wanted = wanted

    def start(self) -> None:
        if self._state != STOPPED:
            return
        self._attempts = 0
        self._connect()

    def stop(self) -> Deferred[None]:
        """Log off and close; no reconnect. Fires when the link is closed."""
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        self._next_attempt_at = None
        self._set_state(STOPPED)
        self._fail_waiters(CancelledError("AMI client stopped"))
        if self._connecting is not None:
            self._connecting.cancel()
        link = self._link
        if link is None or link.lost:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._stop_waiters.append(done)
        link.proto.send_action("Logoff", timeout=5.0).addErrback(lambda _: None)
        if link.proto.transport is not None:
            link.proto.transport.loseConnection()
        return done

    def send_action(
        self,
        action: str,
        headers: dict[str, Any] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        list_items: frozenset[str] | None = None,
    ) -> Deferred[ActionResult]:
        """Send an action on the current link (see :meth:`AMIProtocol.send_action`).

        Never raises: every problem arrives through the Deferred, including
        :class:`AMINotConnected` (link down: not sent, not queued) and ``ValueError``
        (CR/LF in a value, ActionID already in use).
        """
        link = self._link
        if link is None or self._state not in (RESYNCING, CONNECTED):
            return fail(AMINotConnected(action, self.account.where, self._state))
        try:
            return link.proto.send_action(
                action, headers, action_id=action_id, timeout=timeout, list_items=list_items
            )
        except ValueError as exc:
            return fail(exc)

    def command(self, cli: str, *, timeout: float | None = None) -> Deferred[CommandOutput]:
        link = self._link
        if link is None or self._state not in (RESYNCING, CONNECTED):
            return fail(AMINotConnected("Command", self.account.where, self._state))
        try:
            return link.proto.command(cli, timeout=timeout)
        except ValueError as exc:
            return fail(exc)

    def when_connected(self, timeout: float | None = None) -> Deferred[None]:
        """Fires once the link is logged in and resynced (at once if it is now)."""
        if self._state == CONNECTED:
            return succeed(None)
        d: Deferred[None] = Deferred(self._ready_waiters.remove)
        self._ready_waiters.append(d)
        if timeout is not None:
            d.addTimeout(timeout, self.reactor)
        return d

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: plain JSON-able data, no secret."""
        return {
            "pbx": self.account.name,
            "host": self.account.host,
            "port": self.account.port,
            "username": self.account.username,
            "state": self._state,
            "connected": self._state == CONNECTED,
            "since": _iso(self._since),
            "last_error": self._last_error,
            "reconnect_attempts": self._attempts,
            "next_attempt_at": _iso(self._next_attempt_at),
            "last_event_at": _iso(self._last_event_at),
            "events_skipped": self._skipped_before
            + (self._link.proto.parser.skipped if self._link is not None else 0),
            "banner": self._banner,
        }

    # -- connecting ---------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._since = self.reactor.seconds()

    def _connect(self) -> None:
        self._retry_call = None
        self._next_attempt_at = None
        self._auth_failed = False
        self._set_state(CONNECTING)
        d = self._endpoint.connect(self._factory)
        self._connecting = d
        d.addCallbacks(self._connected, self._connect_failed)

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        if self._state == STOPPED:
            return
        self._last_error = f"cannot connect to PBX {self.account.where}: {failure.value}"
        log.warning("ami_connect_failed", pbx=self.account.name, error=str(failure.value))
        self._schedule_retry()

    def _connected(self, proto: AMIProtocol) -> None:
        self._connecting = None
        if self._state == STOPPED:
            if proto.transport is not None:
                proto.transport.loseConnection()
            return
        link = _Link(proto)
        self._link = link
        proto.wanted = self._factory.wanted  # listeners may have changed since it was built
        proto.on_event = partial(self._on_event, link)
        proto.on_lost = lambda reason: self._on_lost(link, reason)
        log.info("ami_connected", pbx=self.account.name, host=self.account.host)
        d = Deferred.fromCoroutine(self._prepare(link))
        d.addErrback(self._prepare_failed, link)

    async def _prepare(self, link: _Link) -> None:
        self._set_state(LOGGING_IN)
        await self._login(link.proto)
        self._banner = link.proto.banner
        log.info(
            "ami_logged_in",
            pbx=self.account.name,
            username=self.account.username,
            banner=self._banner,
        )
        link.proto.start_keepalive(self.ping_interval, self.ping_timeout)
        self._set_state(RESYNCING)
        booted = await self._wait_for_boot(link)
        channels_d = link.proto.send_action("CoreShowChannels", timeout=self.resync_timeout)
        queues_d = link.proto.send_action("QueueStatus", timeout=self.resync_timeout)
        queues_d.addErrback(self._without_queues)
        try:
            channels, queues = await gatherResults([channels_d, queues_d], consumeErrors=True)
        except FirstError as exc:
            exc.subFailure.raiseException()
        snapshot = ResyncSnapshot(
            pbx=self.account.name,
            channels=list(channels.items),
            queue_status=list(queues.items) if queues is not None else [],
            fully_booted=booted,
        )
        self._go_live(link, snapshot)

    async def _login(self, proto: AMIProtocol) -> None:
        account = self.account
        timeout = self.login_timeout
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

    def _wait_for_boot(self, link: _Link) -> Deferred[Message]:
        if link.fully_booted is not None:
            return succeed(link.fully_booted)
        waiter: Deferred[Message] = Deferred()
        link.boot_waiter = waiter

        def timed_out(result: Any, timeout: float) -> Any:
            if isinstance(result, Failure) and isinstance(result.value, CancelledError):
                raise AMIError(
                    f"PBX {self.account.where} sent no FullyBooted within {timeout:g} s "
                    "after login (does the manager user have read=system?)"
                )
            return result

        waiter.addTimeout(self.boot_timeout, self.reactor, onTimeoutCancel=timed_out)
        return waiter

    def _without_queues(self, failure: Failure) -> ActionResult | None:
        if isinstance(failure.value, AMIActionError):
            log.warning(
                "ami_resync_without_queues", pbx=self.account.name, error=str(failure.value)
            )
            return None
        return failure  # type: ignore[return-value]

    def _go_live(self, link: _Link, snapshot: ResyncSnapshot) -> None:
        now = self.reactor.seconds()
        held, link.held = link.held, []
        link.live = True
        self._attempts = 0
        self._set_state(CONNECTED)
        log.info(
            "ami_resynced",
            pbx=self.account.name,
            channels=len(snapshot.channels),
            queue_items=len(snapshot.queue_status),
            held_events=len(held),
        )
        for listener in list(self._listeners):
            self._call(listener, "ami_resync", snapshot, now)
        for msg, at in held:
            if link.lost:
                break
            self._deliver(link, msg, at)
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(None)

    def _prepare_failed(self, failure: Failure, link: _Link) -> None:
        err = failure.value
        if link.lost:
            return  # the link went first; _on_lost has taken care of it
        if isinstance(err, AMIAuthError):
            self._auth_failed = True
            self._last_error = str(err)
            log.error("ami_login_refused", pbx=self.account.name, error=str(err))
        elif isinstance(err, AMIError):
            text = str(err)
            self._last_error = (
                text if self.account.where in text else f"PBX {self.account.where}: {text}"
            )
            log.error("ami_link_setup_failed", pbx=self.account.name, error=text)
        else:
            self._last_error = f"PBX {self.account.where}: internal error {err!r}"
            log.error(
                "ami_link_setup_crashed",
                pbx=self.account.name,
                exception=failure.getTraceback(),
            )
        link.setup_error = self._last_error
        link.proto.drop(self._last_error)

    # -- events ------------------------------------------------------------------------

    def _on_event(self, link: _Link, msg: Message, at: float) -> None:
        if link is not self._link:
            return
        self._last_event_at = at
        if link.live:
            self._deliver(link, msg, at)
            return
        name = msg.get("Event")
        if name == "FullyBooted" and link.fully_booted is None:
            link.fully_booted = msg
            waiter, link.boot_waiter = link.boot_waiter, None
            if waiter is not None:
                waiter.callback(msg)
            return
        if name == "Shutdown":
            link.proto.drop(f"PBX {self.account.where} shut down during login/resync")
            return
        link.held.append((msg, at))
        if len(link.held) > self.max_held_events:
            link.proto.drop(f"more than {self.max_held_events} events held during resync")

    def _deliver(self, link: _Link, msg: Message, at: float) -> None:
        for listener, handler in self._event_handlers:
            try:
                handler(msg, at)
            except Exception:
                self._listener_failed(listener, "ami_event")
        if msg.get("Event") == "Shutdown":
            restart = msg.get("Restart", "").lower() == "true"
            reason = f"PBX {self.account.where} shut down ({'restart' if restart else 'stop'})"
            self._tell_lost(link, reason, at)
            link.proto.drop(reason)

    def _call(self, listener: object, method: str, *args: Any) -> None:
        fn = getattr(listener, method, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            self._listener_failed(listener, method)

    def _listener_failed(self, listener: object, method: str) -> None:
        log.exception(
            "ami_listener_failed",
            pbx=self.account.name,
            listener=type(listener).__qualname__,
            method=method,
        )

    def _tell_lost(self, link: _Link, reason: str, at: float) -> None:
        if link.live and not link.told_lost:
            link.told_lost = True
            for listener in list(self._listeners):
                self._call(listener, "ami_link_lost", reason, at)

    # -- losing the link ------------------------------------------------------------------

    def _on_lost(self, link: _Link, reason: str) -> None:
        if link is not self._link:
            return
        link.lost = True
        self._link = None
        self._skipped_before += link.proto.parser.skipped
        at = self.reactor.seconds()
        waiter, link.boot_waiter = link.boot_waiter, None
        if waiter is not None:
            waiter.errback(AMIConnectionLost("waiting for FullyBooted", reason))
        self._tell_lost(link, reason, at)
        if self._state == STOPPED:
            waiters, self._stop_waiters = self._stop_waiters, []
            for d in waiters:
                d.callback(None)
            return
        if link.setup_error is None:
            self._last_error = f"link to PBX {self.account.where} lost: {reason}"
        log.warning("ami_link_lost", pbx=self.account.name, reason=reason)
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._attempts += 1
        if self._auth_failed:
            delay = self.backoff.auth_delay()
            log.error(
                "ami_login_retry_scheduled",
                pbx=self.account.name,
                host=self.account.host,
                port=self.account.port,
                username=self.account.username,
                attempt=self._attempts,
                delay=round(delay, 3),
            )
        else:
            delay = self.backoff.delay(self._attempts)
            log.info(
                "ami_reconnect_scheduled",
                pbx=self.account.name,
                attempt=self._attempts,
                delay=round(delay, 3),
            )
        self._set_state(DISCONNECTED)
        self._next_attempt_at = self.reactor.seconds() + delay
        self._retry_call = self.reactor.callLater(delay, self._connect)

    def _fail_waiters(self, exc: Exception) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.errback(exc)
