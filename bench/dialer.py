"""The callback dialer on 100,000 open agreements, 1,000 of them due within one minute.

    python bench/dialer.py [--database sqlite postgresql] [--agreements 100000]
        [--due 1000] [--window 60] [--pass-seconds 1] [--operators 100]

The real ``DialerService`` on the real reactor, the real store (``open_store``, the
agreement book) and the node's way of running store work (``deferToThreadPool`` on a
4-thread pool, ``database.pool_size``'s default). Not real: the PBX and the queues room.

* The database: ``--agreements`` customers (bench/popdata.py's bulk load) and as many
  open agreements, bulk inserted with SQLAlchemy core (not ``add_agreement``: no
  ``created`` history rows), one per customer. ``--due`` of them (every
  ``agreements/due``-th id) are callbacks for the queue ``support``, without owner; just
  before the reactor starts they are made due ``--lead`` s later, evenly over
  ``--window`` s in a shuffled order (``next_attempt_at`` = ``due_at``). Of the others,
  60 % are callbacks due from two hours on (spread over 30 days), 40 % other kinds
  (nothing to dial: no ``next_attempt_at``). ``--operators`` operators with one device
  each, in the accounts tables: the dialer looks their devices up there, as
  ``for_node`` does. Then ``popdata.settle`` (VACUUM ANALYZE / WAL checkpoint).
* The dialer: ``[dialer]`` hours 00:00-24:00 every day, no holidays, ``pass_seconds``
  from ``--pass-seconds``. Its ``OperatorBoard`` says every operator is available in
  ``support`` (the dialer itself does not ring an operator it is ringing already).
* The PBX: a fake AMI client whose ``originate`` notes the reactor's clock, and
  ``--ring`` s later answers as Asterisk does when the operator does not pick up
  (``OriginateResponse`` Failure, reason 3): the attempt ends ``no_answer``, its outcome
  is stored (``finish_attempt``), the next attempt falls 10 minutes later (after the run),
  and the operator is free again.

Measured: due → ``Originate`` per agreement (the reactor clock at the fake's
``originate`` minus the agreement's ``next_attempt_at``), p50/p99/max; every pass's wall
time (a subclass that only times ``_pass``), empty and with claims; the store calls' time
in their thread; the due read alone on the full table (nothing due, and a full batch of
``PASS_LIMIT``); the query plans of every SELECT the dialer sent (captured at the
cursor, explained afterwards); the reactor's loop lag, a 10 ms ``LoopingCall``, from the
dialer's start to its stop. Checks: every due agreement got exactly one ``Originate``,
nothing else got one, and the store holds exactly one ended attempt for each.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import random
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import benchlib
import popdata
from sqlalchemy import Engine, Table, bindparam, event, func, select, update
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from cti_bridge.ami.client import AMIClient
from cti_bridge.ami.originate import OriginateRequest, OriginateResult
from cti_bridge.ami.parser import Message
from cti_bridge.app.config import DialerConfig, DialerHoursConfig
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.callbacks import DueCallback, OpenAttempt
from cti_bridge.dialer.policy import OperatorState
from cti_bridge.dialer.service import PASS_LIMIT, DialerService, PassReport
from cti_bridge.log import configure_logging
from cti_bridge.store import Store, open_store
from cti_bridge.store.agreements import NEXT_ATTEMPT_INDEX, Agreements, due_query
from cti_bridge.store.models import Agreement, AgreementAttempt, Operator, OperatorDevice

T = TypeVar("T")
QUEUE = "support"
ALL_DAY = "00:00-24:00"
#: Reason 3 of an OriginateResponse: the operator's phone rang out.
NO_ANSWER_REASON = 3
THREADS = 4  # database.pool_size's default: the node's store pool


# -- the database ------------------------------------------------------------------------------


def due_ids(agreements: int, due: int) -> list[int]:
    step = agreements // due
    return [k * step for k in range(1, due + 1)]


def seed(url: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """Customers, operators and agreements, bulk; returns what the checks need."""
    popdata.load_customers(url, args.agreements)  # runs the migrations first
    store = open_store(url)
    due = set(due_ids(args.agreements, args.due))
    later = args.agreements - len(due)
    future_step = timedelta(days=30) / max(1, later)
    first_future = now + timedelta(hours=2)
    futures: list[datetime] = []

    def agreements() -> Iterator[dict[str, Any]]:
        other = 0
        for n in range(1, args.agreements + 1):
            row: dict[str, Any] = {
                "id": n,
                "customer_id": n,
                "status": "open",
                "created_at": now,
                "updated_at": now,
                "flagged": False,
                "origin": "operator",
            }
            if n in due:  # made due by arm(), just before the reactor starts
                row.update(
                    kind="callback",
                    callback_number=popdata.customer_number(n),
                    queue=QUEUE,
                    deadline=now + timedelta(days=1),
                    due_at=now + timedelta(days=365),
                    next_attempt_at=now + timedelta(days=365),
                )
            elif other % 5 < 3:  # 60 %: a callback due later
                at = first_future + future_step * len(futures)
                futures.append(at)
                row.update(
                    kind="callback",
                    callback_number=popdata.customer_number(n),
                    queue=QUEUE,
                    deadline=at + timedelta(days=2),
                    due_at=at,
                    next_attempt_at=at,
                )
            else:  # 40 %: something else promised, nothing to dial
                kind = ("documentation", "technician", "repair", "second_line")[other % 4]
                row.update(kind=kind, deadline=now + timedelta(days=3 + other % 20))
            if n not in due:
                other += 1
            yield row

    def operators() -> Iterator[dict[str, Any]]:
        for k in range(1, args.operators + 1):
            yield {
                "id": k,
                "username": f"op{k:04d}",
                "name": f"Operator {k}",
                "role": "operator",
                "password_hash": "not-for-login",
                "active": True,
                "created_at": now,
                "password_changed_at": now,
            }

    def devices() -> Iterator[dict[str, Any]]:
        for k in range(1, args.operators + 1):
            yield {"id": k, "device": f"PJSIP/op{k:04d}", "operator_id": k, "bound_at": now}

    # Every row has every key (executemany); the columns a kind leaves out are null.
    keys = ("kind", "callback_number", "queue", "deadline", "due_at", "next_attempt_at")
    try:
        with store.engine.begin() as connection:
            popdata.insert_batches(connection, Operator.__table__, operators(), 10_000)
            popdata.insert_batches(connection, OperatorDevice.__table__, devices(), 10_000)
            rows = (dict.fromkeys(keys) | row for row in agreements())
            popdata.insert_batches(connection, Agreement.__table__, rows, 20_000)
            if url.startswith("postgresql"):
                for table in ("operators", "operator_devices", "agreements"):
                    connection.exec_driver_sql(
                        f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"
                    )
    finally:
        store.close()
    return {"due": sorted(due), "futures": futures}


def arm(engine: Engine, ids: Sequence[int], start: float, window: float) -> dict[int, float]:
    """The due agreements fall due from ``start`` on, evenly over ``window`` seconds, in
    a shuffled order. Returns agreement id -> its due instant (POSIX seconds)."""
    order = list(ids)
    random.Random(10).shuffle(order)
    step = window / len(order)
    due = {aid: start + (k + 0.5) * step for k, aid in enumerate(order)}
    table = cast("Table", Agreement.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(next_attempt_at=bindparam("b_at"), due_at=bindparam("b_at"))
    )
    with engine.begin() as connection:
        connection.execute(
            statement,
            [{"b_id": aid, "b_at": datetime.fromtimestamp(at, UTC)} for aid, at in due.items()],
        )
    return due


# -- what the dialer talks to -----------------------------------------------------------------


class Statements:
    """Every distinct SQL statement sent at the cursor (SELECT and UPDATE, not
    executemany), with the parameters of its first use, by the store call it was for."""

    def __init__(self, engine: Engine) -> None:
        self.seen: dict[tuple[str, str], Any] = {}
        self.label = threading.local()
        event.listen(engine, "before_cursor_execute", self._sent, named=True)

    def _sent(self, **sent: Any) -> None:
        statement: str = sent["statement"]
        if sent["executemany"] or not statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            return
        self.seen.setdefault((getattr(self.label, "name", "?"), statement), sent["parameters"])

    def call(self, name: str, work: Callable[[], T]) -> T:
        self.label.name = name
        try:
            return work()
        finally:
            self.label.name = "?"


@dataclass
class TimedBook:
    """The agreement book as the dialer gets it, each call timed in its thread."""

    book: Agreements
    statements: Statements
    times: dict[str, list[float]] = field(default_factory=dict)

    def _timed(self, name: str, work: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return self.statements.call(name, work)
        finally:
            self.times.setdefault(name, []).append(time.perf_counter() - t0)

    def due_callbacks(self, now: datetime, limit: int = 100) -> list[DueCallback]:
        return self._timed("due_callbacks", lambda: self.book.due_callbacks(now, limit))

    def claim_attempt(self, *args: Any, **kwargs: Any) -> bool:
        return self._timed("claim_attempt", lambda: self.book.claim_attempt(*args, **kwargs))

    def finish_attempt(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        return self._timed("finish_attempt", lambda: self.book.finish_attempt(*args, **kwargs))

    def reschedule(self, agreement_id: int, next_attempt_at: datetime | None) -> bool:
        return self._timed(
            "reschedule", lambda: self.book.reschedule(agreement_id, next_attempt_at)
        )

    def flag_agreement(self, agreement_id: int, reason: str, *, now: datetime) -> Any:
        return self._timed(
            "flag_agreement", lambda: self.book.flag_agreement(agreement_id, reason, now=now)
        )

    def open_attempts(self, pbx: str | None = None) -> list[OpenAttempt]:
        return self._timed("open_attempts", lambda: self.book.open_attempts(pbx))


class Board:
    """The queues room's board (``MembersBoard``), as far as the dialer reads it:
    everybody available, each with a free device."""

    def __init__(self, operators: int, since: datetime) -> None:
        self.states = [
            OperatorState(f"op{k:04d}", "available", frozenset({QUEUE}), since)
            for k in range(1, operators + 1)
        ]

    def operator_states(self, pbx: str) -> list[OperatorState]:
        return list(self.states)

    def free_device(self, pbx: str, username: str) -> str | None:
        """As ``MembersBoard.free_device``: the device to ring (the dialer asks for each
        operator the policy allows, on the reactor)."""
        return f"PJSIP/{username}"


class FakePBX:
    """The AMI client's surface the dialer uses: ``state``, ``originate``, ``send_action``.
    Each Originate is noted with the reactor's clock and answered ``ring`` seconds later
    with the operator's phone having rung out."""

    state = "connected"

    def __init__(self, reactor: Any, ring: float) -> None:
        self._reactor = reactor
        self._ring = ring
        self.sent: list[tuple[int, float]] = []  # (agreement id, reactor seconds)
        self.status_asked = 0

    def originate(
        self, request: OriginateRequest, *, outcome_timeout: float | None = None
    ) -> Deferred[OriginateResult]:
        self.sent.append((int(request.variables["CTI_AGREEMENT_ID"]), self._reactor.seconds()))
        response = Message(
            Event="OriginateResponse",
            ActionID=request.action_id,
            Response="Failure",
            Channel=request.channel,
            Reason=str(NO_ANSWER_REASON),
            Uniqueid=request.channel_id,
        )
        result = OriginateResult(
            request=request,
            success=False,
            reason=NO_ANSWER_REASON,
            channel=request.channel,
            uniqueid=request.channel_id,
            event=response,
        )
        d: Deferred[OriginateResult] = Deferred()
        self._reactor.callLater(self._ring, d.callback, result)
        return d

    def send_action(self, action: str, headers: Any = None, **kwargs: Any) -> Deferred[Any]:
        self.status_asked += 1  # only for stale attempts; there are none in this run
        return defer.fail(RuntimeError(f"{action}: not in this benchmark"))


