"""Which ended call leaves a promise behind, and which one keeps it (pure).

A caller who waited in a queue and gave up is owed a call back; the helpdesk would
rather not wait for that caller to try again. So an ended call is read once, here:

* abandoned in a queue (the caller hung up, or the queue's own timeout put them out:
  both are ``abandoned`` per PRODUCT.md) after waiting at least the queue's
  ``min_wait_seconds``, from a number that is shown and is a phone number → ``Missed``:
  the store makes (or joins) the number's callback agreement;
* an inbound call from a shown phone number that somebody answered → ``Resolve``: the
  customer got through after all, so their missed-call agreements are kept;
* anything else → ``Ignore``, with the reason (for the logs and the tests).

No clock, no store, no config object: the per-queue settings (``(enabled,
min_wait_seconds, deadline_hours)``, as ``MissedCallsConfig.for_queue`` gives them) and
the number normaliser (``store.numbers.normalize_number`` in the site's region) are
handed in, so the rule is a table in its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cti_bridge.calls.events import Call, Direction, Outcome

__all__ = ["Decision", "Ignore", "Missed", "QueueSettings", "Resolve", "decide"]

#: ``queue -> (enabled, min_wait_seconds, deadline_hours)``.
QueueSettings = Callable[[str], tuple[bool, float, float]]
#: A caller number as the PBX sent it → E.164, or ``None`` when it is not a phone number.
Normalizer = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Missed:
    """A callback is owed to ``number`` (E.164) for the call ``pbx`` + ``linkedid``."""

    pbx: str
    linkedid: str
    number: str
    queue: str
    #: When the caller stopped waiting (hung up, or the queue's timeout put them out).
    at: datetime
    #: Business hours from ``at`` to the callback's deadline.
    deadline_hours: float


@dataclass(frozen=True, slots=True)
class Resolve:
    """``number`` got through: the call ``pbx`` + ``linkedid`` was answered at ``at``."""

    pbx: str
    linkedid: str
    number: str
    at: datetime


Reason = Literal[
    "live",  # not ended yet
    "not_inbound",  # internal or outbound (a callback is outbound: it keeps nothing)
    "withheld",  # nobody to call back
    "no_number",  # the caller ID is not a phone number
    "not_abandoned",  # ended unanswered, but not in a queue (missed, failed)
    "no_queue",
    "disabled",  # missed calls are off for the call's queue
    "short_wait",  # gave up before the queue's threshold
]


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: Reason


Decision = Missed | Resolve | Ignore


def decide(call: Call, settings: QueueSettings, normalize: Normalizer) -> Decision:
    """What the ended ``call`` means for the promise book."""
    if call.outcome is None or call.ended_at is None:
        return Ignore("live")
    if call.direction is not Direction.INBOUND:
        return Ignore("not_inbound")
    if call.caller_withheld or call.caller_number_raw is None:
        return Ignore("withheld")
    if call.answered_at is not None:
        number = normalize(call.caller_number_raw)
        if number is None:
            return Ignore("no_number")
        return Resolve(call.pbx, call.linkedid, number, _utc(call.answered_at))
    if call.outcome is not Outcome.ABANDONED:
        return Ignore("not_abandoned")
    if call.queue is None:
        return Ignore("no_queue")
    enabled, min_wait, deadline_hours = settings(call.queue)
    if not enabled:
        return Ignore("disabled")
    if (call.wait_seconds or 0.0) < min_wait:
        return Ignore("short_wait")
    number = normalize(call.caller_number_raw)
    if number is None:
        return Ignore("no_number")
    gave_up = call.wait_ended_at if call.wait_ended_at is not None else call.ended_at
    return Missed(call.pbx, call.linkedid, number, call.queue, _utc(gave_up), deadline_hours)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
