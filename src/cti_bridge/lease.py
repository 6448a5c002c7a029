"""One owner per PBX: the lease keeper's decisions, and what a fenced write is told.

A node that may own a PBX holds a *lease* on the bus (``Bus.grant``: expiry plus a
fencing token that grows with every grant) and acts as the PBX's owner (its AMI link,
its records, its callbacks) only while both hold:

* its own clock says the lease cannot have run out yet. Every deadline is counted from
  the moment the grant or renewal request was *sent*, never answered: the server set
  the lease after that instant, so the lease lasts at least until ``sent + ttl``, and
  the keeper stops ``margin`` seconds before that (clock drift, a write under way).
  A holder paused past its lease (a GC pause, a stopped VM) finds on waking that the
  time is up and stops before anything else: :meth:`LeaseKeeper.owns` compares with
  the clock on every question, it does not wait for a timer to fire;
* the database agrees: a grant's token is raised in ``pbx_fences`` before the node acts,
  and every write that matters checks in its own transaction that its token is still
  the current one (``store/fences.py``), so whatever the clock says, a stale holder's
  write is refused with :class:`FenceRefused` once another node took over.

This module is pure (no Twisted, no I/O): :class:`LeaseKeeper` takes inputs (the clock's
time, the bus's and the store's answers) and answers outputs for its driver
(``app/ownership.py``) to carry out. One keeper per PBX. Its states::

                 start                 granted(token)            fence_raised
    stopped ───────────▶ standby ─────────────────────▶ granted ──────────────▶ owner
                          ▲  ▲   (grant sent each         │                      │ renewed ok:
                          │  │    retry_every, while      │ fenced / too late    │ deadline moves
                          │  │    nobody else holds it)   ▼                      │
                          │  └──────────────────────── Lost + Release ◀──────────┘
                          │        renewal refused, late, or the deadline passed
                          └── stop (from every state: Lost + Release when it owned)

A renewal is sent every ``renew_every`` seconds (``ttl / 3``); one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "GRANTED",
    "OWNER",
    "STANDBY",
    "STOPPED",
    "FenceRefused",
    "Fences",
    "Grant",
    "LeaseKeeper",
    "Lost",
    "Owned",
    "RaiseFence",
    "Release",
    "Renew",
    "Timing",
]


class FenceRefused(Exception):
    """The database refused a write: ``token`` is not ``pbx``'s current fencing token
    (another node was granted the PBX since; ``current`` is the one it holds)."""

    def __init__(self, pbx: str, token: int, current: int | None):
        super().__init__(
            f"PBX {pbx!r}: fencing token {token} is stale (current: {current}); "
            "another node owns this PBX now"
        )
        self.pbx = pbx
        self.token = token
        self.current = current


class Fences(Protocol):
    """What a fenced writer asks of the node's ownership (``app/ownership.py``): the
    token to write ``pbx``'s records or attempts with, or ``None`` when this node does
    not own it now; and ``refused`` when the database said a token is stale."""

    def token(self, pbx: str) -> int | None: ...

    def refused(self, pbx: str, token: int) -> None: ...


# -- states ---------------------------------------------------------------------------
STOPPED = "stopped"
STANDBY = "standby"  # not the owner: asks for the lease every retry_every
GRANTED = "granted"  # granted a token, raising it in the database: not acting yet
OWNER = "owner"


# -- outputs --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Grant:
    """Send ``bus.grant``; answer with :meth:`LeaseKeeper.granted` (``sent_at``)."""

    sent_at: float


@dataclass(frozen=True, slots=True)
class Renew:
    """Send ``bus.renew``; answer with :meth:`LeaseKeeper.renewed` (``sent_at``)."""

    sent_at: float


@dataclass(frozen=True, slots=True)
class Release:
    """Send ``bus.release`` (harmless when another node holds the lease)."""


@dataclass(frozen=True, slots=True)
class RaiseFence:
    """Raise ``pbx_fences`` to ``token``; answer ``fence_raised`` or ``fenced``."""

    token: int


@dataclass(frozen=True, slots=True)
class Owned:
    """Act as the owner now (start the PBX link)."""

    token: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Stop acting as the owner now (stop the PBX link); ``reason`` for the log."""

    token: int
    reason: str


Output = Grant | Renew | Release | RaiseFence | Owned | Lost


@dataclass(frozen=True, slots=True)
class Timing:
    """The lease's seconds. ``margin``: how long before the lease could end (by this
    node's clock, from the request's sending) the owner stops acting."""

    ttl: float = 5.0
    renew_every: float | None = None  # default ttl / 3
    margin: float | None = None  # default ttl / 5
    retry_every: float | None = None  # default ttl / 5: a standby's next grant

    @property
    def renew(self) -> float:
        return self.ttl / 3 if self.renew_every is None else self.renew_every

    @property
    def safety(self) -> float:
        return self.ttl / 5 if self.margin is None else self.margin

    @property
    def retry(self) -> float:
        return self.ttl / 5 if self.retry_every is None else self.retry_every

    def __post_init__(self) -> None:
        if not 0 < self.renew + self.safety < self.ttl:
            raise ValueError("renew_every + margin must be shorter than the lease")


