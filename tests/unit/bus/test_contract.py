"""One suite for both buses: the in-process twin (on a fake clock) and Redis (the real
server on :6379, marked ``redis``). What is promised is written in ``cti_bridge/bus/base.py``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import pytest_twisted
from structlog.testing import capture_logs

from cti_bridge.bus import BusNotRunning

from .conftest import Nodes


@pytest_twisted.ensureDeferred
async def test_message_reaches_subscribers_on_every_node(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    a.subscribe("operator.7", got_a.append)
    b.subscribe("operator.7", got_b.append)
    a.publish("operator.7", {"type": "screen_pop", "caller": {"name": "<b>Zoë</b>"}})
    assert got_a == []  # eventual: never inside publish()
    await nodes.until(lambda: len(got_a) == 1 and len(got_b) == 1)
    assert got_a[0] == got_b[0] == {"type": "screen_pop", "caller": {"name": "<b>Zoë</b>"}}


@pytest_twisted.ensureDeferred
async def test_topics_are_separate_and_order_is_kept(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got: list[int] = []
    other: list[int] = []
    b.subscribe("operator.1", lambda m: got.append(m["n"]))
    b.subscribe("operator.2", lambda m: other.append(m["n"]))
    for n in range(50):
        a.publish("operator.1", {"n": n})
    await nodes.until(lambda: len(got) == 50)
    assert got == list(range(50))
    assert other == []


@pytest_twisted.ensureDeferred
async def test_order_is_kept_across_topics(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got: list[tuple[str, int]] = []
    b.subscribe("operator.1", lambda m: got.append(("operator.1", m["n"])))
    b.subscribe("supervisors", lambda m: got.append(("supervisors", m["n"])))
    sent = [("operator.1" if n % 3 else "supervisors", n) for n in range(30)]
    for topic, n in sent:
        a.publish(topic, {"n": n})
    await nodes.until(lambda: len(got) == len(sent))
    assert got == sent


@pytest_twisted.ensureDeferred
async def test_a_handler_that_publishes_does_not_recurse(nodes: Nodes) -> None:
    """Its message is delivered after the current one has reached every handler."""
    a, b = nodes.a, nodes.b
    got: list[str] = []
    after_publish: list[list[str]] = []

    def relay(message: dict[str, Any]) -> None:
        got.append(f"relay {message['n']}")
        if message["n"] == 1:
            b.publish("t", {"n": 2})
            after_publish.append(list(got))

    b.subscribe("t", relay)
    b.subscribe("t", lambda m: got.append(f"next {m['n']}"))
    a.publish("t", {"n": 1})
    await nodes.until(lambda: len(got) == 4)
    assert got == ["relay 1", "next 1", "relay 2", "next 2"]
    assert after_publish == [["relay 1"]]  # nothing ran inside publish


@pytest_twisted.ensureDeferred
async def test_own_messages_arrive_once(nodes: Nodes) -> None:
    """The publishing node delivers to itself at once and skips its echo from Redis."""
    a, b = nodes.a, nodes.b
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    a.subscribe("operator.4", got_a.append)
    b.subscribe("operator.4", got_b.append)
    a.publish("operator.4", {"n": 1})
    await nodes.until(lambda: got_b == [{"n": 1}])
    # b's reply travels behind a's echo (one channel, in order): once a has it, the echo
    # of {"n": 1} has been and gone.
    b.publish("operator.4", {"n": 2})
    await nodes.until(lambda: {"n": 2} in got_a)
    assert got_a == [{"n": 1}, {"n": 2}]
    await nodes.until(lambda: len(got_b) == 2)
    assert got_b == [{"n": 1}, {"n": 2}]


@pytest_twisted.ensureDeferred
async def test_messages_arrive_as_json_and_each_handler_has_its_own_copy(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    seen: list[dict[str, Any]] = []

    def vandal(message: dict[str, Any]) -> None:
        message["caller"]["name"] = "changed"
        message["extra"] = True

    b.subscribe("operator.5", vandal)
    b.subscribe("operator.5", seen.append)
    a.publish("operator.5", {"caller": {"name": "Zoë"}, "ids": (1, 2)})
    await nodes.until(lambda: len(seen) == 1)
    assert seen == [{"caller": {"name": "Zoë"}, "ids": [1, 2]}]  # a tuple travels as a list


@pytest_twisted.ensureDeferred
async def test_a_text_subscriber_gets_the_json_text_in_order_beside_the_others(
    nodes: Nodes,
) -> None:
    """``subscribe_text``: what a screen's socket forwards, undecoded, on every node."""
    a, b = nodes.a, nodes.b
    texts: list[str] = []
    decoded: list[dict[str, Any]] = []
    own: list[str] = []
    b.subscribe_text("operator.5", texts.append)
    b.subscribe("operator.5", decoded.append)
    a.subscribe_text("operator.5", own.append)
    a.publish("operator.5", {"caller": {"name": "Zoë <b>"}, "n": 1})
    a.publish("operator.5", {"n": 2})
    a.publish("operator.6", {"n": 3})
    await nodes.until(lambda: len(texts) == 2 and len(decoded) == 2 and len(own) == 2)
    assert texts == own == ['{"caller":{"name":"Zoë <b>"},"n":1}', '{"n":2}']
    assert [json.loads(t) for t in texts] == decoded
    stop = b.subscribe_text("operator.5", texts.append)
    stop()
    stop()
    a.publish("operator.5", {"n": 4})
    await nodes.until(lambda: len(decoded) == 3)
    assert len(texts) == 3  # the first text subscription only


