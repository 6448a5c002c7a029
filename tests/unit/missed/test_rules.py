"""The pure rule (missed/rules.py): which ended call owes a callback, which one keeps it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest

from cti_bridge.calls.events import Call, Direction, HungUpBy, Outcome, RingResult
from cti_bridge.missed.rules import Decision, Ignore, Missed, Resolve, decide
from cti_bridge.store.numbers import normalize_number
from cti_bridge.testing.store import START, CallBuilder

AGENT = "Local/1001@agents"
normalize = partial(normalize_number, region="BE")


def settings(queue: str) -> tuple[bool, float, float]:
    """support: on, 30 s; sales: on, 0 s, 2 h; anything else: off."""
    return {"support": (True, 30.0, 4.0), "sales": (True, 0.0, 2.0)}.get(queue, (False, 30.0, 4.0))


def abandoned(
    wait: float,
    *,
    queue: str | None = "support",
    number: str | None = "050123456",
    withheld: bool = False,
    direction: Direction = Direction.INBOUND,
    timeout: bool = False,
) -> Call:
    """A caller waits ``wait`` s in ``queue`` and hangs up (or the queue's timeout puts
    them out, and the dialplan ends the call 5 s later)."""
    call = CallBuilder("lid.1", number=number, withheld=withheld, direction=direction)
    if queue is not None:
        call.join_queue(queue, START + 1)
    gave_up = START + 1 + wait
    if timeout:
        return call.end(
            gave_up + 5, Outcome.ABANDONED, hung_up_by=HungUpBy.SYSTEM, wait_ended_at=gave_up
        ).call
    return call.end(gave_up, Outcome.ABANDONED, wait_ended_at=gave_up).call


def answered(
    *, number: str | None = "+3250123456", direction: Direction = Direction.INBOUND
) -> Call:
    return (
        CallBuilder("lid.2", number=number, direction=direction)
        .join_queue("support", START + 1)
        .ring(AGENT, START + 2, queue="support")
        .answer(AGENT, START + 40)
        .end(START + 100, Outcome.ANSWERED)
        .call
    )


def missed_direct() -> Call:
    """A direct call that rang out: missed, not abandoned in a queue."""
    return (
        CallBuilder("lid.3", dialled="1001")
        .ring(AGENT, START + 1)
        .ring_end(AGENT, START + 61, RingResult.NO_ANSWER)
        .end(START + 61, Outcome.MISSED, hung_up_by=HungUpBy.SYSTEM)
        .call
    )


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def live() -> Call:
    return CallBuilder("lid.4").join_queue("support", START + 1).call


CASES: list[tuple[str, Callable[[], Call], Decision]] = [
    (
        "waited past the threshold",
        lambda: abandoned(45),
        Missed("main", "lid.1", "+3250123456", "support", at(START + 46), 4.0),
    ),
    (
        "exactly the threshold counts",
        lambda: abandoned(30),
        Missed("main", "lid.1", "+3250123456", "support", at(START + 31), 4.0),
    ),
    ("gave up before it", lambda: abandoned(29.9), Ignore("short_wait")),
    (
        "the queue's timeout put the caller out: abandoned, from the moment they left",
        lambda: abandoned(60, timeout=True),
        Missed("main", "lid.1", "+3250123456", "support", at(START + 61), 4.0),
    ),
    (
        "a queue with its own threshold and deadline",
        lambda: abandoned(1, queue="sales"),
        Missed("main", "lid.1", "+3250123456", "sales", at(START + 2), 2.0),
    ),
    ("a queue it is off for", lambda: abandoned(300, queue="billing"), Ignore("disabled")),
    ("withheld", lambda: abandoned(300, number="anonymous", withheld=True), Ignore("withheld")),
    ("no caller ID at all", lambda: abandoned(300, number=None), Ignore("withheld")),
    ("caller ID that is no phone number", lambda: abandoned(300, number="1"), Ignore("no_number")),
    (
        "an internal call into the queue",
        lambda: abandoned(300, direction=Direction.INTERNAL),
        Ignore("not_inbound"),
    ),
    ("a direct call that rang out", missed_direct, Ignore("not_abandoned")),
    ("not ended", live, Ignore("live")),
    (
        "an answered inbound call keeps the number's promise, from the answer",
        answered,
        Resolve("main", "lid.2", "+3250123456", at(START + 40)),
    ),
    (
        "answered, national format",
        lambda: answered(number="050 12 34 56"),
        Resolve("main", "lid.2", "+3250123456", at(START + 40)),
    ),
    (
        "a callback (outbound) the customer answered keeps nothing by itself",
        lambda: answered(direction=Direction.OUTBOUND),
        Ignore("not_inbound"),
    ),
    ("answered, no phone number", lambda: answered(number="<script>"), Ignore("no_number")),
]


@pytest.mark.parametrize(("case", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, call: Callable[[], Call], expected: Decision) -> None:
    assert decide(call(), settings, normalize) == expected


def test_an_abandoned_call_outside_any_queue_is_not_a_missed_queue_call() -> None:
    """PRODUCT.md: abandoned means a queue; a model that said so without one is ignored."""
    call = abandoned(300, queue=None)
    assert decide(call, settings, normalize) == Ignore("no_queue")
