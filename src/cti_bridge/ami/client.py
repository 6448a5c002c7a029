"""The link to one PBX, kept up for the daemon's lifetime: login, resync, reconnect.

``AMIClient`` ties the pieces together:

* ``machine.py``: the reconnect loop as a table of states, inputs and outputs
  (stopped, disconnected, connecting, logging_in, resyncing, connected; drawn there);
* ``session.py``: one connection's set-up (login, ``FullyBooted``, the
  ``CoreShowChannels`` + ``QueueStatus`` snapshot) and the events held back meanwhile;
* ``fanout.py``: delivery to the listeners, each isolated, and their event filter;
* ``originate.py``: ``Originate`` for the dialer, correlated by ActionID, never re-sent;
* ``../backoff.py``: the capped, jittered back-off, with a long delay after a refused
  login.

Live events that arrive before the snapshot is delivered are held back and delivered
after it, in arrival order, so a listener always starts from a snapshot and follows
events from there. Nothing is re-sent after a reconnect; actions issued while the link
is down fail at once with :class:`AMINotConnected` (the caller decides, e.g. the dialer
marks the attempt "failed" and retries by its own policy).

Why not ``twisted.application.internet.ClientService`` itself: Twisted 26.10's
ClientService raises ``NoTransition`` when the connection drops *during*
``prepareConnection`` (exactly what Asterisk does after a refused login), and its retry
policy cannot tell a refused login from a refused connection.

The listener interface (:class:`AMIListener`) is the contract with the call model and
every other consumer; see ``docs/architecture.md``. Listeners say which events they act
on; the parser then skips, unread, every event that no listener nor the client itself
wants - on a busy PBX most of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.python.failure import Failure

from cti_bridge.ami import machine as m
from cti_bridge.ami.fanout import Fanout
from cti_bridge.ami.listener import CLIENT_EVENTS, AMIListener, ResyncSnapshot, wanted_by
from cti_bridge.ami.originate import (
    OriginateNotSent,
    OriginateOutcomeUnknown,
    OriginateRefused,
    OriginateRequest,
    OriginateResult,
    place,
)
from cti_bridge.ami.parser import EventFilter, Message
from cti_bridge.ami.protocol import (
    DEFAULT_ACTION_TIMEOUT,
    ActionResult,
    AMIError,
    AMIProtocol,
    AMIProtocolFactory,
    CommandOutput,
)
from cti_bridge.ami.session import AMIAccount, AMIAuthError, Session
from cti_bridge.backoff import Backoff
from cti_bridge.log import get_logger

__all__ = [
    "CLIENT_EVENTS",
    "AMIAccount",
    "AMIAuthError",
    "AMIClient",
    "AMIListener",
    "AMINotConnected",
    "Backoff",
    "OriginateNotSent",
    "OriginateOutcomeUnknown",
    "OriginateRefused",
    "OriginateRequest",
    "OriginateResult",
    "ResyncSnapshot",
    "wanted_by",
]

log = get_logger("cti_bridge.ami.client")


class AMINotConnected(AMIError):
    """An action was issued while the link is down or not logged in; it was not sent."""

    def __init__(self, action: str, where: str, state: str):
        super().__init__(f"AMI link to PBX {where} is {state}; {action} was not sent")
        self.action = action
        self.state = state


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


class AMIClient:
    """Keeps one PBX link up and feeds listeners; actions go out through it.

    ``reactor`` provides ``IReactorTime`` (and ``IReactorTCP`` when no ``endpoint`` is
    given). Public API: :meth:`start`, :meth:`stop`, :meth:`add_listener`,
    :meth:`remove_listener`, :meth:`send_action`, :meth:`command`, :meth:`originate`,
    :meth:`when_connected`, :meth:`status`.
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
        self._fanout = Fanout(account.name, listeners)
        self._factory.wanted = self._fanout.wanted
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.login_timeout = login_timeout
        self.boot_timeout = boot_timeout
        self.resync_timeout = resync_timeout
        self.max_held_events = max_held_events

        self._machine = m.Machine(self, self._entered)
        self._since: float = reactor.seconds()
        self._session: Session | None = None
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

    # -- public -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._machine.state

    @property
    def wanted(self) -> EventFilter | None:
        """What the parser builds for the listeners and the client (``None``: all)."""
        return self._factory.wanted

    @property
    def _listeners(self) -> list[object]:
        return self._fanout.listeners

    def add_listener(self, listener: object) -> None:
        self._fanout.add(listener)
        self._listeners_changed()

    def remove_listener(self, listener: object) -> None:
        self._fanout.remove(listener)
        self._listeners_changed()

    def _listeners_changed(self) -> None:
        wanted = self._fanout.wanted
        self._factory.wanted = wanted
        if self._session is not None:
            self._session.proto.wanted = wanted

    def start(self) -> None:
        self._machine.input(m.START)

    def stop(self) -> Deferred[None]:
        """Log off and close; no reconnect. Fires when the link is closed."""
        self._machine.input(m.STOP)
        session = self._session
        if session is None or session.lost:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._stop_waiters.append(done)
        session.proto.send_action("Logoff", timeout=5.0).addErrback(lambda _: None)
        if session.proto.transport is not None:
            session.proto.transport.loseConnection()
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
        session = self._session
        if session is None or self.state not in (m.RESYNCING, m.CONNECTED):
            return fail(AMINotConnected(action, self.account.where, self.state))
        try:
            return session.proto.send_action(
                action, headers, action_id=action_id, timeout=timeout, list_items=list_items
            )
        except ValueError as exc:
            return fail(exc)

    def command(self, cli: str, *, timeout: float | None = None) -> Deferred[CommandOutput]:
        session = self._session
        if session is None or self.state not in (m.RESYNCING, m.CONNECTED):
            return fail(AMINotConnected("Command", self.account.where, self.state))
        try:
            return session.proto.command(cli, timeout=timeout)
        except ValueError as exc:
            return fail(exc)

    def originate(
        self, request: OriginateRequest, *, outcome_timeout: float | None = None
    ) -> Deferred[OriginateResult]:
        """Send ``request`` once; fires with its ``OriginateResponse`` (see ``originate.py``).

        Only on a link that is logged in and resynced; otherwise it fails at once with
        :class:`OriginateNotSent`. After it went out it fails only with
        :class:`OriginateRefused` (nothing dials) or :class:`OriginateOutcomeUnknown`
        (link lost, or no ``OriginateResponse`` within ``outcome_timeout``, by default
        the ring time plus 30 s). It is never sent again, on this link or the next.
        """
        session = self._session
        if session is None or self.state != m.CONNECTED:
            return fail(OriginateNotSent(request, self.account.where, self.state))
        return place(
            session.proto, request, where=self.account.where, outcome_timeout=outcome_timeout
        )

    def when_connected(self, timeout: float | None = None) -> Deferred[None]:
        """Fires once the link is logged in and resynced (at once if it is now)."""
        if self.state == m.CONNECTED:
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
            "state": self.state,
            "connected": self.state == m.CONNECTED,
            "since": _iso(self._since),
            "last_error": self._last_error,
            "reconnect_attempts": self._attempts,
            "next_attempt_at": _iso(self._next_attempt_at),
            "last_event_at": _iso(self._last_event_at),
            "events_skipped": self._skipped_before
            + (self._session.proto.parser.skipped if self._session is not None else 0),
            "banner": self._banner,
        }

    # -- what feeds the machine ------------------------------------------------------------

    def _entered(self, state: str) -> None:
        self._since = self.reactor.seconds()

    def _connection_made(self, proto: AMIProtocol) -> None:
        self._connecting = None
        self._machine.input(m.CONNECTION_MADE, proto)

    def _connection_failed(self, failure: Failure) -> None:
        self._connecting = None
        self._machine.input(m.CONNECT_FAILED, failure)

    async def _prepare(self, session: Session) -> None:
        await session.log_in()
        self._machine.input(m.LOGGED_IN, session)
        if self.state != m.RESYNCING:
            return  # stopped meanwhile: the link is being closed
        snapshot = await session.resync()
        self._machine.input(m.RESYNCED, session, snapshot)

    def _prepare_failed(self, failure: Failure, session: Session) -> None:
        if session.lost:
            return  # the link went first; _on_lost has taken care of it
        refused = isinstance(failure.value, AMIAuthError)
        self._machine.input(m.REFUSED if refused else m.SETUP_FAILED, session, failure)

    def _on_event(self, session: Session, msg: Message, at: float) -> None:
        if session is not self._session:
            return
        self._last_event_at = at
        if session.live:
            self._fanout.event(msg, at)
            if msg.get("Event") == "Shutdown":
                self._pbx_shut_down(session, msg, at)
            return
        session.early_event(msg, at)

    def _pbx_shut_down(self, session: Session, msg: Message, at: float) -> None:
        restart = msg.get("Restart", "").lower() == "true"
        reason = f"PBX {self.account.where} shut down ({'restart' if restart else 'stop'})"
        self._tell_lost(session, reason, at)
        session.proto.drop(reason)

    def _tell_lost(self, session: Session, reason: str, at: float) -> None:
        if session.live and not session.told_lost:
            session.told_lost = True
            self._fanout.link_lost(reason, at)

    def _on_lost(self, session: Session, reason: str) -> None:
        if session is not self._session:
            return
        session.close(reason)
        self._session = None
        self._skipped_before += session.proto.parser.skipped
        self._tell_lost(session, reason, self.reactor.seconds())
        self._machine.input(m.LOST, session, reason)

    # -- the machine's outputs (see machine.TRANSITIONS) -------------------------------

    def _reset_attempts(self) -> None:
        self._attempts = 0

    def _connect(self) -> None:
        self._retry_call = None
        self._next_attempt_at = None
        self._auth_failed = False
        d = self._endpoint.connect(self._factory)
        self._connecting = d
        d.addCallbacks(self._connection_made, self._connection_failed)

    def _connect_failed(self, failure: Failure) -> None:
        self._last_error = f"cannot connect to PBX {self.account.where}: {failure.value}"
        log.warning("ami_connect_failed", pbx=self.account.name, error=str(failure.value))

    def _open_session(self, proto: AMIProtocol) -> None:
        session = Session(
            proto,
            self.account,
            self.reactor,
            login_timeout=self.login_timeout,
            boot_timeout=self.boot_timeout,
            resync_timeout=self.resync_timeout,
            max_held_events=self.max_held_events,
        )
        self._session = session
        proto.wanted = self._factory.wanted  # listeners may have changed since it was built
        proto.on_event = partial(self._on_event, session)
        proto.on_lost = partial(self._on_lost, session)
        log.info("ami_connected", pbx=self.account.name, host=self.account.host)
        d = Deferred.fromCoroutine(self._prepare(session))
        d.addErrback(self._prepare_failed, session)

    def _close_unwanted(self, proto: AMIProtocol) -> None:
        if proto.transport is not None:
            proto.transport.loseConnection()

    def _logged_in(self, session: Session) -> None:
        self._banner = session.proto.banner
        log.info(
            "ami_logged_in",
            pbx=self.account.name,
            username=self.account.username,
            banner=self._banner,
        )
        session.proto.start_keepalive(self.ping_interval, self.ping_timeout)

    def _login_refused(self, session: Session, failure: Failure) -> None:
        self._auth_failed = True
        self._last_error = str(failure.value)
        log.error("ami_login_refused", pbx=self.account.name, error=self._last_error)

    def _setup_failed(self, session: Session, failure: Failure) -> None:
        err = failure.value
        if isinstance(err, AMIError):
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

    def _drop_session(self, session: Session, failure: Failure) -> None:
        session.setup_error = self._last_error
        session.proto.drop(self._last_error or "link set-up failed")

    def _go_live(self, session: Session, snapshot: ResyncSnapshot) -> None:
        now = self.reactor.seconds()
        held = session.go_live()
        self._attempts = 0
        log.info(
            "ami_resynced",
            pbx=self.account.name,
            channels=len(snapshot.channels),
            queue_items=len(snapshot.queue_status),
            held_events=len(held),
        )
        self._fanout.resync(snapshot, now)
        for msg, at in held:
            if session.lost:
                break
            self._fanout.event(msg, at)
            if msg.get("Event") == "Shutdown":
                self._pbx_shut_down(session, msg, at)
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(None)

    def _link_lost(self, session: Session, reason: str) -> None:
        if session.setup_error is None:
            self._last_error = f"link to PBX {self.account.where} lost: {reason}"
        log.warning("ami_link_lost", pbx=self.account.name, reason=reason)

    def _retry_later(self, *_: object) -> None:
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
        self._next_attempt_at = self.reactor.seconds() + delay
        self._retry_call = self.reactor.callLater(delay, self._machine.input, m.RETRY_DUE)

    def _finish_stopping(self, session: Session, reason: str) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            d.callback(None)

    def _cancel_retry(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        self._next_attempt_at = None

    def _fail_waiters(self) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.errback(CancelledError("AMI client stopped"))

    def _cancel_connect(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