@pytest_twisted.ensureDeferred
async def test_failing_handler_does_not_stop_the_others(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    b.subscribe("supervisors", broken)
    b.subscribe("supervisors", got.append)
    a.publish("supervisors", {"type": "queue_update"})
    await nodes.until(lambda: len(got) == 1)


@pytest_twisted.ensureDeferred
async def test_failing_handler_is_logged_and_stays_subscribed(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    calls: list[dict[str, Any]] = []
    got: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        calls.append(message)
        raise RuntimeError("handler bug")

    b.subscribe("supervisors", broken)
    b.subscribe("supervisors", got.append)
    with capture_logs() as logs:
        a.publish("supervisors", {"n": 1})
        a.publish("supervisors", {"n": 2})
        await nodes.until(lambda: len(got) == 2)
    assert calls == got == [{"n": 1}, {"n": 2}]
    failed = [entry for entry in logs if entry["event"] == "bus handler failed"]
    assert [entry["topic"] for entry in failed] == ["supervisors", "supervisors"]
    assert all(entry["log_level"] == "error" for entry in failed)


@pytest_twisted.ensureDeferred
async def test_unsubscribe_stops_delivery(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got: list[dict[str, Any]] = []
    witness: list[dict[str, Any]] = []
    stop = b.subscribe("t", got.append)
    b.subscribe("t", witness.append)
    stop()
    a.publish("t", {"x": 1})
    await nodes.until(lambda: len(witness) == 1)
    assert got == []


@pytest_twisted.ensureDeferred
async def test_unsubscribe_ends_its_own_subscription_only_however_often_called(
    nodes: Nodes,
) -> None:
    a, b = nodes.a, nodes.b
    got: list[int] = []

    def handler(message: dict[str, Any]) -> None:
        got.append(message["n"])

    first = b.subscribe("t", handler)
    b.subscribe("t", handler)  # the same handler twice: two subscriptions
    first()
    first()  # a second call ends nothing more
    a.publish("t", {"n": 1})
    await nodes.until(lambda: got == [1])
    a.publish("t", {"n": 2})
    await nodes.until(lambda: got == [1, 2])


@pytest_twisted.ensureDeferred
async def test_unsubscribed_by_an_earlier_handler_is_not_called(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    got: list[str] = []
    stops: list[Any] = []

    def closer(message: dict[str, Any]) -> None:
        got.append("closer")
        stops[0]()  # e.g. the screen behind the next handler went away

    b.subscribe("t", closer)
    stops.append(b.subscribe("t", lambda m: got.append("gone")))
    b.subscribe("t", lambda m: got.append("witness"))
    a.publish("t", {})
    await nodes.until(lambda: "witness" in got)
    assert got == ["closer", "witness"]


@pytest_twisted.ensureDeferred
async def test_a_handler_subscribed_after_publish_misses_that_message(nodes: Nodes) -> None:
    """Who gets a message is decided when it reaches the node: for its own node, at
    publish, whether or not the topic had subscribers then."""
    a = nodes.a
    witness: list[int] = []
    late: list[int] = []
    a.publish("t", {"n": 0})  # nobody listens yet
    a.subscribe("t", lambda m: witness.append(m["n"]))
    a.publish("t", {"n": 1})
    a.subscribe("t", lambda m: late.append(m["n"]))
    a.publish("t", {"n": 2})
    await nodes.until(lambda: witness == [1, 2])
    assert late == [2]


@pytest_twisted.ensureDeferred
async def test_payload_must_be_json(nodes: Nodes) -> None:
    bus = nodes.a
    before = bus.status()["published"]
    with pytest.raises(TypeError):
        bus.publish("t", {"when": object()})
    assert bus.status()["published"] == before  # refused, so not counted


@pytest_twisted.ensureDeferred
async def test_status(nodes: Nodes) -> None:
    a = nodes.a
    status = a.status()
    assert status["status"] == "ok"
    assert status["kind"] == nodes.kind
    got: list[dict[str, Any]] = []
    a.subscribe("t", got.append)
    a.publish("t", {"n": 1})
    a.publish("t", {"n": 2})
    assert a.status()["published"] == status["published"] + 2
    await nodes.until(lambda: len(got) == 2)
    assert a.status()["status"] == "ok"


def _lock() -> str:
    return f"agreement-{uuid.uuid4().hex[:6]}"


@pytest_twisted.ensureDeferred
async def test_lock_has_one_owner_until_released_or_expired(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.acquire(name, "node-a", ttl=0.3)) is True
    assert await nodes.wait(b.acquire(name, "node-b", ttl=0.3)) is False
    assert await nodes.wait(b.release(name, "node-b")) is False  # not the owner
    assert await nodes.wait(a.release(name, "node-a")) is True
    assert await nodes.wait(b.acquire(name, "node-b", ttl=0.2)) is True
    await nodes.elapse(0.35)  # the lock expires by itself (a crashed node cannot hold it forever)
    assert await nodes.wait(a.acquire(name, "node-a", ttl=1)) is True


@pytest_twisted.ensureDeferred
async def test_the_holder_cannot_acquire_its_lock_again(nodes: Nodes) -> None:
    """``SET NX``: taking a held lock fails for everyone; the holder extends with renew."""
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.acquire(name, "node-a", ttl=10)) is True
    assert await nodes.wait(a.acquire(name, "node-a", ttl=10)) is False
    assert await nodes.wait(b.acquire(name, "node-a", ttl=10)) is False  # same owner, other node
    await nodes.elapse(8)
    assert await nodes.wait(a.acquire(name, "node-a", ttl=10)) is False  # did not extend it
    await nodes.elapse(4)
    assert await nodes.wait(b.acquire(name, "node-b", ttl=10)) is True  # it ended at 10 s


@pytest_twisted.ensureDeferred
async def test_renew_extends_the_holders_lease(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.acquire(name, "node-a", ttl=10)) is True
    await nodes.elapse(8)
    assert await nodes.wait(a.renew(name, "node-a", ttl=10)) is True  # now 10 s from here
    await nodes.elapse(8)
    assert await nodes.wait(b.acquire(name, "node-b", ttl=10)) is False  # 16 s > the first 10
    assert await nodes.wait(b.renew(name, "node-b", ttl=10)) is False  # not the holder
    await nodes.elapse(4)
    assert await nodes.wait(b.acquire(name, "node-b", ttl=10)) is True


@pytest_twisted.ensureDeferred
async def test_renew_never_revives_a_lease(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.renew(name, "node-a", ttl=10)) is False  # nobody held it
    assert await nodes.wait(a.acquire(name, "node-a", ttl=5)) is True
    await nodes.elapse(6)
    assert await nodes.wait(a.renew(name, "node-a", ttl=10)) is False  # it had ended
    assert await nodes.wait(b.acquire(name, "node-b", ttl=10)) is True


@pytest_twisted.ensureDeferred
async def test_an_expired_holder_releases_nothing(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.acquire(name, "node-a", ttl=5)) is True
    await nodes.elapse(6)
    assert await nodes.wait(a.release(name, "node-a")) is False  # too late
    assert await nodes.wait(b.acquire(name, "node-b", ttl=10)) is True
    assert await nodes.wait(a.release(name, "node-a")) is False  # the new holder's lock stays
    assert await nodes.wait(a.acquire(name, "node-a", ttl=10)) is False
    assert await nodes.wait(b.release(name, "node-b")) is True
    assert await nodes.wait(b.release(name, "node-b")) is False  # once


@pytest_twisted.ensureDeferred
async def test_locks_are_separate_by_name(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    first, second = _lock(), _lock()
    assert await nodes.wait(a.acquire(first, "node-a", ttl=10)) is True
    assert await nodes.wait(b.acquire(second, "node-b", ttl=10)) is True
    assert await nodes.wait(a.release(second, "node-a")) is False
    assert await nodes.wait(b.release(first, "node-b")) is False


@pytest_twisted.ensureDeferred
async def test_lock_operations_need_a_running_bus(nodes: Nodes) -> None:
    bus = nodes.fresh()
    name = _lock()
    for operation in (
        lambda: bus.acquire(name, "node-c", ttl=10),
        lambda: bus.renew(name, "node-c", ttl=10),
        lambda: bus.release(name, "node-c"),
    ):
        with pytest.raises(BusNotRunning):
            await nodes.wait(operation())
    await nodes.wait(bus.start())
    assert await nodes.wait(bus.acquire(name, "node-c", ttl=10)) is True
    await nodes.wait(bus.stop())
    with pytest.raises(BusNotRunning):
        await nodes.wait(bus.release(name, "node-c"))


# -- fenced leases: grant and its token ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_grant_tokens_grow_with_every_grant_whoever_the_holder(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    first = await nodes.wait(a.grant(name, "node-a", ttl=5))
    assert isinstance(first, int)
    assert await nodes.wait(b.grant(name, "node-b", ttl=5)) is None  # held
    assert await nodes.wait(a.grant(name, "node-a", ttl=5)) is None  # the holder too
    assert await nodes.wait(a.release(name, "node-a")) is True
    second = await nodes.wait(b.grant(name, "node-b", ttl=5))
    assert second is not None and second > first
    await nodes.elapse(6)  # b's lease runs out
    third = await nodes.wait(a.grant(name, "node-a", ttl=5))
    assert third is not None and third > second
    await nodes.elapse(6)
    fourth = await nodes.wait(a.grant(name, "node-a", ttl=5))  # the same holder again
    assert fourth is not None and fourth > third


@pytest_twisted.ensureDeferred
async def test_a_grant_with_a_floor_gives_a_token_above_it(nodes: Nodes) -> None:
    """A bus that lost its counters (a restarted Redis) is told the database's token."""
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.grant(name, "node-a", ttl=5, floor=41)) == 42
    assert await nodes.wait(b.grant(name, "node-b", ttl=5, floor=99)) is None  # held
    assert await nodes.wait(a.release(name, "node-a")) is True
    assert await nodes.wait(b.grant(name, "node-b", ttl=5, floor=10)) == 43  # never lower
    assert await nodes.wait(b.token(name, "node-b")) == 43


@pytest_twisted.ensureDeferred
async def test_grant_tokens_are_counted_per_name(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    first, second = _lock(), _lock()
    one = await nodes.wait(a.grant(first, "node-a", ttl=5))
    assert await nodes.wait(b.grant(second, "node-b", ttl=5)) == one  # both start at the same
    assert await nodes.wait(a.token(second, "node-a")) is None


@pytest_twisted.ensureDeferred
async def test_the_holder_reads_its_token_while_it_holds_the_lease(nodes: Nodes) -> None:
    a, b = nodes.a, nodes.b
    name = _lock()
    assert await nodes.wait(a.token(name, "node-a")) is None  # never granted
    token = await nodes.wait(a.grant(name, "node-a", ttl=5))
    assert await nodes.wait(a.token(name, "node-a")) == token
    assert await nodes.wait(b.token(name, "node-a")) == token  # from any node
    assert await nodes.wait(b.token(name, "node-b")) is None  # not the holder
    await nodes.elapse(4)
    assert await nodes.wait(a.renew(name, "node-a", ttl=5)) is True
    await nodes.elapse(4)
    assert await nodes.wait(a.token(name, "node-a")) == token  # renewing keeps the token
    await nodes.elapse(2)
    assert await nodes.wait(a.token(name, "node-a")) is None  # it ran out


@pytest_twisted.ensureDeferred
async def test_a_stale_holder_cannot_renew_or_release_after_another_was_granted(
    nodes: Nodes,
) -> None:
    """The paused holder: its lease ran out and another node was granted the name."""
    a, b = nodes.a, nodes.b
    name = _lock()
    old = await nodes.wait(a.grant(name, "node-a", ttl=5))
    await nodes.elapse(6)
    new = await nodes.wait(b.grant(name, "node-b", ttl=5))
    assert new is not None and old is not None and new > old
    assert await nodes.wait(a.renew(name, "node-a", ttl=5)) is False
    assert await nodes.wait(a.release(name, "node-a")) is False
    assert await nodes.wait(a.token(name, "node-a")) is None
    assert await nodes.wait(b.token(name, "node-b")) == new  # the new holder keeps it
    assert await nodes.wait(b.renew(name, "node-b", ttl=5)) is True


@pytest_twisted.ensureDeferred
async def test_grant_and_token_need_a_running_bus(nodes: Nodes) -> None:
    bus = nodes.fresh()
    name = _lock()
    with pytest.raises(BusNotRunning):
        await nodes.wait(bus.grant(name, "node-c", ttl=10))
    with pytest.raises(BusNotRunning):
        await nodes.wait(bus.token(name, "node-c"))
    await nodes.wait(bus.start())
    token = await nodes.wait(bus.grant(name, "node-c", ttl=10))
    assert isinstance(token, int)
