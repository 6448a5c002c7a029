"""The screen-pop engine on the reactor: runs the pure core's actions.

``PopService.handle`` is a call-pipeline consumer (``Node.add_consumer``). It never
blocks: the core decides in memory, a context build goes to a database thread pool
(``build_in``, the node's pop pool; else ``run``), and messages go to the bus, which
delivers them on a later reactor turn.

Which operator has which device is cached (``OperatorDirectory``): loaded at start,
refreshed every ``refresh_interval`` seconds, and soon after a ring on a device nobody has
(at most every ``miss_interval`` seconds, because the customer legs of callbacks and the
trunk ring "devices" no operator will ever have). After a refresh the rings that found
nobody are routed again, so an operator bound while their phone rings still gets the pop.

When the database does not answer, the pop still goes out - who is calling, with
``degraded: true`` and no customer data - because an operator who sees the number is
better off than one who sees nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from cti_bridge.bus import Bus
from cti_bridge.bus.topics import POP_REPLAY_TOPIC
from cti_bridge.calls.events import CallEnded, DomainEvent, OperatorRinging, RingEnded

from .context import ContextRequest, fallback_context
from .core import Action, BuildContext, CallKey, LookUpDevices, OperatorRef, PopCore, Publish

__all__ = ["POP_REPLAY_TOPIC", "OperatorDirectory", "PopService", "operators_of"]

log = structlog.get_logger("cti_bridge.pop")
T = TypeVar("T")


class Runner(Protocol):
    def __call__(self, work: Callable[[], T]) -> Deferred[T]: ...


class AccountsLike(Protocol):
    def list_operators(self) -> Any: ...


def operators_of(accounts: AccountsLike) -> Callable[[], dict[str, OperatorRef]]:
    """A loader for ``OperatorDirectory``: every active operator's devices (blocking)."""

    def load() -> dict[str, OperatorRef]:
        return {
            device: OperatorRef(info.id, info.username)
            for info in accounts.list_operators()
            if info.active
            for device in info.devices
        }

    return load


