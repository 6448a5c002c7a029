"""Shared pieces of the pop tests: operators bound to the traces' devices, a bus that
records every publish, and runners that do the "thread pool" work when the test says so."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from cti_bridge.bus import MemoryBus
from cti_bridge.calls.events import DomainEvent
from cti_bridge.pop import ContextRequest, OperatorRef, PopService

T = TypeVar("T")

#: username -> (operator id, devices). Eve has no device: she must never get anything.
OPERATORS: dict[str, tuple[int, tuple[str, ...]]] = {
    "anna": (1, ("Local/1001@agents", "PJSIP/1001")),
    "bart": (2, ("Local/1002@agents", "PJSIP/1002")),
    "chris": (3, ("Local/1003@agents",)),
    "second": (4, ("Local/2001@agents", "PJSIP/2001")),
    "eve": (5, ()),
}
BY_ID = {op_id: name for name, (op_id, _) in OPERATORS.items()}


def directory(
    operators: Mapping[str, tuple[int, tuple[str, ...]]] = OPERATORS,
) -> dict[str, OperatorRef]:
    return {
        device: OperatorRef(op_id, name)
        for name, (op_id, devices) in operators.items()
        for device in devices
    }


class RecordingBus(MemoryBus):
    """The in-process bus, also keeping every publish in order (topic, message)."""

    def __init__(self, clock: Clock):
        super().__init__(clock)
        self.log: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        # What Redis would carry: the JSON text, decoded again.
        self.log.append((topic, json.loads(json.dumps(dict(message)))))
        super().publish(topic, message)

    def to(self, username: str) -> list[dict[str, Any]]:
        topic = f"operator.{OPERATORS[username][0]}"
        return [m for t, m in self.log if t == topic]

    def kinds(self, username: str, linkedid: str | None = None) -> list[str]:
        return [
            m["type"]
            for m in self.to(username)
            if linkedid is None or m.get("linkedid") == linkedid
        ]


def now_runner(work: Callable[[], T]) -> Deferred[T]:
    """Runs the work at once (the pool and the database answer instantly)."""
    try:
        return succeed(work())
    except Exception as error:
        return fail(error)


@dataclass
class HeldRunner:
    """Holds every piece of work until the test releases it (a slow database)."""

    held: list[tuple[Callable[[], Any], Deferred[Any]]] = field(default_factory=list)

    def __call__(self, work: Callable[[], T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        self.held.append((work, d))
        return d

    def release_all(self) -> int:
        count = 0
        while self.held:
            work, d = self.held.pop(0)
            try:
                d.callback(work())
            except Exception as error:
                d.errback(error)
            count += 1
        return count


def fake_context(request: ContextRequest) -> dict[str, Any]:
    """A context without a database: enough for routing tests to check content."""
    return {
        "call_id": abs(hash((request.pbx, request.linkedid))) % 100_000,
        "caller": {
            "number": None if request.caller_withheld else request.caller_number_raw,
            "number_raw": request.caller_number_raw,
            "name": request.caller_name,
            "withheld": request.caller_withheld,
        },
        "customer": None,
        "in_contract": False,
        "contracts": [],
        "history": [],
        "agreements": [],
        "agreement": None
        if request.agreement_ref is None
        else {"id": int(request.agreement_ref), "kind": "callback"},
        "scripts": [],
        "upsell": None,
        "degraded": False,
        "builds": 1,
    }


@dataclass
class PopRig:
    clock: Clock
    bus: RecordingBus
    service: PopService
    builds: list[ContextRequest]

    def feed(self, events: list[DomainEvent]) -> None:
        for event in events:
            self.service.handle(event)
        self.clock.advance(0)

    def deliver(self) -> None:
        self.clock.advance(0)


def pop_rig(
    *,
    runner: Callable[[Callable[[], Any]], Deferred[Any]] = now_runner,
    build: Callable[[ContextRequest], dict[str, Any]] = fake_context,
    devices: Callable[[], Mapping[str, OperatorRef]] | None = None,
    start: bool = True,
) -> PopRig:
    clock = Clock()
    clock.advance(1_795_735_000)
    bus = RecordingBus(clock)
    builds: list[ContextRequest] = []

    def counting_build(request: ContextRequest) -> dict[str, Any]:
        builds.append(request)
        return build(request)

    service = PopService(
        clock,
        bus,
        runner,  # type: ignore[arg-type]
        counting_build,
        devices or directory,
    )
    if start:
        service.start()
    return PopRig(clock, bus, service, builds)
