"""The pipeline isolates a model failure on one event: logged with the event's name,
counted, and the stream goes on (the next call is still followed)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from structlog.testing import capture_logs

from cti_bridge.ami.parser import Message
from cti_bridge.calls import CallModel
from cti_bridge.calls.events import CallEnded, DomainEvent
from cti_bridge.calls.pipeline import CallPipeline
from tests.support.calls_facts import messages


class BrokenOnce(CallModel):
    """The real model, except that it raises on the first event named ``poison``."""

    def __init__(self, poison: str) -> None:
        super().__init__("main")
        self.poison: str | None = poison

    def feed(self, msg: Mapping[str, str], received_at: float) -> list[DomainEvent]:
        if msg.get("Event") == self.poison:
            self.poison = None
            raise RuntimeError("a model bug")
        return super().feed(msg, received_at)


def test_a_model_failure_is_logged_with_the_event_and_the_stream_goes_on() -> None:
    got: list[DomainEvent] = []
    pipeline = CallPipeline(BrokenOnce("VarSet"), [got.append])
    trace = messages("01-queue-answered.ami")
    with capture_logs() as logs:
        pipeline.ami_event(Message({"Event": "VarSet", "Channel": "PJSIP/x"}), 999.0)
        for at, msg in enumerate(trace):
            if "Event" in msg:
                pipeline.ami_event(msg, 1000.0 + at)
    failed: list[MutableMapping[str, Any]] = [
        e for e in logs if e["event"] == "call model failed on an event"
    ]
    assert [(e["pbx"], e["ami_event"], e["log_level"]) for e in failed] == [
        ("main", "VarSet", "error")
    ]
    assert pipeline.model_errors == 1
    assert len([e for e in got if isinstance(e, CallEnded)]) == 1  # the trace's one call
