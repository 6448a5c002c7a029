"""Which PBXs this node owns: a lease keeper per PBX (``lease.py``) on the bus and clock.

The driver carries out the keepers' outputs - grants, renewals and releases on the bus,
the fence raised in the database, the PBX link started or stopped - and feeds the answers
back with the clock's time. It never blocks: the bus answers through Deferreds, the
database work runs in the node's pool (``raise_fence``). Each keeper is woken by one
timer at the instant it names (``wake_at``); a paused node's late timers do no harm, as
:meth:`Ownership.token` asks the keeper with the clock's time on every write.

With the in-process bus (one node, the embedded default) there is nobody to share a PBX
with: the node owns every PBX from the start, without leases or fencing tokens
(``Node.ownership`` is ``None``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from cti_bridge.bus import Bus, BusUnreachable
from cti_bridge.lease import (
    CheckFence,
    FenceRefused,
    Grant,
    LeaseKeeper,
    Lost,
    Output,
    Owned,
    RaiseFence,
    Release,
    Renew,
    Timing,
)

__all__ = ["LEASE_PREFIX", "Ownership"]

log = structlog.get_logger("cti_bridge.ownership")

#: A PBX's lease on the bus is ``pbx:<name>``.
LEASE_PREFIX = "pbx:"

#: (pbx, token, holder) -> the token the database holds; fails with ``FenceRefused``.
FenceRaiser = Callable[[str, int, str], "Deferred[int]"]
FenceReader = Callable[[str], "Deferred[int | None]"]
Hook = Callable[[str, int], object]


class Ownership:
    """The leases of ``pbxs`` for node ``node``; implements ``lease.Fences``."""

    def __init__(
        self,
        clock: IReactorTime,
        bus: Bus,
        pbxs: Sequence[str],
        node: str,
        *,
        raise_fence: FenceRaiser,
        read_fence: FenceReader,
        on_owned: Hook = lambda pbx, token: None,
        on_lost: Hook = lambda pbx, token: None,
        timing: Timing | None = None,
    ):
        self._clock = clock
        self._bus = bus
        self.node = node
        #: Who holds a lease on the bus: the node's name and this process's own mark, so
        #: a restarted node never renews the lease of the process it replaced.
        self.holder = f"{node}:{uuid.uuid4().hex[:8]}"
        self.timing = timing or Timing()
        self._raise_fence = raise_fence
        self._read_fence = read_fence
        self._on_owned = on_owned
        self._on_lost = on_lost
        self.keepers = {pbx: LeaseKeeper(self.timing) for pbx in pbxs}
        self._timers: dict[str, IDelayedCall] = {}
        self._releases: list[Deferred[Any]] = []
        #: A lease request found the bus unreachable; since when it answers again.
        self._bus_away = False
        self._bus_back_at: float | None = None

    # -- lease.Fences ---------------------------------------------------------------------

    def token(self, pbx: str) -> int | None:
        keeper = self.keepers.get(pbx)
        return None if keeper is None else keeper.owns(self._clock.seconds())

    def refused(self, pbx: str, token: int, current: int | None = None) -> None:
        keeper = self.keepers.get(pbx)
        if keeper is not None:
            log.error("fencing token refused by the database", pbx=pbx, token=token)
            self._input(pbx, keeper.fenced(token, self._clock.seconds(), current))

    # -- the node's side ------------------------------------------------------------------

    def owns(self) -> list[str]:
        return [pbx for pbx in self.keepers if self.token(pbx) is not None]

    def start(self) -> None:
        for pbx, keeper in self.keepers.items():
            self._input(pbx, keeper.start(self._clock.seconds()))

    def stop(self) -> Deferred[None]:
        """Give up every PBX (the links are stopped by ``on_lost``) and release the
        leases, so another node takes over at once instead of after the lease's time."""
        for pbx, keeper in self.keepers.items():
            self._input(pbx, keeper.stop())
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        pending, self._releases = self._releases, []
        done: Deferred[None] = Deferred()
        DeferredList(pending, consumeErrors=True).addBoth(lambda _: done.callback(None))
        return done

    def status(self) -> dict[str, Any]:
        now = self._clock.seconds()
        return {
            pbx: {
                "state": keeper.state,
                "token": keeper.owns(now),
                "reason": keeper.last_reason,
                "kept_without_bus": keeper.kept_without_bus,
            }
            for pbx, keeper in self.keepers.items()
        }

    # -- carrying out ---------------------------------------------------------------------

    def _input(self, pbx: str, outputs: list[Output]) -> None:
        for output in outputs:
            self._carry(pbx, output)
        self._schedule(pbx)

    def _schedule(self, pbx: str) -> None:
        keeper = self.keepers[pbx]
        timer = self._timers.pop(pbx, None)
        if timer is not None and timer.active():
            timer.cancel()
        wake = keeper.wake_at()
        if wake is None or keeper.state == "stopped":
            return
        delay = max(0.0, wake - self._clock.seconds())
        self._timers[pbx] = self._clock.callLater(delay, self._tick, pbx)

    def _tick(self, pbx: str) -> None:
        self._timers.pop(pbx, None)
        self._input(pbx, self.keepers[pbx].tick(self._clock.seconds()))

    def _carry(self, pbx: str, output: Output) -> None:
        keeper = self.keepers[pbx]
        name = LEASE_PREFIX + pbx
        ttl = self.timing.ttl
        if isinstance(output, Grant):
            sent, floor = output.sent_at, output.floor
            if keeper.state != "owner" and self._holding_back():
                self._input(pbx, keeper.failed(sent, self._clock.seconds()))
                return
            self._ask(
                pbx,
                lambda: self._bus.grant(name, self.holder, ttl, floor),
                lambda token: keeper.granted(sent, token, self._clock.seconds()),
                sent,
            )
        elif isinstance(output, Renew):
            sent = output.sent_at
            self._ask(
                pbx,
                lambda: self._bus.renew(name, self.holder, ttl),
                lambda held: keeper.renewed(sent, bool(held), self._clock.seconds()),
                sent,
            )
        elif isinstance(output, Release):
            d = self._call(lambda: self._bus.release(name, self.holder))
            d.addErrback(lambda f: log.warning("lease release failed", pbx=pbx, error=_why(f)))
            if not d.called:
                self._releases.append(d)
                d.addBoth(self._released, d)
        elif isinstance(output, RaiseFence):
            self._fence(pbx, output.token)
        elif isinstance(output, CheckFence):
            sent = output.sent_at
            log.warning("lease not renewed: the bus is unreachable; asking the database", pbx=pbx)
            self._ask(
                pbx,
                lambda: self._read_fence(pbx),
                lambda current: keeper.fence_checked(sent, current, self._clock.seconds()),
                sent,
            )
        elif isinstance(output, Owned):
            log.info("pbx owned", pbx=pbx, token=output.token, node=self.node)
            self._hook(self._on_owned, pbx, output.token)
        elif isinstance(output, Lost):
            log.warning("pbx no longer owned", pbx=pbx, token=output.token, reason=output.reason)
            self._hook(self._on_lost, pbx, output.token)

    def _ask(
        self,
        pbx: str,
        request: Callable[[], Deferred[Any]],
        answer: Callable[[Any], list[Output]],
        sent: float,
    ) -> None:
        keeper = self.keepers[pbx]

        def failed(failure: Failure) -> None:
            log.warning("lease request failed", pbx=pbx, error=_why(failure))
            if isinstance(failure.value, BusUnreachable):
                self._bus_away, self._bus_back_at = True, None
            self._input(pbx, keeper.failed(sent, self._clock.seconds()))

        d = self._call(request)
        d.addCallbacks(lambda result: self._input(pbx, answer(result)), failed)
        d.addErrback(lambda f: log.error("lease keeper failed", pbx=pbx, error=_why(f)))

    def _holding_back(self) -> bool:
        """A standby's grants wait while the bus is away and for a lease's time after it
        answers again: an owner that kept its PBXs through the outage (``lease.py``)
        takes its leases back first, instead of losing them to whichever node asks
        first of an emptied Redis. A dead owner is replaced a lease later than usual."""
        if not self._bus_away:
            return False
        now = self._clock.seconds()
        if self._bus.status().get("status") != "ok":
            self._bus_back_at = None
            return True
        if self._bus_back_at is None:
            self._bus_back_at = now
        if now < self._bus_back_at + self.timing.ttl:
            return True
        self._bus_away = False
        return False

    def _fence(self, pbx: str, token: int) -> None:
        keeper = self.keepers[pbx]

        def raised(current: int) -> None:
            now = self._clock.seconds()
            if current == token:
                self._input(pbx, keeper.fence_raised(token, now))
                return
            log.error(
                "the database holds a newer fencing token", pbx=pbx, token=token, current=current
            )
            self._input(pbx, keeper.fenced(token, now, current))

        def failed(failure: Failure) -> None:
            log.warning("cannot raise the fencing token", pbx=pbx, error=_why(failure))
            refused = failure.value if isinstance(failure.value, FenceRefused) else None
            current = None if refused is None else refused.current
            self._input(pbx, keeper.fenced(token, self._clock.seconds(), current))

        d = self._call(lambda: self._raise_fence(pbx, token, self.holder))
        d.addCallbacks(raised, failed)
        d.addErrback(lambda f: log.error("lease keeper failed", pbx=pbx, error=_why(f)))

    @staticmethod
    def _call(request: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        try:
            return request()
        except Exception as exc:  # a bus that raises instead of failing its Deferred
            failed: Deferred[Any] = Deferred()
            failed.errback(exc)
            return failed

    @staticmethod
    def _hook(hook: Hook, pbx: str, token: int) -> None:
        try:
            hook(pbx, token)
        except Exception:
            log.exception("ownership hook failed", pbx=pbx)

    def _released(self, result: object, d: Deferred[Any]) -> object:
        if d in self._releases:
            self._releases.remove(d)
        return result


def _why(failure: Failure) -> str:
    return failure.getErrorMessage()[:300]
