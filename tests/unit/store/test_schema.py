"""Migrations from an empty database, the schema check, and the database set-up, on
SQLite and on a scratch PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Integer, String, column, insert, inspect, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError

from cti_bridge.store import SchemaOutOfDate, open_store
from cti_bridge.store.db import create_database_engine, session_factory, writing
from cti_bridge.store.models import Agreement, Base, Operator
from cti_bridge.store.schema import (
    check_current,
    current_revisions,
    downgrade_engine,
    head_revision,
    upgrade,
)
from cti_bridge.store.types import UTCDateTime
from cti_bridge.testing.store import scratch_postgres

EXPECTED_TABLES = {
    "agreement_attempts",
    "agreement_events",
    "agreements",
    "alembic_version",
    "call_note_changes",
    "call_rings",
    "call_segments",
    "call_transfers",
    "calls",
    "contacts",
    "contracts",
    "customer_numbers",
    "customer_products",
    "customers",
    "login_attempts",
    "pbx_fences",
    "operator_devices",
    "operators",
    "products",
    "scripts",
    "sessions",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with scratch_postgres("cti_store_schema") as url:
        yield url


def test_upgrade_from_empty_creates_the_whole_schema(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    try:
        assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
        assert current_revisions(engine) == (head_revision(),)
        check_current(engine)  # does not raise
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []  # models == migrations
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    try:
        assert current_revisions(engine) == (head_revision(),)
    finally:
        engine.dispose()


def test_every_revision_can_be_taken_back(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    try:
        downgrade_engine(engine, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(empty_url)
        assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
    finally:
        engine.dispose()


def test_0004_adds_the_pbx_fences_and_takes_them_back(empty_url: str) -> None:
    upgrade(empty_url, "0003")
    engine = create_database_engine(empty_url)
    try:
        assert "pbx_fences" not in inspect(engine).get_table_names()
        upgrade(empty_url, "0004")
        columns = {c["name"]: c for c in inspect(engine).get_columns("pbx_fences")}
        assert set(columns) == {"pbx", "token", "owner", "granted_at"}
        assert inspect(engine).get_pk_constraint("pbx_fences")["constrained_columns"] == ["pbx"]
        assert not any(c["nullable"] for c in columns.values())
        downgrade_engine(engine, "0003")
        assert "pbx_fences" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_agreements_made_before_the_dialer_fall_due_on_upgrade(empty_url: str) -> None:
    """0002 gives an open callback with a number the next_attempt_at the dialer reads
    (its window's start, else when it was made); nothing else becomes dialable."""
    upgrade(empty_url, "0001")
    made = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    window = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    old = table(
        "agreements",
        column("id", Integer()),
        column("kind", String()),
        column("status", String()),
        column("callback_number", String()),
        column("window_start", UTCDateTime()),
        column("window_end", UTCDateTime()),
        column("created_at", UTCDateTime()),
        column("updated_at", UTCDateTime()),
    )
    rows = [
        (1, "callback", "open", "+3250123456", None),
        (2, "callback", "open", "+3250123456", window),
        (3, "callback", "open", None, None),  # nobody to call
        (4, "callback", "done", "+3250123456", None),
        (5, "visit", "open", None, None),
    ]
    engine = create_database_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(old),
                [
                    {
                        "id": id_,
                        "kind": kind,
                        "status": status,
                        "callback_number": number,
                        "window_start": start,
                        "window_end": None if start is None else start + timedelta(hours=2),
                        "created_at": made,
                        "updated_at": made,
                    }
                    for id_, kind, status, number, start in rows
                ],
            )
        upgrade(empty_url)
        with session_factory(engine)() as session:
            got = session.execute(
                select(Agreement.id, Agreement.due_at, Agreement.next_attempt_at).order_by(
                    Agreement.id
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in got] == [
        (1, made, made),
        (2, window, window),
        (3, None, None),
        (4, None, None),
        (5, None, None),
    ]


def test_0003_adds_the_notes_history_to_calls_made_before(empty_url: str) -> None:
    """A database at 0002 with a call and its notes upgrades to 0003: the call keeps its
    notes, gains an empty history, and a change from then on is kept; 0003 taken back
    leaves the call as it was."""
    upgrade(empty_url, "0002")
    engine = create_database_engine(empty_url)
    made = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO calls (id, pbx, linkedid, direction, started_at, created_at,"
                    " updated_at, caller_withheld, complete, queues, notes) VALUES (1, 'main',"
                    " 'l-1', 'inbound', :at, :at, :at, false, true, '[]', 'before 0003')"
                ),
                {"at": made},
            )
        upgrade(empty_url)
        store = open_store(empty_url)
        try:
            assert store.queries.get_call(1)["notes"] == "before 0003"
            assert store.queries.get_call(1)["notes_history"] == []
            store.queries.patch_call(1, notes="after 0003")
            [change] = store.queries.get_call(1)["notes_history"]
            assert (change["old"], change["new"], change["operator"]) == (
                "before 0003",
                "after 0003",
                None,
            )
        finally:
            store.engine.dispose()
        downgrade_engine(engine, "0002")
        assert "call_note_changes" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT notes FROM calls")).scalar() == "after 0003"
    finally:
        engine.dispose()


