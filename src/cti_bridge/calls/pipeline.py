"""One PBX's event path: the AMI link's listener, the call model, and its consumers.

``ami_event`` is the hot path: each event goes through the model and the domain events it
causes go to every consumer (record writer, pop service, ...). A consumer that raises is
logged and isolated; it never stops the others or the link. Consumers must not block:
they queue work for the thread pools.

The pipeline wants what its model consumes (``wanted_events``/``wanted_variables``), so
the AMI link skips the rest of a busy PBX's events - most of them - before parsing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from cti_bridge.ami.listener import AMIListener, ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.calls.events import CallEnded, CallStarted, DomainEvent
from cti_bridge.calls.model import CallModel

log = structlog.get_logger("cti_bridge.pipeline")

Consumer = Callable[[DomainEvent], None]
ResyncHook = Callable[[str, list[str], float], None]


class CallPipeline(AMIListener):
    def __init__(
        self,
        model: CallModel,
        consumers: Iterable[Consumer] = (),
        *,
        on_resync: Iterable[ResyncHook] = (),
    ):
        self.model = model
        self.pbx = model.pbx
        self.wanted_events: frozenset[str] | None = model.consumed_events
        self.wanted_variables: frozenset[str] | None = model.consumed_variables
        self.consumers: list[Consumer] = list(consumers)
        self.resync_hooks: list[ResyncHook] = list(on_resync)
        self.events = 0
        self.domain_events = 0
        self.calls_started = 0
        self.calls_ended: dict[str, int] = {}
        self.model_errors = 0
        self.consumer_errors = 0
        self.resyncs = 0

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    # -- AMIListener ---------------------------------------------------------------------

    def ami_event(self, msg: Message, received_at: float) -> None:
        self.events += 1
        try:
            produced = self.model.feed(msg, received_at)
        except Exception:
            # A model bug on one odd event must not cost the rest of the stream.
            self.model_errors += 1
            log.exception("call model failed on an event", pbx=self.pbx, ami_event=msg.get("Event"))
            return
        if produced:
            self._dispatch(produced)

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self.resyncs += 1
        try:
            produced = self.model.resync(snapshot.channels, received_at)
        except Exception:
            self.model_errors += 1
            log.exception("call model failed to resync", pbx=self.pbx)
            return
        self._dispatch(produced)
        live = [call.linkedid for call in self.model.live_calls]
        for hook in self.resync_hooks:
            try:
                hook(self.pbx, live, received_at)
            except Exception:
                self.consumer_errors += 1
                log.exception("resync hook failed", pbx=self.pbx, hook=repr(hook))
        log.info(
            "resynchronised with the PBX",
            pbx=self.pbx,
            live_calls=len(live),
            channels=len(snapshot.channels),
        )

    def ami_link_lost(self, reason: str, at: float) -> None:
        try:
            produced = self.model.link_lost(at)
        except Exception:
            self.model_errors += 1
            log.exception("call model failed on link loss", pbx=self.pbx)
            return
        self._dispatch(produced)

    # -- fan-out -------------------------------------------------------------------------

    def deliver(self, events: list[DomainEvent]) -> None:
        """Give the consumers events this PBX's link did not produce (calls read from the
        PBX's own CDRs after a resync), as if the model had."""
        self._dispatch(events)

    def _dispatch(self, produced: list[DomainEvent]) -> None:
        for event in produced:
            self.domain_events += 1
            if type(event) is CallStarted:
                self.calls_started += 1
            elif type(event) is CallEnded:
                outcome = str(event.call.outcome)
                self.calls_ended[outcome] = self.calls_ended.get(outcome, 0) + 1
            for consumer in self.consumers:
                try:
                    consumer(event)
                except Exception:
                    self.consumer_errors += 1
                    log.exception(
                        "call event consumer failed",
                        pbx=self.pbx,
                        consumer=repr(consumer),
                        linkedid=event.call.linkedid,
                    )

    def status(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "domain_events": self.domain_events,
            "live_calls": self.model.state_sizes()["calls"],
            "calls_started": self.calls_started,
            "calls_ended": dict(self.calls_ended),
            "model_errors": self.model_errors,
            "consumer_errors": self.consumer_errors,
            "resyncs": self.resyncs,
        }
