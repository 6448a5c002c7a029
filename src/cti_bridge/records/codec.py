"""Domain events as plain JSON values, and back: what the spool writes and replays.

Every event carries its call's whole snapshot, so a line of the spool is the call as the
model saw it at that event; decoding gives an event equal to the one written (the
``variables`` too, although they take no part in equality). The shape is versioned
(``v``): a spool written by a newer release that this one cannot read is refused line
by line, counted and logged, never guessed at.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Direction,
    DomainEvent,
    HungUpBy,
    OperatorRinging,
    Outcome,
    QueueResult,
    Ring,
    RingEnded,
    RingResult,
    Segment,
    Transfer,
    TransferKind,
)

__all__ = ["VERSION", "decode_event", "encode_event"]

VERSION = 1

_KINDS: dict[str, type[DomainEvent]] = {
    kind.__name__: kind
    for kind in (CallStarted, OperatorRinging, RingEnded, CallAnswered, CallTransferred, CallEnded)
}


def _plain(value: Ring | Segment | Transfer) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def _call(call: Call) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: getattr(call, f.name) for f in fields(call)}
    out["queues"] = list(call.queues)
    out["rings"] = [_plain(ring) for ring in call.rings]
    out["segments"] = [_plain(segment) for segment in call.segments]
    out["transfers"] = [_plain(transfer) for transfer in call.transfers]
    out["variables"] = dict(call.variables)
    return out


def encode_event(event: DomainEvent) -> dict[str, Any]:
    """``event`` as JSON-ready values (enums are ``str``; times stay POSIX floats)."""
    out: dict[str, Any] = {"v": VERSION, "kind": type(event).__name__, "call": _call(event.call)}
    if isinstance(event, OperatorRinging | RingEnded):
        out["ring"] = _plain(event.ring)
    elif isinstance(event, CallAnswered):
        out["segment"] = _plain(event.segment)
    elif isinstance(event, CallTransferred):
        out["transfer"] = _plain(event.transfer)
    return out


def _optional(kind: Any, value: Any) -> Any:
    return None if value is None else kind(value)


def _ring(data: dict[str, Any]) -> Ring:
    return Ring(**{**data, "result": _optional(RingResult, data.get("result"))})


def _segment(data: dict[str, Any]) -> Segment:
    return Segment(**data)


def _transfer(data: dict[str, Any]) -> Transfer:
    return Transfer(**{**data, "kind": TransferKind(data["kind"])})


def _decode_call(data: dict[str, Any]) -> Call:
    return Call(
        **{
            **data,
            "direction": Direction(data["direction"]),
            "queues": tuple(data.get("queues", ())),
            "rings": tuple(_ring(r) for r in data.get("rings", ())),
            "segments": tuple(_segment(s) for s in data.get("segments", ())),
            "transfers": tuple(_transfer(t) for t in data.get("transfers", ())),
            "hung_up_by": _optional(HungUpBy, data.get("hung_up_by")),
            "outcome": _optional(Outcome, data.get("outcome")),
            "queue_result": _optional(QueueResult, data.get("queue_result")),
            "variables": dict(data.get("variables", {})),
        }
    )


def decode_event(data: Any) -> DomainEvent:
    """The event ``encode_event`` made; ``ValueError`` for anything else."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        version = data.get("v") if isinstance(data, dict) else None
        raise ValueError(f"spool format version {version!r}, this release reads {VERSION}")
    try:
        kind = _KINDS[data["kind"]]
        call = _decode_call(data["call"])
        if kind is OperatorRinging:
            return OperatorRinging(call, _ring(data["ring"]))
        if kind is RingEnded:
            return RingEnded(call, _ring(data["ring"]))
        if kind is CallAnswered:
            return CallAnswered(call, _segment(data["segment"]))
        if kind is CallTransferred:
            return CallTransferred(call, _transfer(data["transfer"]))
        if kind is CallStarted:
            return CallStarted(call)
        return CallEnded(call)
    except ValueError:
        raise
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a call event: {type(error).__name__}: {error}") from None
