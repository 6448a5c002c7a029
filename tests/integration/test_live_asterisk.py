"""The supervisors' live view of a running daemon on a real Asterisk 22: pause and
unpause with a reason through the API (the PBX's own QueueStatus agrees), a member added
and removed over AMI; each time ``GET /api/queues`` equals what a fresh QueueStatus says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted

from cti_bridge.app.daemon import Daemon
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    http,
    in_thread,
    login,
    prepared_store,
    sleep,
    started_daemon,
)


def queue_status(pbx: AsteriskInstance) -> list[dict[str, str]]:
    with pbx.ami(events="off") as ami:
        action_id = ami.send("QueueStatus")
        items: list[dict[str, str]] = []
        ami.wait_for(
            lambda m: m.get("ActionID") == action_id and m.get("Event") == "QueueStatusComplete",
            10,
            seen=items,
        )
    return [m for m in items if m.get("ActionID") == action_id and "Event" in m]


def pbx_view(items: list[dict[str, str]]) -> dict[str, Any]:
    """Per queue: members (interface -> paused reason or None) and the waiting callers."""
    view: dict[str, Any] = {}
    for item in items:
        queue = item.get("Queue", "")
        if item["Event"] == "QueueParams":
            view[queue] = {"members": {}, "waiting": []}
        elif item["Event"] == "QueueMember":
            paused = item.get("Paused") == "1"
            view[queue]["members"][item["Location"]] = (
                (item.get("PausedReason") or None) if paused else False
            )
        elif item["Event"] == "QueueEntry":
            view[queue]["waiting"].append((int(item["Position"]), item["Uniqueid"]))
    return view


def api_view(queues: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        q["name"]: {
            "members": {
                m["interface"]: (m["paused_reason"] if m["paused"] else False) for m in q["members"]
            },
            "waiting": [(w["position"], w["linkedid"]) for w in q["waiting"]],
        }
        for q in queues
    }


class Live:
    def __init__(self, pbx: AsteriskInstance, daemon: Daemon, token: str, anna: str):
        self.pbx, self.daemon, self.token, self.anna = pbx, daemon, token, anna

    async def queues(self) -> list[dict[str, Any]]:
        code, body = await http("GET", self.daemon.url + "api/queues", token=self.token)
        assert code == 200, body
        return list(body["queues"])

    async def agrees(self, what: str) -> None:
        """Eventually the API says what a fresh QueueStatus says."""
        last: list[Any] = []

        async def same() -> bool:
            pbx = pbx_view(await in_thread(queue_status, self.pbx))
            ours = api_view(await self.queues())
            last[:] = [pbx, ours]
            return pbx == ours

        for _ in range(40):
            if await same():
                return
            await sleep(0.25)
        raise AssertionError(f"{what}: PBX {last[0]} != API {last[1]}")


@pytest_twisted.async_yield_fixture
async def live(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Live]:
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "1001"), ("bart", "1002")):
        store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{device}@agents"]
        )
    store.accounts.add_operator("sofie", role="supervisor", password=PASSWORD)
    config = daemon_config(
        url, asterisk.ami_host, asterisk.ami_port, asterisk.username, asterisk.secret, auth="plain"
    )
    daemon = await started_daemon(config)
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "AMI link up")
    token = await login(daemon, "sofie")
    anna = await login(daemon, "anna")
    yield Live(asterisk, daemon, token, anna)
    await in_thread(asterisk.cli, "queue unpause member Local/1001@agents/n")
    await daemon.stop()
    store.close()


@pytest_twisted.ensureDeferred
async def test_pause_through_the_api_and_members_added_match_queue_status(live: Live) -> None:
    await live.agrees("after the snapshot")
    url = live.daemon.url + "api/agents/anna/"
    code, body = await http("POST", url + "pause", {"reason": "lunch"}, token=live.anna)
    assert code == 200, body
    assert body["queues"] == ["sales", "support"]
    items = await in_thread(queue_status, live.pbx)
    anna = [m for m in items if m.get("Location") == "Local/1001@agents/n"]
    assert anna and all(m["Paused"] == "1" and m["PausedReason"] == "lunch" for m in anna)
    await live.agrees("paused")
    code, body = await http("GET", live.daemon.url + "api/agents", token=live.token)
    (agent,) = [a for a in body["agents"] if a["operator"] == "anna"]
    assert (agent["state"], agent["paused_reason"]) == ("paused", "lunch")

    code, body = await http("POST", url + "unpause", token=live.token)
    assert code == 200, body
    await live.agrees("unpaused")

    with live.pbx.ami(events="off") as ami:
        added = ami.action(
            "QueueAdd",
            {"Queue": "support", "Interface": "Local/2001@agents/n", "MemberName": "Second"},
        )
        assert added["Response"] == "Success", added
    await live.agrees("a member added")
    with live.pbx.ami(events="off") as ami:
        removed = ami.action(
            "QueueRemove", {"Queue": "support", "Interface": "Local/2001@agents/n"}
        )
        assert removed["Response"] == "Success", removed
    await live.agrees("a member removed")
