"""One pop context build, alone: what ``PopContextBuilder.build`` costs per call (issue 5).

    python bench/pop_build.py [--database sqlite postgresql] [--customers 1000000]
        [--history 1000000] [--builds 2000] [--rounds 3] [--reuse DIR]
        [--baseline REV] [--explain] [--profile]

The builder is run in this thread, one build after another, as a pool thread of the
daemon runs it at the first ring of a call: every build is for a new call (its record row
does not exist yet, so the call id is created), the caller is one of ``--customers``
customers 4 times in 5 (bench/popdata.py's data: a number each, every fifth with a
contract), unknown otherwise (half of those from a pool of numbers with earlier calls).
On top of popdata's customers the database holds what a pop reads: ``--history`` earlier
calls (a thousand customers with about a hundred calls each, the rest spread), 20
products owned by every third customer, scripts in two versions, 20 operators, open
agreements for every fiftieth customer and some unknown numbers.

Figures per database and contender: builds per CPU second of this thread
(``time.thread_time``, so a neighbour's load does not count), and the wall time of one
build, p50 and p99 (``perf_counter``; includes the database server's time on PostgreSQL).
Rounds are interleaved between contenders; the best round's builds/s and the median
round's percentiles are printed. ``#`` lines say how many SQL statements a build ran.

``--baseline REV`` adds the builder of ``src/cti_bridge/pop/context.py`` at git revision
REV as a contender (same data, same rounds): before/after in one run on a shared machine.
``--explain`` prints the query plan of every statement a build runs, for a customer with a
long history, a customer without one and an unknown number (SQLite: ``EXPLAIN QUERY
PLAN``; PostgreSQL: ``EXPLAIN ANALYZE``). ``--profile`` prints cProfile's busiest
functions over one round of the current builder. ``--reuse DIR`` keeps the databases
(SQLite file in DIR, PostgreSQL database ``cti_bench_pop_build_<customers>_<history>``)
and reuses them on the next run: loading a million customers takes minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib
import popdata
import psycopg
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url

from cti_bridge.pop import context as current_context
from cti_bridge.store import open_store
from cti_bridge.store.models import (
    Agreement,
    CallRecord,
    Customer,
    CustomerProduct,
    Operator,
    Product,
    Script,
)
from cti_bridge.testing.store import ADMIN_URL, scratch_postgres

NOW = popdata.NOW
PRODUCTS = 20
OPERATORS = 20
HEAVY_EVERY = 1000  # customer ids = 7 mod 1000 call a lot
UNKNOWN_POOL = 50_000


def unknown_number(k: int) -> str:
    return f"+3248{k:07d}"


# -- the data a pop reads, besides popdata's customers ---------------------------------------


def _products() -> Iterator[dict[str, Any]]:
    for p in range(1, PRODUCTS + 1):
        yield {"id": p, "code": f"P-{p:02d}", "name": f"Product {p}"}


def _operators() -> Iterator[dict[str, Any]]:
    for k in range(1, OPERATORS + 1):
        yield {
            "id": 10_000 + k,
            "username": f"hist{k:02d}",
            "role": "operator",
            "password_hash": "x",
            "active": True,
            "created_at": NOW,
            "password_changed_at": NOW,
        }


def _owned(customers: int) -> Iterator[dict[str, Any]]:
    for n in range(3, customers + 1, 3):
        yield {"customer_id": n, "product_id": n % PRODUCTS + 1, "serial": f"SN{n}"}


def _scripts() -> Iterator[dict[str, Any]]:
    body = "1. Check the lights.\n2. Unplug it for 30 seconds.\n" * 8
    for p in range(1, PRODUCTS + 1):
        for name in ("no-power", "no-network", "noise"):
            for version in (1, 2):
                yield {
                    "product_id": p,
                    "name": name,
                    "version": version,
                    "title": f"{name} v{version}",
                    "body": body,
                    "created_at": NOW,
                }


def _agreements(customers: int) -> Iterator[dict[str, Any]]:
    for n in range(50, customers + 1, 50):
        yield {
            "customer_id": n,
            "owner_operator_id": 10_000 + n % OPERATORS + 1,
            "kind": "callback",
            "status": "open",
            "deadline": NOW + timedelta(hours=n % 96 - 24),
            "callback_number": popdata.customer_number(n),
            "notes": "Call back about the invoice",
            "created_at": NOW,
            "updated_at": NOW,
        }
    for k in range(0, UNKNOWN_POOL, 10):
        yield {
            "customer_id": None,
            "owner_operator_id": None,
            "kind": "callback",
            "status": "open",
            "deadline": NOW + timedelta(hours=k % 48),
            "callback_number": unknown_number(k),
            "notes": None,
            "created_at": NOW,
            "updated_at": NOW,
        }


def _history(customers: int, count: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(27)
    heavy = max(1, customers // HEAVY_EVERY)
    for n in range(1, count + 1):
        pick = rng.random()
        customer: int | None
        if pick < 0.10:
            customer = min(rng.randrange(heavy) * HEAVY_EVERY + 7, customers)
        elif pick < 0.95:
            customer = rng.randint(1, customers)
        else:
            customer = None
        number = (
            popdata.customer_number(customer)
            if customer is not None
            else unknown_number(rng.randrange(UNKNOWN_POOL))
        )
        started = NOW - timedelta(seconds=rng.uniform(60, 365 * 86400))
        answered = rng.random() < 0.8
        yield {
            "id": n,
            "pbx": "bench",
            "linkedid": f"h{n}",
            "direction": "inbound",
            "caller_number": number,
            "caller_number_raw": number,
            "caller_name": f"Caller {n}",
            "caller_withheld": False,
            "queue": "support",
            "queues": ["support"],
            "started_at": started,
            "answered_at": started + timedelta(seconds=20) if answered else None,
            "ended_at": started + timedelta(seconds=300),
            "wait_seconds": 20.0 if answered else 42.5,
            "talk_seconds": 280.0 if answered else None,
            "answered_by_device": "PJSIP/1001" if answered else None,
            "answered_by_operator_id": 10_000 + n % OPERATORS + 1 if answered else None,
            "outcome": "answered" if answered else "abandoned",
            "category": "internet" if answered else None,
            "disposition": "solved" if answered else None,
            "notes": ("Router reset, works. " * (n % 7)) or None,
            "complete": True,
            "customer_id": customer,
            "created_at": started,
            "updated_at": started,
        }


def load_extras(url: str, customers: int, history: int) -> None:
    """Bulk-loads everything but customers, numbers and contracts (popdata's)."""
    engine = create_engine(url)
    tables: list[tuple[Any, Callable[[], Iterator[dict[str, Any]]]]] = [
        (Product.__table__, _products),
        (Operator.__table__, _operators),
        (CustomerProduct.__table__, lambda: _owned(customers)),
        (Script.__table__, _scripts),
        (CallRecord.__table__, lambda: _history(customers, history)),
        (Agreement.__table__, lambda: _agreements(customers)),
    ]
    try:
        with engine.begin() as connection:
            for table, rows in tables:
                popdata.insert_batches(connection, table, rows(), 20_000)
            if engine.dialect.name == "postgresql":
                for name in ("products", "operators", "calls"):
                    connection.exec_driver_sql(
                        f"SELECT setval('{name}_id_seq', (SELECT max(id) FROM {name}))"
                    )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


@contextmanager
def database(name: str, args: argparse.Namespace) -> Iterator[str]:
    """A loaded database: kept in ``--reuse`` DIR across runs, else scratch."""
    size = f"{args.customers}_{args.history}"
    if args.reuse is None:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'pop_build.sqlite3'}"
                fill(url, args)
                yield url
            else:
                with scratch_postgres("cti_bench_pop_build") as url:
                    fill(url, args)
                    yield url
        return
    if name == "sqlite":
        path = Path(args.reuse) / f"pop_build_{size}.sqlite3"
        url = f"sqlite:///{path}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fill(url, args)
        yield url
        return
    dbname = f"cti_bench_pop_build_{size}"
    url = make_url(ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": dbname}
            )
            if not exists:
                connection.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
    finally:
        admin.dispose()
    if not exists:
        fill(url, args)
    yield url


