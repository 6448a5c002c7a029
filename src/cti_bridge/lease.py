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

The bus unreachable (a renewal *failed*, as opposed to refused): an owner asks the
database instead (``CheckFence``). While ``pbx_fences`` still holds its token no other
node has acted as the owner, and any that is granted the lease meanwhile must raise the
fence before it acts, which every later write of this node sees and is refused by; so the
owner keeps the PBX (its deadline moves as a renewal's would, from the check's sending)
instead of leaving it ownerless through a Redis outage. It gives the PBX up when the
database holds a newer token, or when it cannot answer either (the safe side).

A bus that lost its counters (a Redis restarted without persistence) grants tokens the
database has seen before; raising such a token fails (the row holds a greater one), and
the keeper asks again at once with the database's token as the ``floor`` of the next
grant, so the new token exceeds every token granted before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "GRANTED",
    "OWNER",
    "STANDBY",
    "STOPPED",
    "CheckFence",
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
    not own it now; and ``refused`` when the database said a token is stale (``current``:
    the one it holds, when known)."""

    def token(self, pbx: str) -> int | None: ...

    def refused(self, pbx: str, token: int, current: int | None = None) -> None: ...


# -- states ---------------------------------------------------------------------------
STOPPED = "stopped"
STANDBY = "standby"  # not the owner: asks for the lease every retry_every
GRANTED = "granted"  # granted a token, raising it in the database: not acting yet
OWNER = "owner"


# -- outputs --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Grant:
    """Send ``bus.grant`` (with ``floor``); answer with :meth:`LeaseKeeper.granted`."""

    sent_at: float
    floor: int = 0


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
class CheckFence:
    """Read ``pbx_fences``: answer :meth:`LeaseKeeper.fence_checked` (``sent_at``) with
    the token it holds, or :meth:`LeaseKeeper.failed` if the database cannot say."""

    token: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class Owned:
    """Act as the owner now (start the PBX link)."""

    token: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Stop acting as the owner now (stop the PBX link); ``reason`` for the log."""

    token: int
    reason: str