class LeaseKeeper:
    """One PBX's lease, decisions only. Every input returns the outputs to carry out,
    in order; :meth:`wake_at` says when to call :meth:`tick` next."""

    def __init__(self, timing: Timing | None = None):
        self.timing = timing or Timing()
        self.state = STOPPED
        self.token: int | None = None
        #: Until when (this node's clock) it may act as owner; from a request's sending.
        self.valid_until: float | None = None
        self._renew_at: float | None = None
        self._retry_at: float | None = None
        #: The request in flight: ("grant" | "renew", its sending instant).
        self._pending: tuple[str, float] | None = None
        self.last_reason: str | None = None

    # -- questions ----------------------------------------------------------------------

    def owns(self, now: float) -> int | None:
        """The token to write with, or ``None``: not the owner, or no longer sure to be
        (the clock passed the deadline, whether or not a timer told the keeper yet)."""
        if self.state != OWNER or self.valid_until is None or now >= self.valid_until:
            return None
        return self.token

    def wake_at(self) -> float | None:
        """When :meth:`tick` has something to decide (``None``: only on an answer)."""
        times: list[float] = []
        if self.state in (GRANTED, OWNER) and self.valid_until is not None:
            times.append(self.valid_until)
        if self._pending is not None:  # a request that never answers is given up
            times.append(self._pending[1] + self.timing.ttl)
        elif self.state == OWNER and self._renew_at is not None:
            times.append(self._renew_at)
        elif self.state == STANDBY and self._retry_at is not None:
            times.append(self._retry_at)
        return min(times) if times else None

    # -- inputs -------------------------------------------------------------------------

    def start(self, now: float) -> list[Output]:
        if self.state != STOPPED:
            return []
        self.state = STANDBY
        return self._ask(now)

    def stop(self) -> list[Output]:
        outputs = self._lose("stopping") if self.state in (GRANTED, OWNER) else []
        self.state = STOPPED
        self._pending = None
        return outputs

    def tick(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        if self._pending is not None and now >= self._pending[1] + self.timing.ttl:
            self._pending = None  # no answer within a lease: whatever it says is too late
        if self.state in (GRANTED, OWNER) and (self.valid_until is None or now >= self.valid_until):
            outputs += self._lose("the lease may have run out: no renewal answered in time")
            self._retry_at = now
        if self._pending is not None:
            return outputs
        if self.state == OWNER and self._renew_at is not None and now >= self._renew_at:
            self._pending = ("renew", now)
            outputs.append(Renew(now))
        elif self.state == STANDBY and (self._retry_at is None or now >= self._retry_at):
            outputs += self._ask(now)
        return outputs

    def granted(self, sent_at: float, token: int | None, now: float) -> list[Output]:
        if self._pending != ("grant", sent_at) or self.state != STANDBY:
            return [Release()] if token is not None else []  # an answer nobody waits for
        self._pending = None
        if token is None:  # another node holds it
            self._retry_at = now + self.timing.retry
            return []
        valid_until = sent_at + self.timing.ttl - self.timing.safety
        if now >= valid_until:
            self._retry_at = now
            return [Release()]  # it came too late to act on
        self.state, self.token, self.valid_until = GRANTED, token, valid_until
        self._renew_at = sent_at + self.timing.renew
        return [RaiseFence(token)]

    def fence_raised(self, token: int, now: float) -> list[Output]:
        """The database holds ``token`` as the PBX's current fence."""
        if self.state != GRANTED or token != self.token:
            return []
        if self.valid_until is None or now >= self.valid_until:
            return self.tick(now)
        self.state = OWNER
        self.last_reason = None
        return [Owned(token)]

    def fenced(self, token: int, now: float) -> list[Output]:
        """The database refused ``token`` (a newer one is there, or it could not be
        raised): whoever holds it, this node is not the owner."""
        if self.state not in (GRANTED, OWNER) or token != self.token:
            return []
        outputs = self._lose("the database holds a newer fencing token")
        self._retry_at = now + self.timing.retry
        return outputs

    def renewed(self, sent_at: float, held: bool, now: float) -> list[Output]:
        if self._pending != ("renew", sent_at):
            return []
        self._pending = None
        if self.state not in (GRANTED, OWNER):
            # Lost meanwhile by the clock; the lease may still be this node's on the
            # server: give it back, so that a fresh grant (a new token) comes soon.
            return [Release()] if held else []
        if not held:
            self._retry_at = now + self.timing.retry
            return self._lose("another node holds the lease")
        valid_until = sent_at + self.timing.ttl - self.timing.safety
        if now >= valid_until:
            self._retry_at = now
            return self._lose("the renewal came too late to act on")
        self.valid_until = valid_until
        self._renew_at = sent_at + self.timing.renew
        return []

    def failed(self, sent_at: float, now: float) -> list[Output]:
        """The request sent at ``sent_at`` failed (the bus is unreachable). An owner
        stays the owner until its deadline and tries again; a standby later."""
        if self._pending is None or self._pending[1] != sent_at:
            return []
        kind = self._pending[0]
        self._pending = None
        if kind == "renew" and self.state == OWNER:
            self._renew_at = now + self.timing.retry
        else:
            self._retry_at = now + self.timing.retry
        return []

    # -- steps ---------------------------------------------------------------------------

    def _ask(self, now: float) -> list[Output]:
        self._pending = ("grant", now)
        return [Grant(now)]

    def _lose(self, reason: str) -> list[Output]:
        token = self.token
        was_owner = self.state == OWNER
        self.state, self.token, self.valid_until, self._renew_at = STANDBY, None, None, None
        self.last_reason = reason
        if token is None:
            return []
        return [Lost(token, reason), Release()] if was_owner else [Release()]