def test_an_empty_database_is_refused_with_what_to_do(empty_url: str) -> None:
    engine = create_database_engine(empty_url)
    try:
        with pytest.raises(SchemaOutOfDate, match=r"cti-bridge db upgrade --config FILE"):
            check_current(engine)
    finally:
        engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="has no cti-bridge schema"):
        open_store(empty_url)


def test_an_older_schema_is_refused_with_what_to_do(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(SchemaOutOfDate, match="does not know"):
            check_current(engine)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
        with pytest.raises(SchemaOutOfDate) as raised:
            check_current(engine)
        assert "run `cti-bridge db upgrade --config FILE`" in str(raised.value)
        assert getattr(raised.value, "user_facing", False)  # the CLI prints it as one line
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_passwords_are_hidden_in_messages() -> None:
    with scratch_postgres("cti_store_schema") as url:
        secret_url = make_url(url).set(password="hunter2secret")  # trust auth ignores it
        engine = create_database_engine(secret_url)
        try:
            with pytest.raises(SchemaOutOfDate) as raised:
                check_current(engine)
            assert "hunter2secret" not in str(raised.value)
            assert "***" in str(raised.value)
        finally:
            engine.dispose()


def test_times_are_stored_and_returned_as_aware_utc(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    sessions = session_factory(engine)
    brussels = timezone(timedelta(hours=1))
    try:
        with writing(sessions) as session:
            session.add(
                Operator(
                    username="anna",
                    role="operator",
                    password_hash="x",
                    active=True,
                    created_at=datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=brussels),
                    password_changed_at=datetime(2026, 11, 27, 8, 30, tzinfo=UTC),
                )
            )
        with sessions() as session:
            created = session.scalars(select(Operator.created_at)).one()
            assert created == datetime(2026, 11, 27, 8, 30, 0, 123456, tzinfo=UTC)
            assert created.utcoffset() == timedelta(0)
            later = session.scalars(
                select(Operator.username).where(
                    Operator.created_at > datetime(2026, 11, 27, 9, 29, tzinfo=brussels)
                )
            ).all()
            assert later == ["anna"]
        with pytest.raises(StatementError, match="naive datetime"), writing(sessions) as session:
            session.add(
                Operator(
                    username="bart",
                    role="operator",
                    password_hash="x",
                    created_at=datetime(2026, 11, 27, 9, 30),
                    password_changed_at=datetime(2026, 11, 27, 9, 30),
                )
            )
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(empty_url: str) -> None:
    upgrade(empty_url)
    engine = create_database_engine(empty_url)
    try:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO operator_devices (device, operator_id, bound_at) "
                    "VALUES ('PJSIP/1001', 4242, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.sqlite3'}"
    upgrade(url)
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_postgresql_url_without_driver_means_psycopg() -> None:
    engine = create_database_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


def test_sqlite_writers_of_one_process_queue_and_are_let_in_at_the_commit(
    tmp_path: Path,
) -> None:
    import threading

    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    upgrade(url)
    engine = create_database_engine(url, sqlite_busy_timeout=30.0)
    sessions = session_factory(engine)
    entered = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            entered.set()
            with writing(sessions) as session:
                session.execute(text("INSERT INTO products (code, name) VALUES ('B', 'b')"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            done.set()

    try:
        with writing(sessions) as session:
            session.execute(text("INSERT INTO products (code, name) VALUES ('A', 'a')"))
            raw: Any = session.connection().connection.dbapi_connection
            queue = raw.write_queue
            assert queue.locked() and raw.queued_write
            thread = threading.Thread(target=second_writer)
            thread.start()
            assert entered.wait(10)
            # It waits on the process's queue (30 s of busy timeout), not on SQLite.
            assert not done.wait(0.05)
            # A writer with a short busy timeout gives up after it, as SQLite would.
            with engine.connect() as impatient:
                impatient.exec_driver_sql("PRAGMA busy_timeout = 20")
                impatient.commit()
                with pytest.raises(OperationalError, match="database is locked"):
                    impatient.execution_options(cti_bridge_write=True).begin()
        assert done.wait(10) and not errors  # let in as soon as the first committed
        thread.join()
        with sessions() as session:
            codes = session.scalars(text("SELECT code FROM products ORDER BY code")).all()
        assert codes == ["A", "B"]
        # A failed BEGIN, a rollback or a closed connection gives the queue back too.
        with writing(sessions) as session:
            session.execute(text("INSERT INTO products (code, name) VALUES ('C', 'c')"))
            session.rollback()
        connection = engine.connect().execution_options(cti_bridge_write=True)
        connection.begin()
        connection.close()
        assert not queue.locked()
        with writing(sessions) as session:
            session.execute(text("DELETE FROM products WHERE code = 'B'"))
        assert not queue.locked()
    finally:
        engine.dispose()