Output = Grant | Renew | Release | RaiseFence | CheckFence | Owned | Lost


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
        #: The request in flight: ("grant" | "renew" | "fence", its sending instant).
        self._pending: tuple[str, float] | None = None
        self.last_reason: str | None = None
        #: The greatest token the database was seen to hold: the next grant's floor.
        self.floor = 0
        #: The owner kept the PBX on the database's word, the bus being unreachable.
        self.kept_without_bus = False
        #: A kept owner's new token (granted when the bus came back), being raised.
        self._next_token: int | None = None

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
        if self._pending == ("grant", sent_at) and self.state == OWNER:
            return self._granted_back(sent_at, token, now)
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
        if self.state == OWNER and token == self._next_token:
            # The kept owner's new token: the same owner, on the bus's lease again.
            self.token, self._next_token = token, None
            self.kept_without_bus, self.last_reason = False, None
            return []
        if self.state != GRANTED or token != self.token:
            return []
        if self.valid_until is None or now >= self.valid_until:
            return self.tick(now)
        self.state = OWNER
        self.last_reason = None
        return [Owned(token)]

    def fenced(self, token: int, now: float, current: int | None = None) -> list[Output]:
        """The database refused ``token`` (``current``, a newer one, is there, or it
        could not be raised): whoever holds it, this node is not the owner.

        Refused at the grant (before acting) with a newer token in the database, or the
        same one raised by another holder, while the bus had just granted the lease to
        this node: the bus lost its counter (or the newer holder's lease ran out); the
        next grant goes at once, above it."""
        if current is not None:
            self.floor = max(self.floor, current)
        if self.state == OWNER and token == self._next_token:
            token = self.token or token  # the new token lost: so is the PBX
        if self.state not in (GRANTED, OWNER) or token != self.token:
            return []
        regrant = self.state == GRANTED and current is not None and current >= token
        outputs = self._lose("the database holds a newer fencing token")
        self._retry_at = now if regrant else now + self.timing.retry
        return outputs

    def fence_checked(self, sent_at: float, current: int | None, now: float) -> list[Output]:
        """The database's token for the PBX (``CheckFence`` sent at ``sent_at``)."""
        if self._pending != ("fence", sent_at):
            return []
        self._pending = None
        if current is not None:
            self.floor = max(self.floor, current)
        if self.state != OWNER:
            return []
        if current != self.token:
            self._retry_at = now + self.timing.retry
            return self._lose("the database holds a newer fencing token")
        valid_until = sent_at + self.timing.ttl - self.timing.safety
        if now >= valid_until:
            self._retry_at = now
            return self._lose("the database answered too late to act on")
        self.valid_until = max(self.valid_until or valid_until, valid_until)
        self._renew_at = now + self.timing.retry  # try the bus again soon
        self.kept_without_bus = True
        self.last_reason = "the bus is unreachable: kept, the database holds this token"
        return []

    def renewed(self, sent_at: float, held: bool, now: float) -> list[Output]:
        if self._pending != ("renew", sent_at):
            return []
        self._pending = None
        if self.state not in (GRANTED, OWNER):
            # Lost meanwhile by the clock; the lease may still be this node's on the
            # server: give it back, so that a fresh grant (a new token) comes soon.
            return [Release()] if held else []
        if not held and self.kept_without_bus and self.token is not None:
            # The bus is back without this lease (a restarted Redis lost it, or it ran
            # out during the outage): take it again, above the token written so far.
            self._pending = ("grant", now)
            return [Grant(now, max(self.floor, self.token))]
        if not held:
            self._retry_at = now + self.timing.retry
            return self._lose("another node holds the lease")
        self.kept_without_bus, self.last_reason = False, None
        valid_until = sent_at + self.timing.ttl - self.timing.safety
        if now >= valid_until:
            self._retry_at = now
            return self._lose("the renewal came too late to act on")
        self.valid_until = valid_until
        self._renew_at = sent_at + self.timing.renew
        return []

    def failed(self, sent_at: float, now: float) -> list[Output]:
        """The request sent at ``sent_at`` failed (the bus, or for ``CheckFence`` the
        database, is unreachable). An owner whose renewal failed asks the database;
        one the database cannot answer either stays the owner until its deadline and
        tries again; a standby asks again later."""
        if self._pending is None or self._pending[1] != sent_at:
            return []
        kind = self._pending[0]
        self._pending = None
        if kind == "renew" and self.state == OWNER and self.token is not None:
            self._pending = ("fence", now)
            return [CheckFence(self.token, now)]
        if kind in ("renew", "fence") and self.state == OWNER:
            self._renew_at = now + self.timing.retry
        else:
            self._retry_at = now + self.timing.retry
        return []

    # -- steps ---------------------------------------------------------------------------

    def _granted_back(self, sent_at: float, token: int | None, now: float) -> list[Output]:
        """A kept owner's grant when the bus came back: raise the new token and go on
        (until it is raised, the old one is still the database's); held by another
        node now, the PBX is theirs."""
        self._pending = None
        if token is None:
            self._retry_at = now + self.timing.retry
            return self._lose("another node holds the lease")
        valid_until = sent_at + self.timing.ttl - self.timing.safety
        if now >= valid_until:
            self._retry_at = now
            return self._lose("the grant came too late to act on")
        self.valid_until = max(self.valid_until or valid_until, valid_until)
        self._renew_at = sent_at + self.timing.renew
        self._next_token = token
        return [RaiseFence(token)]

    def _ask(self, now: float) -> list[Output]:
        self._pending = ("grant", now)
        return [Grant(now, self.floor)]

    def _lose(self, reason: str) -> list[Output]:
        token = self.token
        was_owner = self.state == OWNER
        self.state, self.token, self.valid_until, self._renew_at = STANDBY, None, None, None
        self.last_reason, self.kept_without_bus, self._next_token = reason, False, None
        if token is None:
            return []
        return [Lost(token, reason), Release()] if was_owner else [Release()]
