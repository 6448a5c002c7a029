"""``GET /api/kpis`` for one queue and one month over a million stored calls (issue 11).

    python bench/kpis.py [--database postgresql sqlite] [--calls 1000000] [--runs 200]

The database holds ``--calls`` call records spread evenly over 365 days and 10 queues
(about 8,300 calls per queue and month), bulk loaded (PostgreSQL: COPY; SQLite:
executemany in one transaction through SQLAlchemy core), then ANALYZE. The calls look
like a helpdesk's: 80 % answered (wait exponential, mean 25 s; talk 60..600 s), 15 %
abandoned (mean wait 40 s), 5 % failed; 60 % carry one of 12 problem categories; every
tenth answered by one of 20 operators; 2,000 pending callback agreements.

What is timed is what the route's pool job does: ``KpiService.figures(queue, since,
until)`` for one queue and one calendar month (the tally aggregate, the period's and
the 28 days before's category counts, the callbacks), run synchronously in this thread,
``--runs`` times, rotating over the 10 queues and 12 months. Printed: p50 and p99 wall
time per database, and the EXPLAIN (ANALYZE, BUFFERS) of the tally aggregate (SQLite:
EXPLAIN QUERY PLAN). The scratch PostgreSQL database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib
from sqlalchemy import insert, text
from twisted.internet.defer import Deferred, maybeDeferred

from cti_bridge.app.config import KpisConfig
from cti_bridge.queues.kpi_service import KpiService
from cti_bridge.store import Store, open_store
from cti_bridge.store.kpis import tally_statement
from cti_bridge.store.models import CallRecord
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import scratch_postgres

YEAR = datetime(2025, 1, 1, tzinfo=UTC)
QUEUES = [f"queue{i:02d}" for i in range(10)]
CATEGORIES = [f"category{i:02d}" for i in range(12)]
COLUMNS = (
    "pbx",
    "linkedid",
    "direction",
    "caller_withheld",
    "queue",
    "queues",
    "started_at",
    "queue_joined_at",
    "answered_at",
    "ended_at",
    "wait_seconds",
    "talk_seconds",
    "answered_by_operator_id",
    "outcome",
    "complete",
    "category",
    "created_at",
    "updated_at",
)


def calls(count: int, operators: list[int]) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(11)
    step = 365 * 86400 / count
    for i in range(count):
        start = YEAR + timedelta(seconds=i * step)
        queue = QUEUES[i % len(QUEUES)]
        roll = rng.random()
        if roll < 0.80:
            outcome, wait = "answered", rng.expovariate(1 / 25)
            talk: float | None = rng.uniform(60, 600)
        elif roll < 0.95:
            outcome, wait, talk = "abandoned", rng.expovariate(1 / 40), None
        else:
            outcome, wait, talk = "failed", rng.uniform(0, 5), None
        answered = start + timedelta(seconds=wait) if talk is not None else None
        end = (answered or start) + timedelta(seconds=(talk or 0) + (0 if talk else wait))
        operator = operators[i % len(operators)] if talk is not None and i % 10 == 0 else None
        category = CATEGORIES[rng.randrange(len(CATEGORIES))] if rng.random() < 0.6 else None
        yield (
            "main",
            f"{1_700_000_000 + i}.{i}",
            "inbound",
            False,
            queue,
            json.dumps([queue]),
            start,
            start,
            answered,
            end,
            round(wait, 3),
            None if talk is None else round(talk, 3),
            operator,
            outcome,
            True,
            category,
            end,
            end,
        )


def load(store: Store, count: int) -> float:
    began = time.perf_counter()
    operators = [
        store.accounts.add_operator(f"op{i:02d}", role="operator", password="a-bench-password").id
        for i in range(20)
    ]
    for i in range(2000):
        store.agreements.add_agreement(
            "callback",
            deadline=YEAR + timedelta(days=200, hours=i),
            callback_number="+3250123456",
            queue=QUEUES[i % len(QUEUES)],
        )
    engine = store.engine
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY calls ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in calls(count, operators):
                    copy.write_row(row)
            raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as connection:
            batch: list[dict[str, Any]] = []
            for row in calls(count, operators):
                values = dict(zip(COLUMNS, row, strict=True))
                values["queues"] = [values["queue"]]
                batch.append(values)
                if len(batch) == 20_000:
                    connection.execute(insert(CallRecord), batch)
                    batch = []
            if batch:
                connection.execute(insert(CallRecord), batch)
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - began


def month(index: int) -> tuple[datetime, datetime]:
    start = datetime(2025, 1 + index % 12, 1, tzinfo=UTC)
    end = datetime(2025 + (index % 12 == 11), 1 + (index % 12 + 1) % 12, 1, tzinfo=UTC)
    return start, end


def explain(store: Store) -> None:
    since, until = month(5)
    statement = tally_statement(since, until, queue=QUEUES[3])
    compiled = statement.compile(store.engine, compile_kwargs={"literal_binds": True})
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS)"
        if store.engine.dialect.name == "postgresql"
        else "EXPLAIN QUERY PLAN"
    )
    with store.engine.connect() as connection:
        plan = connection.execute(text(f"{prefix} {compiled}")).all()
        print(f"# plan ({store.engine.dialect.name}) of the tally for {QUEUES[3]}, June:")
        for row in plan:
            print(f"#   {row[-1]}")
        if store.engine.dialect.name == "postgresql":
            # The same with the started_at index out of the way (rolled back): the cost
            # of the (queue, started_at) plan, to compare.
            connection.rollback()
            connection.exec_driver_sql("DROP INDEX ix_calls_started_at")
            plan = connection.execute(text(f"{prefix} {compiled}")).all()
            connection.rollback()
            print("# the same without ix_calls_started_at (dropped in a rolled-back transaction):")
            for row in plan:
                print(f"#   {row[-1]}")


def measure(store: Store, runs: int) -> tuple[list[float], dict[str, Any]]:
    service = KpiService(
        lambda: store.kpis,
        maybeDeferred,
        clock=(YEAR + timedelta(days=200)).timestamp,
        zone="Europe/Brussels",
        settings=KpisConfig(),
    )
    samples: list[float] = []
    last: dict[str, Any] = {}
    for i in range(runs):
        since, until = month(i)
        began = time.perf_counter()
        answer: Deferred[dict[str, Any]] = service.figures(QUEUES[i % len(QUEUES)], since, until)
        samples.append(time.perf_counter() - began)
        answer.addCallback(last.update)
    return samples, last


def run(database: str, count: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if database == "postgresql":
            with scratch_postgres("cti_bench_kpis") as url:
                bench(database, url, count, runs)
        else:
            bench(database, f"sqlite:///{Path(folder) / 'kpis.sqlite3'}", count, runs)


def bench(database: str, url: str, count: int, runs: int) -> None:
    upgrade(url)
    store = open_store(url)
    try:
        seconds = load(store, count)
        print(f"# {database}: {count} calls loaded in {seconds:.0f} s", flush=True)
        measure(store, 10)  # warm the cache and the pool
        samples, last = measure(store, runs)
        p50, p99 = benchlib.percentiles(samples, [50, 99])
        print(
            f"# {database}: last answer {last['queue']} {last['since'][:7]}: offered "
            f"{last['offered']}, service level {last['service_level']}, ASA "
            f"{last['asa_seconds']} s, top category {last['top_categories'][0]['category']}"
        )
        benchlib.line(f"{database} kpis one queue one month p50", p50 * 1000, "ms")
        benchlib.line(f"{database} kpis one queue one month p99", p99 * 1000, "ms")
        explain(store)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    benchlib.context(calls=args.calls, runs=args.runs, queues=len(QUEUES))
    for database in args.database:
        run(database, args.calls, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
