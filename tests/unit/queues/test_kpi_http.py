"""``GET /api/kpis`` and ``GET /api/kpis/operators`` through the real routes on the web's
Klein app, with the memory store and a clock (the node's pool replaced by running the
work at once): supervisors and admins only, 400s that say what is wrong, the shapes,
today in the site's time zone. Nothing listens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any, TypeVar

import pytest
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge.app.config import parse_config
from cti_bridge.bus import MemoryBus
from cti_bridge.calls.events import Outcome
from cti_bridge.queues.kpi_routes import add_kpi_routes
from cti_bridge.queues.kpi_service import KpiService
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import CallBuilder, cheap_hasher
from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub
from tests.support.web_requests import Logins, RecordingRequest, at_once

T = TypeVar("T")
A1 = "Local/1001@agents"
#: Tuesday 2026-03-10, 14:00 in Brussels (UTC+1): the site's day is 09 23:00 .. 10 23:00 UTC.
NOW = datetime(2026, 3, 10, 13, tzinfo=UTC)


@dataclass
class Rig:
    clock: Clock
    store: MemoryStore
    resource: Resource

    def ask(self, path: str, *, token: str | None = "t-sofie") -> tuple[int, Any]:
        channel = DummyChannel()
        channel.site = Site(self.resource, reactor=self.clock)
        request = RecordingRequest(channel)
        request.content = BytesIO(b"")
        if token is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        request.requestReceived(b"GET", path.encode(), b"HTTP/1.1")
        assert request.finished, "the answer is not synchronous"
        return request.code, json.loads(request.body)


def queue_call(
    store: MemoryStore, linkedid: str, at: datetime, queue: str, *, wait: float, talk: float | None
) -> None:
    start = at.timestamp()
    call = CallBuilder(linkedid, at=start).join_queue(queue, start).ring(A1, start)
    if talk is None:
        call.end(start + wait, Outcome.ABANDONED)
    else:
        call.answer(A1, start + wait).leave(A1, start + wait + talk)
        call.end(start + wait + talk, Outcome.ANSWERED)
    store.calls.apply(call.events)


@pytest.fixture
def rig() -> Rig:
    clock = Clock()
    clock.advance(NOW.timestamp())
    store = open_memory_store(clock=clock.seconds, accounts={"hasher": cheap_hasher()})
    anna = store.accounts.add_operator(
        "anna", role="operator", password="anna-secret", devices=[A1]
    )
    sofie = store.accounts.add_operator("sofie", role="supervisor", password="sofie-secret")
    logins = Logins()
    logins.tokens["t-anna"] = Principal(anna.id, "anna", "operator")
    logins.tokens["t-sofie"] = Principal(sofie.id, "sofie", "supervisor")
    logins.tokens["t-root"] = Principal(sofie.id, "root", "admin")
    web = WebApp(
        logins,
        Hub(clock, MemoryBus(clock), logins.resolve_token),
        health=lambda: {"status": "ok"},
        metrics=lambda: b"",
    )
    config = parse_config(
        {
            "kpis": {
                "service_level_seconds": 20,
                "queues": {"sales": {"service_level_seconds": 30, "service_level_target": 0.9}},
            }
        }
    )
    service = KpiService(
        lambda: store.kpis,
        at_once,
        clock=clock.seconds,
        zone="Europe/Brussels",
        settings=config.kpis,
    )
    add_kpi_routes(web, service)
    # Today (local): support answered after 10 s and 30 s, one abandon after 2 s; sales
    # answered after 25 s (within its own 30). 23:30 UTC on the 9th is 00:30 local on the
    # 10th: today. 22:30 UTC on the 9th is yesterday.
    queue_call(store, "s.1", datetime(2026, 3, 10, 8, tzinfo=UTC), "support", wait=10.0, talk=100.0)
    queue_call(store, "s.2", datetime(2026, 3, 10, 9, tzinfo=UTC), "support", wait=30.0, talk=200.0)
    queue_call(
        store, "s.3", datetime(2026, 3, 9, 23, 30, tzinfo=UTC), "support", wait=2.0, talk=None
    )
    queue_call(
        store, "s.4", datetime(2026, 3, 9, 22, 30, tzinfo=UTC), "support", wait=50.0, talk=None
    )
    queue_call(store, "b.1", datetime(2026, 3, 10, 10, tzinfo=UTC), "sales", wait=25.0, talk=60.0)
    return Rig(clock, store, web.resource())


def test_today_for_one_queue(rig: Rig) -> None:
    code, found = rig.ask("/api/kpis?queue=support")
    assert code == 200
    # support today: s.1, s.2, s.3 (s.4 was yesterday, local): offered 3, answered 2,
    # within 20 s: s.1 -> SL 1 / 2 = 0.5; abandoned 1 (2 s: short, within); with
    # abandons 1 / (2 + 1 - 1) = 0.5; ASA (10 + 30) / 2 = 20; AHT (100 + 200) / 2 = 150;
    # longest wait 30.
    assert found["queue"] == "support"
    assert found["since"] == "2026-03-09T23:00:00.000Z"
    assert found["until"] == "2026-03-10T23:00:00.000Z"
    assert (found["offered"], found["answered"], found["abandoned"]) == (3, 2, 1)
    assert found["short_abandoned"] == 1
    assert found["service_level"] == 0.5 and found["service_level_with_abandons"] == 0.5
    assert found["service_level_seconds"] == 20.0
    assert found["service_level_target"] == 0.8  # the default aim
    assert (found["asa_seconds"], found["aht_seconds"]) == (20.0, 150.0)
    assert found["longest_wait_seconds"] == 30.0
    assert found["callbacks_due"] == 0 and found["top_categories"] == []


def test_every_queue_and_any_period(rig: Rig) -> None:
    code, found = rig.ask("/api/kpis")
    assert code == 200
    assert [q["queue"] for q in found["queues"]] == ["sales", "support"]
    sales = found["queues"][0]
    # sales' own threshold 30: its 25 s answer is within.
    assert (sales["service_level"], sales["service_level_seconds"]) == (1.0, 30.0)
    assert sales["service_level_target"] == 0.9  # its own aim
    # Two days in UTC: s.4 counts now, 50 s abandoned after the threshold.
    code, found = rig.ask("/api/kpis?queue=support&since=2026-03-09T00:00:00Z&until=2026-03-11")
    assert code == 200
    assert (found["offered"], found["abandoned_after_threshold"]) == (4, 1)
    assert found["until"] == "2026-03-11T00:00:00.000Z"  # a date without a zone is UTC
    # A queue nobody called: zeros and nulls, never an error.
    code, found = rig.ask("/api/kpis?queue=nobody")
    assert code == 200 and found["offered"] == 0 and found["service_level"] is None


def test_only_supervisors_and_admins(rig: Rig) -> None:
    assert rig.ask("/api/kpis", token="t-anna")[0] == 403
    assert rig.ask("/api/kpis/operators", token="t-anna")[0] == 403
    assert rig.ask("/api/kpis", token=None)[0] == 401
    assert rig.ask("/api/kpis", token="t-root")[0] == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since must be an ISO 8601 date or time"),
        ("until=2026-13-01", "until must be an ISO 8601 date or time"),
        ("since=2026-03-10&until=2026-03-10", "since must be before until"),
        ("since=2026-03-10&until=2026-03-01", "since must be before until"),
        ("since=2024-01-01&until=2026-01-01", "the period is longer than 366 days"),
        ("queue=" + "q" * 129, "queue is too long"),
    ],
)
def test_bad_queries_are_400s(rig: Rig, query: str, message: str) -> None:
    code, body = rig.ask(f"/api/kpis?{query}")
    assert code == 400
    assert message in json.dumps(body)


def test_operators_per_hour(rig: Rig) -> None:
    code, found = rig.ask("/api/kpis/operators")
    assert code == 200
    # Anna (A1) answered s.1 (08:xx UTC, 100 s), s.2 (09:xx, 200 s), b.1 (10:xx, 60 s).
    assert found == {
        "since": "2026-03-09T23:00:00.000Z",
        "until": "2026-03-10T23:00:00.000Z",
        "operators": [
            {
                "operator": "anna",
                "calls": 3,
                "talk_seconds": 360.0,
                "hours": [
                    {"hour": "2026-03-10T08:00:00.000Z", "calls": 1, "talk_seconds": 100.0},
                    {"hour": "2026-03-10T09:00:00.000Z", "calls": 1, "talk_seconds": 200.0},
                    {"hour": "2026-03-10T10:00:00.000Z", "calls": 1, "talk_seconds": 60.0},
                ],
            }
        ],
    }
    assert rig.ask("/api/kpis/operators?since=2026-03-10T12:00Z")[1]["operators"] == []


def test_the_live_views_calls(rig: Rig) -> None:
    service = KpiService(
        lambda: rig.store.kpis,
        at_once,
        clock=rig.clock.seconds,
        zone="Europe/Brussels",
        settings=parse_config({}).kpis,
    )
    today: dict[str, Any] = {}
    service.today(["support", "empty"]).addCallback(today.update)
    assert sorted(today) == ["empty", "support"]
    assert today["support"]["offered"] == 3 and today["empty"]["offered"] == 0
    agents: dict[str, Any] = {}
    service.operators_today().addCallback(agents.update)
    assert agents == {"anna": {"calls_today": 3, "talk_seconds_today": 360.0}}
    # Tomorrow nothing has happened yet.
    rig.clock.advance(timedelta(days=1).total_seconds())
    tomorrow: dict[str, Any] = {"not": "called"}
    service.today(None).addCallback(lambda found: tomorrow.update(found=found))
    assert tomorrow["found"] == {}


def test_the_queues_room_installs_the_service() -> None:
    from cti_bridge.queues.kpi_service import KpiService as Service
    from tests.unit.queues.test_feed import Rig as FeedRig

    node = FeedRig().node
    assert isinstance(node.part("kpis", Service), Service)