def fill(url: str, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    popdata.load_customers(url, args.customers)
    load_extras(url, args.customers, args.history)
    print(f"#   loaded in {time.perf_counter() - t0:.0f} s", flush=True)


# -- the contenders ------------------------------------------------------------------------


def baseline_module(revision: str) -> types.ModuleType:
    """``cti_bridge/pop/context.py`` as it was at ``revision``, importable beside today's
    (with that revision's ``pop/queries.py``, where the pop's read lived before it moved
    to ``store/pop_read.py``)."""

    def source(path: str) -> str | None:
        shown = subprocess.run(
            ["git", "show", f"{revision}:src/cti_bridge/{path}"],
            cwd=benchlib.ROOT,
            check=False,
            capture_output=True,
            text=True,
        )
        return shown.stdout if shown.returncode == 0 else None

    def load(name: str, text: str, label: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__package__ = "cti_bridge.pop"
        sys.modules[name] = module
        exec(compile(text, f"{revision}:{label}", "exec"), module.__dict__)
        return module

    context = source("pop/context.py")
    if context is None:
        raise SystemExit(f"no src/cti_bridge/pop/context.py at {revision}")
    queries = source("pop/queries.py")
    if queries is not None and "from .queries import" in context:
        load("cti_bridge.pop._baseline_queries", queries, "queries.py")
        context = context.replace("from .queries import", "from ._baseline_queries import")
    return load("cti_bridge.pop._baseline_context", context, "context.py")


def builder_of(module: types.ModuleType, store: Any) -> Any:
    """The module's builder on ``store``: today's takes the store's pop read (its port),
    a builder from before the ports took the session factory."""
    if hasattr(module, "PopContextRead"):
        return module.PopContextBuilder(store.pop_read, clock=NOW.timestamp)
    return module.PopContextBuilder(store.sessions, clock=NOW.timestamp)


class Callers:
    """The callers of the builds, as the pop latency benchmark picks them."""

    def __init__(self, customers: int, seed: int) -> None:
        self.customers = customers
        self.rng = random.Random(seed)
        self.run = f"{os.getpid()}.{time.time_ns() % 10**9}"
        self.n = 0

    def request(self, module: types.ModuleType, number: str | None = None) -> Any:
        self.n += 1
        if number is None:
            pick = self.rng.random()
            if pick < 0.8:
                number = popdata.customer_number(self.rng.randint(1, self.customers))
            elif pick < 0.9:
                number = unknown_number(self.rng.randrange(UNKNOWN_POOL))
            else:
                number = f"+3249{self.rng.randint(0, 9_999_999):07d}"
        return module.ContextRequest(
            pbx="bench",
            linkedid=f"pb{self.run}.{self.n}",
            direction="inbound",
            started_at=NOW.timestamp(),
            caller_number_raw=number,
            caller_name=f"Caller {self.n}",
            caller_withheld=False,
            agreement_ref=None,
        )


class StatementCounter:
    """What the database driver ran, counted where every statement passes: sqlite3's trace
    callback (every statement, BEGIN and COMMIT included) and psycopg's ``Cursor.execute``
    (queries and the pool's pings; psycopg sends BEGIN and COMMIT on its own, uncounted).
    Below SQLAlchemy, so statements run on a driver cursor directly count too."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.captured: list[tuple[str, Any, bool]] | None = None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", self._trace)
            engine.dispose()  # connections made from now on are traced
            return
        execute = psycopg.Cursor.execute

        def counted(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            self._seen(str(query), params, isinstance(cursor, psycopg.RawCursor))
            return execute(cursor, query, params, **kwargs)

        psycopg.Cursor.execute = counted  # type: ignore[assignment]  # counting, for the run

    def _trace(self, driver: Any, record: Any) -> None:
        driver.set_trace_callback(lambda sql: self._seen(sql, None, False))

    def _seen(self, sql: str, params: Any, raw: bool) -> None:
        self.count += 1
        if self.captured is not None:
            self.captured.append((sql, params, raw))


def one_round(build: Callable[[Any], Any], requests: list[Any]) -> tuple[float, list[float]]:
    walls = []
    cpu0 = time.thread_time()
    for request in requests:
        t0 = time.perf_counter()
        build(request)
        walls.append((time.perf_counter() - t0) * 1000.0)
    return time.thread_time() - cpu0, walls


def run_database(name: str, url: str, args: argparse.Namespace) -> None:
    store = open_store(url, pool_size=2)
    counter = StatementCounter(store.engine)
    contenders: list[tuple[str, types.ModuleType]] = [("cti-bridge", current_context)]
    if args.baseline:
        contenders.append((f"baseline {args.baseline}", baseline_module(args.baseline)))
    builders = {label: builder_of(module, store) for label, module in contenders}
    callers = Callers(args.customers, seed=5)
    with store.engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(Customer))
    print(f"# {name}: {rows} customers", flush=True)
    # Warm up: connections, statement caches, the number parser's cache.
    for label, module in contenders:
        for _ in range(50):
            builders[label].build(callers.request(module))
    if args.explain:
        explain(store.engine, counter, builders["cti-bridge"], callers, args.customers)
    results: dict[str, dict[str, list[Any]]] = {
        label: {"cpu": [], "walls": [], "statements": []} for label, _ in contenders
    }
    for r in range(args.rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for label, module in order:
            requests = [callers.request(module) for _ in range(args.builds)]
            before = counter.count
            cpu, walls = one_round(builders[label].build, requests)
            results[label]["cpu"].append(cpu)
            results[label]["walls"].append(walls)
            results[label]["statements"].append((counter.count - before) / len(requests))
            p50, p99 = benchlib.percentiles(walls, [50, 99])
            print(
                f"#   round {r + 1} {label}: {len(requests) / cpu:,.0f} builds/s (cpu), "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                flush=True,
            )
    if args.profile:
        profile(builders["cti-bridge"], [callers.request(current_context) for _ in range(1000)])
    for label, _ in contenders:
        got = results[label]
        rates = [args.builds / cpu for cpu in got["cpu"]]
        per_round = [benchlib.percentiles(w, [50, 99]) for w in got["walls"]]
        p50 = statistics.median(p[0] for p in per_round)
        p99 = statistics.median(p[1] for p in per_round)
        print(
            f"# {name} {label}: {statistics.mean(got['statements']):.2f} statements per build; "
            f"builds/s median {statistics.median(rates):,.0f}"
        )
        benchlib.line(f"{label} builds ({name})", max(rates), "builds/s")
        benchlib.line(f"{label} build p50 ({name})", p50, "ms")
        benchlib.line(f"{label} build p99 ({name})", p99, "ms")
    store.close()


def explain(
    engine: Engine, counter: StatementCounter, builder: Any, callers: Callers, customers: int
) -> None:
    cases = {
        "customer with a long history": popdata.customer_number(min(customers, 7)),
        "customer": popdata.customer_number(min(customers, 150)),
        "unknown number with history": unknown_number(10),
    }
    for case, number in cases.items():
        counter.captured = []
        builder.build(callers.request(current_context, number))
        captured, counter.captured = counter.captured, None
        print(f"# --- {case} ({number}): {len(captured)} statements")
        for statement, params, raw in captured:
            print("#   " + " ".join(statement.split())[:400])
            if not statement.lstrip().upper().startswith(("SELECT", "WITH", "(")):
                continue
            with engine.connect() as connection:
                driver: Any = connection.connection.dbapi_connection
                if engine.dialect.name == "sqlite":  # the trace has the values in the text
                    rows = driver.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
                else:
                    cursor = psycopg.RawCursor(driver) if raw else driver.cursor()
                    cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, params)
                    rows = cursor.fetchall()
            for row in rows:
                print("#       " + " | ".join(str(v) for v in row))


def profile(builder: Any, requests: list[Any]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        builder.build(request)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
    for line in out.getvalue().splitlines():
        if line.strip():
            print("# " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--builds", type=int, default=2000, help="builds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reuse", metavar="DIR", help="keep and reuse the databases")
    parser.add_argument("--baseline", metavar="REV", help="also time pop/context.py at REV")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        cwd=benchlib.ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    benchlib.context(
        data=f"{args.customers} customers, {args.history} earlier calls",
        builds=f"{args.builds} per round, {args.rounds} rounds, one thread, new call each",
        tree=f"HEAD {head}" + (" (with uncommitted changes)" if dirty() else ""),
    )
    for name in args.database:
        with database(name, args) as url:
            run_database(name, url, args)


def dirty() -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "src/cti_bridge/pop"],
        check=False,
        cwd=benchlib.ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return bool(status.strip())


if __name__ == "__main__":
    started = datetime.now(UTC)
    main()
    print(f"# took {(datetime.now(UTC) - started).total_seconds():.0f} s")
