"""The callback dialer as separate processes on a real Asterisk 22: a daemon killed
(SIGKILL) while the operator's phone rings, and two daemons on one PostgreSQL.

Each daemon is ``cti-bridge run --config <file>``, an administrator's start
(``DaemonProcess``). These tests run no reactor: the store is read with its own
connection and the PBX through the harness. What the PBX rang and dialled comes from the
dialplan's dial audit (``AsteriskInstance.dial_audit()``), compared with the attempts
table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from cti_bridge.store import Store, open_store, upgrade
from cti_bridge.store.models import AgreementAttempt
from cti_bridge.testing.asterisk import AsteriskInstance
from cti_bridge.testing.store import cheap_hasher, scratch_postgres
from tests.integration.dialer_support import (
    CUSTOMER_RING_SECONDS,
    DaemonProcess,
    config_data,
    dialer_section,
    free_port,
    iso,
    wait_until,
)

Factory = Callable[..., AsteriskInstance]

#: The crash test's retry: long, so that "not re-dialled at once" is plain to see.
LONG_RETRY = 600


def _store(url: str) -> Store:
    upgrade(url)
    return open_store(url, accounts={"hasher": cheap_hasher()})


def _attempt(store: Store, agreement_id: int, number: int) -> dict[str, Any] | None:
    agreement = store.agreements.get_agreement(agreement_id)
    assert agreement is not None
    attempts = agreement["attempts"]
    return attempts[number - 1] if len(attempts) >= number else None


@pytest.fixture
def processes() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; each one still running is stopped after it."""
    started: list[DaemonProcess] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()


@pytest.fixture
def pbx(asterisk: AsteriskInstance) -> Iterator[AsteriskInstance]:
    """The session's Asterisk with an empty dial audit and short customer rings."""
    asterisk.clear_dial_audit()
    asterisk.set_global("CALLBACK_RING_SECONDS", CUSTOMER_RING_SECONDS)
    try:
        yield asterisk
    finally:
        asterisk.wait_idle(timeout=40, hangup_after=25)
        asterisk.set_global("CALLBACK_RING_SECONDS", "30")


@pytest.mark.parametrize(
    "operator_answers",
    [True, False],
    ids=["operator-answers-meanwhile", "call-gone-before-the-restart"],
)
def test_a_daemon_killed_while_the_operator_rings_dials_nobody_twice(
    pbx: AsteriskInstance,
    processes: list[DaemonProcess],
    tmp_path: Path,
    operator_answers: bool,
) -> None:
    url = f"sqlite:///{tmp_path / 'cti.sqlite3'}"
    store = _store(url)
    anna = store.accounts.add_operator(
        "anna", role="operator", password="x" * 12, devices=["Local/1001@agents"]
    )
    # Anna answers after 4 s of ringing (Originate Timeout 10 s) and then talks 30 s: the
    # customer is dialled while the daemon is down, and the call outlives its restart.
    # Or her phone rings 60 s, past the 4 s Timeout: the call is gone when it comes back.
    if operator_answers:
        pbx.set_operator("1001", ring=4, talk=30)
        ring_seconds = 10
    else:
        pbx.set_operator("1001", ring=60, talk=1)
        ring_seconds = 4
    dialer = dialer_section(
        operator_ring_seconds=ring_seconds, retry_seconds=[LONG_RETRY], max_attempts=3
    )
    config = config_data(url, pbx, node="real-crash", web_port=free_port(), dialer=dialer)
    agreement_id = store.agreements.add_agreement(
        "callback",
        owner_operator_id=anna.id,
        callback_number="+32470123456",
        deadline=datetime.now(UTC) + timedelta(hours=8),
    )
    daemon = DaemonProcess(tmp_path, "real-crash", config)
    processes.append(daemon)
    daemon.start()

    def ringing() -> bool:
        return bool(pbx.dial_audit().rung_for(agreement_id, 1))

    wait_until(ringing, 30, "Anna's phone ringing for attempt 1")
    daemon.kill()
    # Killed while she rang: the attempt is open in the store, nobody dialled the customer.
    open_one = _attempt(store, agreement_id, 1)
    assert open_one is not None and open_one["outcome"] is None
    assert pbx.dial_audit().dialled_for(agreement_id, 1) == ()

    if not operator_answers:
        pbx.wait_idle(timeout=30)  # the Originate's Timeout ends the call on its own
    else:
        wait_until(
            lambda: pbx.dial_audit().dialled_for(agreement_id, 1),
            30,
            "the customer dialled while the daemon is down",
        )
    daemon.start()
    live_at_restart = pbx.active_channels() > 0

    ended = wait_until(
        lambda: (a := _attempt(store, agreement_id, 1)) and a["outcome"] and a,
        60,
        "attempt 1 resolved after the restart",
    )
    if operator_answers:
        # The call (customer answered 3 s after the dial, talking 10 s) outlives the
        # restart: found live on the PBX and followed on.
        assert live_at_restart, "the restart took longer than the whole call"
        assert ended["outcome"] == "answered"
    else:
        assert ended["outcome"] == "unknown"
    if not operator_answers:
        assert ended["detail"] and "gone" in ended["detail"]
    ended_at = iso(ended["ended_at"])
    assert ended_at is not None

    if ended["outcome"] == "unknown":
        # The resolution leaves it due (next_attempt_at = now) for the policy, and the
        # next pass puts it off by the retry: never a re-dial at once.
        def scheduled() -> datetime | None:
            agreement = store.agreements.get_agreement(agreement_id)
            assert agreement is not None
            assert len(agreement["attempts"]) == 1, agreement["attempts"]
            at = iso(agreement["next_attempt_at"])
            return at if at is not None and at > ended_at + timedelta(seconds=1) else None

        next_at = wait_until(scheduled, 30, "the next attempt put off by the retry")
        assert next_at >= ended_at + timedelta(seconds=LONG_RETRY)
    # Several passes later, still one attempt, on the PBX as in the store.
    passes = daemon.dialer_status()["passes"]
    wait_until(
        lambda: daemon.dialer_status().get("passes", 0) >= passes + 4, 30, "four more passes"
    )
    pbx.wait_idle(timeout=40)
    agreement = store.agreements.get_agreement(agreement_id)
    assert agreement is not None and len(agreement["attempts"]) == 1
    audit = pbx.dial_audit()
    assert audit.rung == {(agreement_id, 1): ("1001",)}  # one Originate
    expected = {(agreement_id, 1): ("0470123456",)} if operator_answers else {}
    assert audit.dialled == expected  # the customer dialled at most once
    store.close()


