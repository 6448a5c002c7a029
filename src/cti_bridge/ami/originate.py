"""Placing a call from the PBX (``Originate``), for the callback dialer: sent once, ever.

An ``Originate`` with ``Async: true`` is answered twice. ``Response: Success`` ("Originate
successfully queued") only says the PBX took the job; the ``OriginateResponse`` event
with the same ActionID says how the first leg ended: ``Response: Success`` when it
answered (``Reason: 4``), ``Failure`` with the reason otherwise (``3`` no answer,
``5`` busy, ``8`` congestion, ``0`` no such channel or extension). Success is the first
leg only: the customer's leg, dialled after it, may still be busy (trace
``08-callback-originate-customer-busy``). Each request brings its own ``ChannelId`` (and
``OtherChannelId``, the ``;2`` half of a ``Local`` channel): the first leg's Uniqueid
and Linkedid, so the call that follows is recognised in the event stream and, after a
crash, on the PBX (trace ``07-callback-originate-answered-channelid``).

Nothing here is ever re-sent: an Originate sent twice dials a customer twice. Failures
say which side they are on:

* :class:`OriginateNotSent`: the link was down or not logged in; nothing went out, the
  caller may try again later.
* :class:`OriginateRefused`: the PBX answered ``Response: Error``; nothing is dialling.
* :class:`OriginateOutcomeUnknown`: it went out, then the link dropped or no
  ``OriginateResponse`` came in time. The PBX may be dialling right now: the caller
  resolves the attempt from the PBX (a channel with its ChannelId), never re-dials at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from cti_bridge.ami.parser import Message, format_action
from cti_bridge.ami.protocol import (
    AMIActionError,
    AMIConnectionLost,
    AMIError,
    AMIProtocol,
    AMITimeout,
)
from cti_bridge.log import get_logger

__all__ = [
    "ORIGINATE_REASONS",
    "OriginateError",
    "OriginateNotSent",
    "OriginateOutcomeUnknown",
    "OriginateRefused",
    "OriginateRequest",
    "OriginateResult",
    "place",
]

log = get_logger("cti_bridge.ami.client")

#: ``Reason:`` of an ``OriginateResponse`` (Asterisk's control frame of the first leg).
ORIGINATE_REASONS: Mapping[int, str] = {
    0: "not dialled (no such channel or extension)",
    1: "hung up",
    3: "no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}

#: Seconds to wait for the ``OriginateResponse`` beyond the first leg's ring time.
OUTCOME_MARGIN = 30.0


def _new_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """What to dial: the first leg ``channel``, then an extension or an application.

    ``action_id`` and ``channel_id`` default to fresh random ids (unique across links and
    restarts, unlike the link's ``cti-<n>``); ``other_channel_id`` to ``channel_id-2``.
    A value with CR/LF is refused here (``ValueError``), before anything is sent.
    """

    channel: str
    context: str | None = None
    exten: str | None = None
    priority: int | str = 1
    application: str | None = None
    data: str | None = None
    caller_id: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    #: How long the first leg rings (the action's ``Timeout``, in ms on the wire).
    ring_seconds: float = 30.0
    action_id: str = field(default_factory=lambda: f"cti-originate-{_new_id()}")
    channel_id: str = field(default_factory=lambda: f"cti-{_new_id()}")
    other_channel_id: str = ""

    def __post_init__(self) -> None:
        if (self.application is None) == (self.exten is None or self.context is None):
            raise ValueError("Originate needs context and exten, or an application")
        if any("=" in name for name in self.variables):
            raise ValueError("an Originate variable name cannot contain '='")
        if not self.other_channel_id:
            object.__setattr__(self, "other_channel_id", f"{self.channel_id}-2")
        format_action("Originate", self.headers())  # CR/LF: ValueError now, not later

    def headers(self) -> dict[str, str | int | list[str]]:
        """The action's headers, in wire order (the link adds ``ActionID``)."""
        headers: dict[str, str | int | list[str]] = {"Channel": self.channel}
        if self.application is not None:
            headers["Application"] = self.application
            if self.data is not None:
                headers["Data"] = self.data
        else:
            assert self.context is not None and self.exten is not None
            headers.update(Context=self.context, Exten=self.exten, Priority=self.priority)
        headers["Timeout"] = round(self.ring_seconds * 1000)
        if self.caller_id is not None:
            headers["CallerID"] = self.caller_id
        if self.variables:
            headers["Variable"] = [f"{name}={value}" for name, value in self.variables.items()]
        headers.update(
            ChannelId=self.channel_id, OtherChannelId=self.other_channel_id, Async="true"
        )
        return headers


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """The ``OriginateResponse``: how the first leg ended."""

    request: OriginateRequest
    #: ``Response: Success``: the first leg answered (not yet the customer's leg).
    success: bool
    #: ``Reason:`` (see :data:`ORIGINATE_REASONS`); ``None`` when absent.
    reason: int | None
    channel: str | None
    #: The first leg's Uniqueid: the request's ChannelId, also on a failure (Asterisk
    #: 22); ``None`` for ``<unknown>``.
    uniqueid: str | None
    event: Message

    @classmethod
    def from_event(cls, request: OriginateRequest, event: Message) -> OriginateResult:
        reason = event.get("Reason", "")
        uniqueid = event.get("Uniqueid")
        return cls(
            request=request,
            success=event.get("Response", "").lower() == "success",
            reason=int(reason) if reason.isdigit() else None,
            channel=event.get("Channel"),
            uniqueid=None if uniqueid in (None, "", "<unknown>") else uniqueid,
            event=event,
        )

    @property
    def reason_text(self) -> str:
        if self.reason is None:
            return "no reason given"
        return ORIGINATE_REASONS.get(self.reason, f"reason {self.reason}")


class OriginateError(AMIError):
    """Base of the Originate failures; ``request`` is what was (or was not) sent."""

    def __init__(self, request: OriginateRequest, message: str):
        super().__init__(message)
        self.request = request


class OriginateNotSent(OriginateError):
    """Nothing went out (link down or not logged in): safe to try again later."""

    def __init__(self, request: OriginateRequest, where: str, state: str):
        super().__init__(
            request,
            f"AMI link to PBX {where} is {state}; Originate {request.action_id} was not sent",
        )
        self.state = state


class OriginateRefused(OriginateError):
    """The PBX answered ``Response: Error``: nothing is dialling."""

    def __init__(self, request: OriginateRequest, where: str, message: str):
        super().__init__(request, f"PBX {where} refused Originate {request.action_id}: {message}")
        self.message = message


class OriginateOutcomeUnknown(OriginateError):
    """Sent, and then no ``OriginateResponse``: the PBX may be dialling. Never re-dial
    at once; resolve it from the PBX (a channel whose Uniqueid is the ChannelId)."""

    def __init__(self, request: OriginateRequest, where: str, why: str):
        super().__init__(
            request,
            f"Originate {request.action_id} (ChannelId {request.channel_id}) was sent to PBX "
            f"{where}, outcome unknown: {why}; it was not re-sent",
        )
        self.why = why


def place(
    proto: AMIProtocol,
    request: OriginateRequest,
    *,
    where: str,
    outcome_timeout: float | None = None,
) -> Deferred[OriginateResult]:
    """Send ``request`` once on ``proto``; fires with the :class:`OriginateResult`.

    The caller has checked the link is up (else :class:`OriginateNotSent`). The
    ``OriginateResponse`` is awaited from the moment the action is written, so one that
    comes before the "queued" answer counts too.
    """
    if not proto.can_send:
        return _failed(OriginateNotSent(request, where, "closing"))
    wait = request.ring_seconds + OUTCOME_MARGIN if outcome_timeout is None else outcome_timeout
    result: Deferred[OriginateResult] = Deferred()
    try:
        queued = proto.send_action("Originate", request.headers(), action_id=request.action_id)
    except ValueError as exc:  # ActionID in use on this link: nothing was written
        return _failed(exc)
    outcome = proto.expect_event(
        request.action_id, "OriginateResponse", action="Originate", timeout=wait
    )
    log.info(
        "ami_originate_sent",
        action_id=request.action_id,
        channel_id=request.channel_id,
        channel=request.channel,
    )

    def not_queued(failure: Failure) -> None:
        if isinstance(failure.value, AMIActionError):
            proto.forget_expected(request.action_id)
            if not result.called:
                result.errback(OriginateRefused(request, where, failure.value.message))
        # A lost link or no "queued" in time: the OriginateResponse (or its absence)
        # decides, below.

    def answered(event: Message) -> None:
        if not result.called:
            outcome_ = OriginateResult.from_event(request, event)
            log.info(
                "ami_originate_response",
                action_id=request.action_id,
                channel_id=request.channel_id,
                success=outcome_.success,
                reason=outcome_.reason,
            )
            result.callback(outcome_)

    def unknown(failure: Failure) -> None:
        if not result.called:
            err = failure.value
            if isinstance(err, AMITimeout):
                why = f"no OriginateResponse within {err.timeout:g} s"
            elif isinstance(err, AMIConnectionLost):
                why = f"the link dropped before the OriginateResponse ({err.reason})"
            else:
                why = str(err)
            log.warning(
                "ami_originate_outcome_unknown",
                action_id=request.action_id,
                channel_id=request.channel_id,
                why=why,
            )
            result.errback(OriginateOutcomeUnknown(request, where, why))

    queued.addCallbacks(lambda _: None, not_queued)
    outcome.addCallbacks(answered, unknown)
    return result


def _failed(exc: Exception) -> Deferred[OriginateResult]:
    d: Deferred[OriginateResult] = Deferred()
    d.errback(exc)
    return d