class OperatorDirectory:
    """Device -> operator, answered from memory."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, OperatorRef]],
        run: Runner,
        clock: IReactorTime,
        *,
        miss_interval: float = 5.0,
    ):
        self._load = load
        self._run = run
        self._clock = clock
        self._miss_interval = miss_interval
        self._devices: dict[str, OperatorRef] = {}
        self._waiters: list[Deferred[bool]] | None = None
        self._loaded_at: float | None = None
        self.refreshes = 0
        self.failures = 0

    def __call__(self, device: str) -> OperatorRef | None:
        return self._devices.get(device)

    def __len__(self) -> int:
        return len(self._devices)

    def refresh(self) -> Deferred[bool]:
        """Reload; fires True when some device changed hands. One load at a time: a
        refresh asked for while one runs waits for that one."""
        waiter: Deferred[bool] = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        self._loaded_at = self._clock.seconds()

        def loaded(devices: dict[str, OperatorRef]) -> bool:
            self.refreshes += 1
            changed = devices != self._devices
            self._devices = devices
            return changed

        def failed(failure: Failure) -> bool:
            self.failures += 1
            log.error("cannot load operators' devices", error=failure.getErrorMessage())
            return False

        def finish(changed: bool) -> None:
            waiters, self._waiters = self._waiters or [], None
            for each in waiters:
                each.callback(changed)

        loading = self._run(lambda: dict(self._load()))
        loading.addCallbacks(loaded, failed).addCallback(finish)
        return waiter

    def missed(self) -> Deferred[bool] | None:
        """A device was not found: refresh, unless one runs or ran very recently."""
        if self._waiters is not None:
            return None
        now = self._clock.seconds()
        if self._loaded_at is not None and now - self._loaded_at < self._miss_interval:
            return None
        return self.refresh()


class PopService:
    def __init__(
        self,
        reactor: IReactorTime,
        bus: Bus,
        run: Runner,
        build: Callable[[ContextRequest], dict[str, Any]],
        load_operators: Callable[[], Mapping[str, OperatorRef]],
        *,
        default_region: str = "BE",
        refresh_interval: float = 30.0,
        miss_interval: float = 5.0,
        max_call_age: float = 6 * 3600.0,
        call_id: Callable[[ContextRequest], int | None] | None = None,
        build_in: Runner | None = None,
    ):
        self._reactor = reactor
        self._bus = bus
        self._run = run
        #: Where context builds and call id fetches run (default: ``run``).
        self._run_build = build_in or run
        self._build = build
        self._call_id = call_id
        self._region = default_region
        self._refresh_interval = refresh_interval
        self._max_call_age = max_call_age
        self.directory = OperatorDirectory(
            load_operators, run, reactor, miss_interval=miss_interval
        )
        self.core = PopCore(self.directory)
        self._unsubscribe: Callable[[], None] | None = None
        self._refresher = LoopingCall(self._refresh)
        self._refresher.clock = reactor
        self._ring_seen: dict[str, float] = {}
        self._latency_ms: deque[float] = deque(maxlen=4096)
        self._build_ms: deque[float] = deque(maxlen=4096)
        self._counts = {"pops": 0, "updates": 0, "withdrawn": 0, "replayed": 0}
        self._counts |= {"builds": 0, "build_failures": 0, "swept": 0}
        self._counts |= {"call_ids_late": 0, "call_id_failures": 0}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = self._bus.subscribe(POP_REPLAY_TOPIC, self._replay_requested)
        self._refresher.start(self._refresh_interval, now=True)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._refresher.running:
            self._refresher.stop()

    # -- the pipeline consumer ---------------------------------------------------------------

    def handle(self, event: DomainEvent) -> None:
        if isinstance(event, OperatorRinging):
            self._ring_seen[event.ring.uniqueid] = self._reactor.seconds()
        elif isinstance(event, RingEnded):
            self._ring_seen.pop(event.ring.uniqueid, None)
        elif isinstance(event, CallEnded):
            for ring in event.call.rings:
                self._ring_seen.pop(ring.uniqueid, None)
        self._execute(self.core.feed(event))

    # -- running actions ---------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Publish):
                self._publish(action)
            elif isinstance(action, BuildContext):
                self._start_build(action)
            elif isinstance(action, LookUpDevices):
                refreshing = self.directory.missed()
                if refreshing is not None:
                    refreshing.addCallback(self._directory_refreshed)

    def _publish(self, action: Publish) -> None:
        kind = action.message.get("type")
        if kind == "screen_pop":
            self._counts["replayed" if action.message.get("replay") else "pops"] += 1
        elif kind == "pop_withdrawn":
            self._counts["withdrawn"] += 1
        else:
            self._counts["updates"] += 1
        if action.ring_uniqueid is not None:
            seen = self._ring_seen.pop(action.ring_uniqueid, None)
            if seen is not None:
                self._latency_ms.append((self._reactor.seconds() - seen) * 1000.0)
        self._bus.publish(action.topic, action.message)

    def _start_build(self, action: BuildContext) -> None:
        request = ContextRequest.of(action.call)
        key: CallKey = action.key
        self._counts["builds"] += 1
        started = time.perf_counter()

        def failed(failure: Failure) -> dict[str, Any]:
            self._counts["build_failures"] += 1
            log.error(
                "pop context failed; popping without customer data",
                pbx=key[0],
                linkedid=key[1],
                error=failure.getErrorMessage()[:300],
            )
            return fallback_context(request, self._region, "customer data unavailable")

        def ready(context: dict[str, Any]) -> None:
            self._build_ms.append((time.perf_counter() - started) * 1000.0)
            self._execute(self.core.context_ready(key, context))
            if context.get("call_id_pending") and self._call_id is not None:
                self._fetch_call_id(key, request)

        building = self._run_build(lambda: self._build(request))
        building.addErrback(failed).addCallback(ready)
        building.addErrback(self._bug, "showing the pop")

    def _fetch_call_id(self, key: CallKey, request: ContextRequest) -> None:
        """The pop went out without its record id (the write lock was busy): get it now,
        waiting as long as it takes, so the call's next messages carry it."""
        assert self._call_id is not None
        self._counts["call_ids_late"] += 1
        find = self._call_id

        def found(call_id: int | None) -> None:
            if call_id is not None:
                self._execute(self.core.call_id_ready(key, call_id))

        def failed(failure: Failure) -> None:
            self._counts["call_id_failures"] += 1
            log.error(
                "no call id for the pop",
                pbx=key[0],
                linkedid=key[1],
                error=failure.getErrorMessage()[:300],
            )

        finding = self._run_build(lambda: find(request))
        finding.addCallbacks(found, failed).addErrback(self._bug, "keeping the call id")

    def _directory_refreshed(self, changed: bool) -> None:
        if changed:
            self._execute(self.core.directory_changed())

    def _refresh(self) -> Deferred[None]:
        cutoff = self._reactor.seconds() - self._max_call_age
        self._counts["swept"] += self.core.forget_older_than(cutoff)
        return self.directory.refresh().addCallback(self._directory_refreshed)

    def _replay_requested(self, message: dict[str, Any]) -> None:
        operator_id = message.get("operator_id")
        if isinstance(operator_id, int) and not isinstance(operator_id, bool):
            self._execute(self.core.replay(operator_id))

    @staticmethod
    def _bug(failure: Failure, doing: str) -> None:
        log.error("pop engine failed", doing=doing, error=failure.getErrorMessage()[:300])

    # -- figures -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "calls": self.core.calls(),
            "active_pops": self.core.active_pops(),
            "devices": len(self.directory),
            **self._counts,
            "ring_to_pop_ms": _summary(self._latency_ms),
            "context_build_ms": _summary(self._build_ms),
        }


def _summary(values: deque[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"count": len(ordered), "p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 3)}