#: 20 operators (simulated phones), each a member of ``support``.
OPERATORS = [f"{a}00{b}" for a in (1, 2) for b in range(1, 10)] + ["3001", "3002"]
AGREEMENTS = 20


@pytest.mark.postgres
def test_two_daemons_on_one_database_dial_every_attempt_exactly_once(
    asterisk_factory: Factory, processes: list[DaemonProcess], tmp_path: Path
) -> None:
    pbx = asterisk_factory()
    for ext in OPERATORS:
        pbx.set_operator(ext, ring=0.5, talk=30)
        if ext not in ("1001", "1002"):  # the static members of queues.conf
            pbx.cli(
                f"queue add member Local/{ext}@agents/n to support penalty 0 "
                f"as Op{ext} state_interface Local/{ext}@agents"
            )
    with scratch_postgres("cti_dialer") as url:
        store = _store(url)
        try:
            for ext in OPERATORS:
                store.accounts.add_operator(
                    f"op{ext}", role="operator", password="x" * 12, devices=[f"Local/{ext}@agents"]
                )
            dialer = dialer_section(
                operator_ring_seconds=5, retry_seconds=[2], max_attempts=2, owner_grace_seconds=0
            )
            for node in ("real-a", "real-b"):
                config = config_data(url, pbx, node=node, web_port=free_port(), dialer=dialer)
                processes.append(DaemonProcess(tmp_path, node, config))
            for daemon in processes:
                daemon.start()
            # Due now, in queue support, nobody's own: any free member may take each one.
            deadline = datetime.now(UTC) + timedelta(hours=8)
            ids = [
                store.agreements.add_agreement(
                    "callback",
                    callback_number="+32478554433",
                    queue="support",
                    deadline=deadline,
                )
                for _ in range(AGREEMENTS)
            ]

            def all_flagged() -> bool:
                rows = [store.agreements.get_agreement(i) for i in ids]
                return all(r is not None and r["status"] == "failed" for r in rows)

            wait_until(all_flagged, 150, "every agreement dialled twice and flagged", every=0.5)
            pbx.wait_idle(timeout=30)

            shown = {i: store.agreements.get_agreement(i) for i in ids}
            sent = [d.dialer_status()["originates"] for d in processes]
            engine = create_engine(url)
            try:
                with engine.connect() as connection:
                    rows = connection.execute(select(AgreementAttempt)).mappings().all()
            finally:
                engine.dispose()
        finally:
            store.close()

    stored = sorted((r["agreement_id"], r["number"]) for r in rows)
    assert stored == sorted((i, n) for i in ids for n in (1, 2))  # each slot once
    assert all(r["outcome"] == "busy" and r["ended_at"] is not None for r in rows)
    assert {r["node"] for r in rows} <= {"real-a", "real-b"}
    assert len({r["channel_id"] for r in rows}) == len(rows)
    assert sum(sent) == len(rows)  # the daemons' own count of Originates sent

    audit = pbx.dial_audit()
    # What the PBX saw: one Originate and one customer dial per attempt slot, no other.
    assert sorted(audit.rung) == stored
    assert sorted(audit.dialled) == stored
    assert all(len(legs) == 1 for legs in audit.rung.values()), audit.rung
    assert all(legs == ("0478554433",) for legs in audit.dialled.values()), audit.dialled
    # ... and it rang the operator each attempt names.
    for agreement_id, agreement in shown.items():
        assert agreement is not None
        for attempt in agreement["attempts"]:
            operator = attempt["operator"]
            assert operator is not None and operator.startswith("op")
            assert audit.rung[agreement_id, attempt["number"]] == (operator[2:],)