class TimedDialer(DialerService):
    """The service unchanged, each pass timed (wall clock, on the reactor)."""

    passes: list[tuple[float, float, PassReport]]

    async def _pass(self) -> PassReport:
        t0 = time.perf_counter()
        report = await super()._pass()
        self.passes.append((t0, time.perf_counter() - t0, report))
        return report


# -- before the reactor: the due read on its own, its plans -----------------------------------


def timed(work: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def explain(engine: Engine, statement: str, parameters: Any, analyze: bool = False) -> list[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [str(r[-1]) for r in rows]
        options = "ANALYZE, BUFFERS, TIMING OFF, COSTS OFF" if analyze else "COSTS OFF"
        rows = connection.exec_driver_sql(f"EXPLAIN ({options}) {statement}", parameters)
        found = [str(r[0]).strip() for r in rows]
        connection.rollback()
        return found


#: The tables that are large in this database (the others hold this run's few rows, and
#: PostgreSQL rightly reads a small table whole: their plans say little).
LARGE = ("agreements", "customers", "customer_numbers")


def full_scans(plan: Sequence[str]) -> list[str]:
    """The tables the plan reads whole: a table scan, or a whole index walked (SQLite
    ``SCAN t [USING ... INDEX]``, PostgreSQL ``Seq Scan on t``)."""
    found = []
    for step in plan:
        match = re.match(r"SCAN (\w+)", step) or re.search(r"Seq Scan on (\w+)", step)
        if match:
            found.append(match.group(1))
    return found


def shape(sql: str) -> str:
    """A statement as one line, its column list and the length of its IN lists left out."""
    text = " ".join(sql.split())
    text = re.sub(r"SELECT .*? FROM", "SELECT … FROM", text, count=1)
    return re.sub(r"IN \([^)]*\)", "IN (…)", text)


def the_due_read(name: str, store: Store, now: datetime, full_at: datetime) -> dict[str, Any]:
    book = store.agreements
    assert not book.due_callbacks(now, PASS_LIMIT), "something is due before the run"
    batch = book.due_callbacks(full_at, PASS_LIMIT)
    assert len(batch) == PASS_LIMIT, len(batch)
    empty = timed(lambda: book.due_callbacks(now, PASS_LIMIT), 300)
    full = timed(lambda: book.due_callbacks(full_at, PASS_LIMIT), 50)
    statements = Statements(store.engine)
    statements.call("due_callbacks", lambda: book.due_callbacks(full_at, PASS_LIMIT))
    event.remove(store.engine, "before_cursor_execute", statements._sent)
    compiled = str(due_query(full_at, PASS_LIMIT).compile(dialect=store.engine.dialect))
    print(f"# {name}: due query ({NEXT_ATTEMPT_INDEX}): {' '.join(compiled.split())}")
    plans = []
    for (_, sql), params in statements.seen.items():
        is_due = "next_attempt_at <=" in sql and "FROM agreements" in sql
        plan = explain(store.engine, sql, params, analyze=is_due and "postgres" in name)
        plans.append((is_due, sql, plan))
    return {"empty": empty, "full": full, "plans": plans}


def print_plans(name: str, what: str, plans: Sequence[tuple[str, str, Sequence[str]]]) -> list[str]:
    """One ``#`` line per statement shape and its plan; returns the full scans found."""
    scans: list[str] = []
    shown: set[tuple[str, str]] = set()
    for label, sql, plan in plans:
        head = shape(sql)
        if (label, head) in shown:
            continue
        shown.add((label, head))
        found = full_scans(plan)
        scans += [f"{t} ({label}: {head[:90]})" for t in found]
        large = [t for t in found if t in LARGE]
        mark = f"   <-- READS ALL OF {', '.join(large).upper()}" if large else ""
        print(f"# {name}: {what}{label}: {head[:160]}")
        print(f"#     plan: {' | '.join(plan)}{mark}")
    return scans


# -- the run on the reactor --------------------------------------------------------------------


async def measure(reactor: Any, url: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    store: Store = out.pop("store")
    due_at: dict[int, float] = out["due_at"]
    pool = ThreadPool(minthreads=0, maxthreads=THREADS, name="bench-db")
    pool.start()

    def run(work: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, pool, work)

    statements = Statements(store.engine)
    book = TimedBook(store.agreements, statements)
    pbx = FakePBX(reactor, args.ring)
    board = Board(args.operators, out["seeded_at"])

    def devices(username: str) -> Sequence[str]:  # as DialerService.for_node reads them
        operator = statements.call("devices", lambda: store.accounts.get_operator(username))
        return () if operator is None or not operator.active else operator.devices

    config = DialerConfig(
        enabled=True,
        holidays="",
        pass_seconds=args.pass_seconds,
        hours=DialerHoursConfig(
            mon=ALL_DAY,
            tue=ALL_DAY,
            wed=ALL_DAY,
            thu=ALL_DAY,
            fri=ALL_DAY,
            sat=ALL_DAY,
            sun=ALL_DAY,
        ),
    )
    service = TimedDialer(
        reactor=reactor,
        config=config,
        book=book,
        board=lambda: board,
        clients=cast("dict[str, AMIClient]", {"bench": pbx}),
        bus=MemoryBus(reactor),
        run=run,
        devices=devices,
        node_name="bench",
        region="BE",
    )
    service.passes = []
    lag = benchlib.LoopLag(reactor, 0.01)
    lag.start()
    started = time.perf_counter()
    service.start()
    deadline = max(due_at.values()) + args.ring + 60.0
    while True:
        status = service.status()
        done = sum(status["attempts"].values())
        if (
            len(pbx.sent) >= len(due_at)
            and done >= len(pbx.sent)
            and not status["in_flight"]
            and not status["unfinished"]
        ):
            break
        if reactor.seconds() > deadline:
            print(f"# {args.name}: TIMED OUT; dialer status {str(status)[:600]}")
            break
        await task.deferLater(reactor, 0.1, lambda: None)
    await task.deferLater(reactor, args.tail, lambda: None)  # a few empty passes after
    await service.stop()
    stopped = time.perf_counter()
    lag.stop()
    pool.stop()
    event.remove(store.engine, "before_cursor_execute", statements._sent)
    out.update(
        sent=list(pbx.sent),
        status_asked=pbx.status_asked,
        passes=list(service.passes),
        times=book.times,
        lags=[ms for at, ms in lag.samples if started <= at <= stopped],
        status=service.status(),
        statements=dict(statements.seen),
        seconds=stopped - started,
    )


def one(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    args.name = name
    t0 = time.perf_counter()
    seeded_at = datetime.fromtimestamp(time.time(), UTC).replace(microsecond=0)
    seeded = seed(url, args, seeded_at)
    settled = popdata.settle(url)
    store = open_store(url, pool_size=THREADS)
    with store.engine.connect() as connection:
        counts = connection.execute(
            select(func.count(), func.count(Agreement.next_attempt_at)).where(
                Agreement.status == "open"
            )
        ).one()
    print(
        f"# {name}: {counts[0]} open agreements ({counts[1]} with a next attempt), "
        f"{args.operators} operators, seeded in {time.perf_counter() - t0:.0f} s ({settled})",
        flush=True,
    )

    now = datetime.fromtimestamp(time.time(), UTC)
    read = the_due_read(name, store, now, seeded["futures"][PASS_LIMIT + 10])
    due_plans = [("due_callbacks (before the run)", sql, plan) for _, sql, plan in read["plans"]]
    scans = print_plans(name, "", due_plans)

    log = tmp / "dialer.log"
    configure_logging("info", log.open("w"))  # the daemon's default level, to a file
    gc.collect()
    gc.freeze()  # the seeding's objects are no garbage of the dialer's
    start = time.time() + args.lead
    due_at = arm(store.engine, seeded["due"], start, args.window)
    out: dict[str, Any] = {"store": store, "due_at": due_at, "seeded_at": seeded_at}
    try:
        task.react(lambda reactor: defer.ensureDeferred(measure(reactor, url, args, out)))
    except SystemExit as ended:
        if ended.code:
            raise
    configure_logging("warning", io.StringIO())

    # -- checks ------------------------------------------------------------------------
    sent: list[tuple[int, float]] = out["sent"]
    per = Counter(aid for aid, _ in sent)
    twice = sorted(aid for aid, n in per.items() if n > 1)
    stray = sorted(set(per) - set(due_at))
    never = sorted(set(due_at) - set(per))
    with store.engine.connect() as connection:
        attempts = connection.execute(
            select(
                func.count(),
                func.count(func.distinct(AgreementAttempt.agreement_id)),
                func.count(AgreementAttempt.ended_at),
            )
        ).one()
        outcomes = dict(
            connection.execute(
                select(AgreementAttempt.outcome, func.count()).group_by(AgreementAttempt.outcome)
            ).all()
        )
    errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    exact = not twice and not stray and not never and attempts[0] == attempts[1] == len(due_at)
    print(
        f"# {name}: check: {len(due_at)} due, {len(sent)} Originates for {len(per)} "
        f"agreements; twice {len(twice)}, not due {len(stray)}, never {len(never)}; "
        f"store: {attempts[0]} attempts of {attempts[1]} agreements, {attempts[2]} ended, "
        f"outcomes {outcomes}; dialer errors logged {len(errors)}, Status asked "
        f"{out['status_asked']}: {'exactly one Originate each' if exact else 'FAILED'}"
    )
    if errors:
        print(f"# {name}: first error: {errors[0][:300]}")

    # -- figures -----------------------------------------------------------------------
    latencies = [(at - due_at[aid]) * 1000.0 for aid, at in sent if aid in due_at]
    passes: list[tuple[float, float, PassReport]] = out["passes"]
    empty = [s * 1000.0 for _, s, r in passes if r.due == 0]
    busy = [(s * 1000.0, r) for _, s, r in passes if r.dialled]
    other = [r for _, _, r in passes if r.due and not r.dialled]
    per_claim = [ms / len(r.dialled) for ms, r in busy]
    dialled = [len(r.dialled) for _, r in busy]
    not_dialled = Counter(
        k
        for r in (r for _, _, r in passes)
        for k in ("rescheduled", "waiting", "failed")
        if getattr(r, k)
    )
    times = {k: [s * 1000.0 for s in v] for k, v in out["times"].items()}

    def pcts(samples: Sequence[float], unit: str = "ms") -> str:
        p50, p99, top = benchlib.percentiles(samples, [50, 99, 100])
        return f"p50 {p50:.2f} {unit}, p99 {p99:.2f} {unit}, max {top:.2f} {unit}"

    print(
        f"# {name}: {len(passes)} passes in {out['seconds']:.1f} s (pass_seconds "
        f"{args.pass_seconds:g}): {len(empty)} empty, {len(busy)} dialled "
        f"(agreements per pass: median {statistics.median(dialled) if dialled else 0:g}, "
        f"max {max(dialled, default=0)}), {len(other)} with due ones left alone; "
        f"not dialled: {dict(not_dialled) or 'none'}"
    )
    print(f"# {name}: empty pass {pcts(empty)}")
    print(f"# {name}: pass that dialled {pcts([ms for ms, _ in busy])}")
    for call in ("due_callbacks", "claim_attempt", "finish_attempt"):
        if call in times:
            print(
                f"# {name}:   store {call} (its thread, n={len(times[call])}): {pcts(times[call])}"
            )
    print(f"# {name}: due read before the run, nothing due: {pcts(read['empty'])}")
    print(f"# {name}: due read before the run, {PASS_LIMIT} due: {pcts(read['full'])}")
    print(f"# {name}: due → Originate over {len(latencies)}: {pcts(latencies)}")
    print(
        f"# {name}: loop lag (10 ms timer, dialer start to stop, {len(out['lags'])} ticks): "
        f"{pcts(out['lags'])}"
    )
    run_plans = [
        (label, sql, explain(store.engine, sql, params))
        for (label, sql), params in sorted(out["statements"].items())
    ]
    scans += print_plans(name, "during the run: ", run_plans)
    whole = [s for s in scans if s.startswith("agreements ")]
    print(
        f"# {name}: check: statements that read every agreement: {len(whole)}"
        f"{'' if not whole else '  <-- A FULL SCAN: ' + '; '.join(whole)}"
    )
    others = sorted({s for s in scans if s.split()[0] in LARGE[1:]})
    small = sorted({s.split()[0] for s in scans if s.split()[0] not in LARGE})
    print(
        f"# {name}: check: other large tables ({', '.join(LARGE[1:])}) read whole: "
        f"{'; '.join(others) or 'none'}; small tables read whole: {', '.join(small) or 'none'}"
    )
    store.close()

    benchlib.line(
        f"cti-bridge dialer due→Originate p50 ({name})", statistics.median(latencies), "ms"
    )
    benchlib.line(
        f"cti-bridge dialer due→Originate p99 ({name})",
        benchlib.percentiles(latencies, [99])[0],
        "ms",
    )
    benchlib.line(f"cti-bridge dialer empty pass p50 ({name})", statistics.median(empty), "ms")
    benchlib.line(
        f"cti-bridge dialer pass per agreement dialled p50 ({name})",
        statistics.median(per_claim),
        "ms",
    )
    benchlib.line(
        f"cti-bridge dialer due read, nothing due, p50 ({name})",
        statistics.median(read["empty"]),
        "ms",
    )
    benchlib.line(
        f"cti-bridge dialer due read, {PASS_LIMIT} due, p50 ({name})",
        statistics.median(read["full"]),
        "ms",
    )
    _, lag99, lagmax = benchlib.percentiles(out["lags"], [50, 99, 100])
    benchlib.line(f"cti-bridge reactor loop lag p99 while dialling ({name})", lag99, "ms")
    benchlib.line(f"cti-bridge reactor loop lag max while dialling ({name})", lagmax, "ms")
    if not exact:
        raise SystemExit(
            f"{name}: not exactly one Originate per due agreement "
            f"(twice {twice[:10]}, not due {stray[:10]}, never {never[:10]})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--agreements", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the due ones span")
    parser.add_argument("--lead", type=float, default=8.0, help="empty passes before the first")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds run on after the last")
    parser.add_argument("--pass-seconds", type=float, default=1.0)
    parser.add_argument("--operators", type=int, default=100)
    parser.add_argument("--ring", type=float, default=2.0, help="seconds each Originate rings")
    args = parser.parse_args()
    if not 0 < args.due <= args.agreements // 2:
        parser.error("--due must be between 1 and half of --agreements")
    benchlib.context(
        load=f"{args.agreements} open agreements, {args.due} due over {args.window:g} s, "
        f"{args.operators} operators, Originates ring {args.ring:g} s then fail (no answer)",
        dialer=f"DialerService, pass_seconds {args.pass_seconds:g}, PASS_LIMIT {PASS_LIMIT}, "
        f"store work in a {THREADS}-thread pool (deferToThreadPool), the real reactor",
    )
    # The reactor can only run once per process: one child per database.
    for name in args.database:
        pid = os.fork()
        if pid:
            _, status = os.waitpid(pid, 0)
            if status:
                raise SystemExit(f"{name}: failed")
            continue
        code = 0
        try:
            with tempfile.TemporaryDirectory() as tmp:
                if name == "sqlite":
                    one(name, f"sqlite:///{Path(tmp) / 'dialer.sqlite3'}", args, Path(tmp))
                else:
                    from cti_bridge.testing.store import scratch_postgres

                    with scratch_postgres("cti_bench_dialer") as url:
                        one(name, url, args, Path(tmp))
        except SystemExit as failed:
            print(failed, flush=True)
            code = 1
        os._exit(code)


if __name__ == "__main__":
    main()
