"""The pop's read: one SQL statement, built with Core, compiled once per database dialect.

``PopRead`` is the SQL side of the pop's port (``cti_bridge.pop.ports.PopContextRead``;
its memory twin is ``store/memory/``): the raw rows of a pop, and the call's record id,
got or made by the call records' owner (``CallStore.insert_call``) on the same connection.

A pop is read at every first ring, up to 50 times a second, so what costs is not the
database - each lookup is an index probe of microseconds - but everything around it:
a round trip per statement (PostgreSQL), SQLAlchemy's statement cache key and ORM rows
per statement (Python, under the GIL the reactor needs too). So the whole context is one
statement that returns one row, each part of it a JSON value built by the database:

* ``who``: the customer, resolved once - the one asked for (the console's customer
  view), else the callback agreement's, else the number's - and referred to everywhere;
* the call's record id (null while no record exists);
* the customer's card with numbers and products, contracts with their product, open
  agreements (the number's when nobody has it), the callback's agreement, the newest
  version of the scripts of the customer's products, the history, and the customer's
  newest contacts that are not calls (mail, chat, visit: ``contacts``), which the pop
  merges into the history.

The history is the last calls of the customer, or from any of their numbers (calls
recorded before the customer was imported carry no customer id). Each source is read
newest first on its own index - ``calls(customer_id, started_at)``, and
``calls(caller_number, started_at)`` once for the caller's number and once for each of the
customer's first ``HISTORY_NUMBERS`` numbers - and stops after ``limit`` rows, so a
customer with ten thousand calls costs what one with ten does. Numbers beyond those are
read in one sweep (customers with many numbers are rare). The contacts are read the same
way, newest first on ``contacts(customer_id, at)``, at most ``limit`` of them: whatever
mix of calls and contacts is newest, the merged history's ``limit`` items are among them.

The statement is compiled once per dialect and run as its SQL text on the driver's own
cursor (``Compiled.fetch_one``): no cache key walk of a large statement per pop, no
result set-up. Values therefore come back as the driver gives them: JSON as text (SQLite)
or parsed (psycopg), times as ISO text in UTC (SQLite) or with the session's offset
(PostgreSQL); ``pop/context.py`` reads both.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    select,
    union,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import ScalarSelect

from .db import single_statements
from .models import (
    Agreement,
    CallRecord,
    Contact,
    Contract,
    Customer,
    CustomerNumber,
    CustomerProduct,
    Operator,
    Product,
    Script,
)
from .records import CallStore, NewCall

#: A select of any columns (SQLAlchemy 2.1 types a select by its columns).
AnySelect = Select[*tuple[Any, ...]]

__all__ = [
    "HISTORY_NUMBERS",
    "MAX_AGREEMENTS",
    "NOTES_PREVIEW",
    "Compiled",
    "PopRead",
    "pop_read",
]

MAX_AGREEMENTS = 20
#: Notes in the history and agreements are cut here; the full text is one click away.
NOTES_PREVIEW = 1000
#: A customer's numbers whose calls are each read on their own index range.
HISTORY_NUMBERS = 3


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as the database driver takes it, and how to pass it its parameters."""

    #: SQL text in the driver's own placeholders: ``?`` (sqlite3), ``$1`` (psycopg).
    sql: str
    #: The parameter of each placeholder, in order.
    names: tuple[str, ...]
    #: Values compiled into the statement (limits, offsets, literals).
    defaults: Mapping[str, Any]
    #: The statement's result columns.
    columns: tuple[str, ...]
    #: psycopg's ``RawCursor``: ``$n`` placeholders, no client-side parsing of the SQL.
    raw_cursor: bool

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = {**self.defaults, **params}
        return tuple(values[name] for name in self.names)

    def fetch_one(self, connection: Connection, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run on the connection's driver cursor and return the one row by column.

        Not through ``Connection.exec_driver_sql``: its result set-up (and psycopg's
        parsing of a query this long, which it does not cache) cost more than SQLite takes
        to answer. The statement runs alone, in the driver's autocommit (sqlite3 without
        BEGIN; psycopg in the connection's AUTOCOMMIT), so it reads one snapshot."""
        driver: Any = connection.connection.dbapi_connection
        cursor = psycopg.RawCursor(driver) if self.raw_cursor else driver.cursor()
        try:
            cursor.execute(self.sql, self.arguments(params))
            row = cursor.fetchone()
        finally:
            cursor.close()
        assert row is not None  # a SELECT without FROM always has its one row
        return dict(zip(self.columns, row, strict=True))


class PopRead:
    """The pop's rows from SQLite or PostgreSQL: one connection, one read statement, and at
    most one short write (the call's row, when the read found none)."""

    def __init__(self, engine: Engine, calls: CallStore) -> None:
        self._engine = engine
        self._calls = calls  # the owner of the calls table makes the row

    def for_call(
        self,
        call: NewCall,
        *,
        number: str | None,
        agreement_id: int | None,
        limit: int,
        lock_wait: float | None,
    ) -> tuple[dict[str, Any], int | None]:
        """The rows of a ringing call's pop, and its record id (made when missing; None
        when SQLite's write lock was not free within ``lock_wait``). The read comes first,
        outside any write transaction (a read that later writes can fail at once on SQLite
        instead of waiting for the lock)."""
        with single_statements(self._engine) as connection:
            found = self._read(
                connection,
                {
                    "customer_id": None,
                    "agreement_id": agreement_id,
                    "number": number,
                    "pbx": call.pbx,
                    "linkedid": call.linkedid,
                    "limit": limit,
                },
            )
            call_id: int | None = found["call_id"]
            if call_id is None:
                call_id = self._calls.insert_call(connection, call, lock_wait)
        return found, call_id

    def for_customer(self, customer_id: int, *, limit: int) -> dict[str, Any]:
        """The rows of the console's customer view: a pop without a call."""
        with single_statements(self._engine) as connection:
            return self._read(
                connection,
                {
                    "customer_id": customer_id,
                    "agreement_id": None,
                    "number": None,
                    "pbx": "",
                    "linkedid": "",
                    "limit": limit,
                },
            )

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        """The call's record id, made when missing (``CallStore.ensure_call``)."""
        return self._calls.ensure_call(call, lock_wait)

    def _read(self, connection: Connection, params: dict[str, Any]) -> dict[str, Any]:
        return pop_read(connection.dialect).fetch_one(connection, params)


_compiled: dict[str, Compiled] = {}
_compiling = threading.Lock()


def pop_read(dialect: Dialect) -> Compiled:
    """The pop's read statement for ``dialect`` (SQLite or PostgreSQL), compiled once.

    Parameters: ``customer_id`` (the console's view; else null), ``agreement_id`` (a
    callback's agreement, or null), ``number`` (the caller in E.164, or null), ``pbx`` and
    ``linkedid`` (the call), ``limit`` (history length).
    """
    key = f"{dialect.name}/{dialect.driver}"
    found = _compiled.get(key)
    if found is None:
        with _compiling:
            found = _compiled.get(key)
            if found is None:
                found = _compiled[key] = _compile(_read(_Json(dialect.name)), dialect)
    return found


def _compile(statement: AnySelect, dialect: Dialect) -> Compiled:
    if dialect.driver not in ("pysqlite", "psycopg"):
        raise ValueError(f"no way to run the pop's read on {dialect.name}+{dialect.driver}")
    compiled = statement.compile(dialect=dialect)
    sql = str(compiled)
    if "POSTCOMPILE" in sql:  # an expanding IN would need a compile per call
        raise AssertionError("the pop's read must compile to fixed SQL")
    columns = tuple(str(column.key) for column in statement.selected_columns)
    defaults = compiled.construct_params(_check=False)
    if dialect.driver == "pysqlite":  # qmark: one name per "?"
        return Compiled(sql, tuple(compiled.positiontup or ()), defaults, columns, False)
    # psycopg's pyformat, %(name)s, becomes $n: one number per name, used where it occurs.
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r"%\((\w+)\)s", number, sql).replace("%%", "%")
    return Compiled(sql, tuple(names), defaults, columns, True)


class _Json:
    """Rows as JSON, in one dialect's functions."""

    def __init__(self, dialect_name: str) -> None:
        if dialect_name not in ("sqlite", "postgresql"):
            raise ValueError(f"no JSON functions known for {dialect_name!r}")
        postgresql = dialect_name == "postgresql"
        self._object = func.json_build_object if postgresql else func.json_object
        self._aggregate = func.json_agg if postgresql else func.json_group_array

    def _row(self, columns: Iterable[ColumnElement[Any]]) -> ColumnElement[Any]:
        pairs: list[ColumnElement[Any]] = []
        for column in columns:
            pairs += [literal_column(f"'{column.key}'"), column]
        return self._object(*pairs)

    def one(self, query: AnySelect) -> ScalarSelect[Any]:
        """The first row of ``query`` as an object keyed by its column names, or null."""
        rows = query.subquery()
        return select(self._row(rows.c)).scalar_subquery()

    def all(self, query: AnySelect) -> ScalarSelect[Any]:
        """Every row of ``query`` as an array of objects (order: see the caller; PostgreSQL
        gives null for no rows)."""
        rows = query.subquery()
        return select(self._aggregate(self._row(rows.c))).scalar_subquery()


def _read(json: _Json) -> AnySelect:
    number = bindparam("number", type_=String)
    limit = bindparam("limit", type_=Integer)
    this_call = and_(
        CallRecord.pbx == bindparam("pbx", type_=String),
        CallRecord.linkedid == bindparam("linkedid", type_=String),
    )
    by_agreement = select(Agreement.customer_id).where(
        Agreement.id == bindparam("agreement_id", type_=Integer)
    )
    by_number = select(CustomerNumber.customer_id).where(CustomerNumber.number == number)
    who = select(
        func.coalesce(
            bindparam("customer_id", type_=Integer),
            by_agreement.scalar_subquery(),
            by_number.scalar_subquery(),
        ).label("customer_id")
    ).cte("who")
    customer_id = select(who.c.customer_id).scalar_subquery()

    customer = select(
        Customer.id,
        Customer.external_ref,
        Customer.name,
        Customer.company,
        Customer.language,
        Customer.knowledge_level,
        Customer.tier,
        Customer.timezone,
        Customer.notes,
    ).where(Customer.id == customer_id)
    numbers = select(CustomerNumber.id, CustomerNumber.number).where(
        CustomerNumber.customer_id == customer_id
    )
    products = (
        select(
            CustomerProduct.id.label("owned"),
            Product.id,
            Product.code,
            Product.name,
            CustomerProduct.serial,
        )
        .join_from(CustomerProduct, Product, Product.id == CustomerProduct.product_id)
        .where(CustomerProduct.customer_id == customer_id)
    )
    contracts = (
        select(
            Contract.id,
            Contract.reference,
            Contract.product_id,
            Product.code.label("product_code"),
            Product.name.label("product_name"),
            Contract.covered,
            Contract.service_level_hours,
            Contract.valid_from,
            Contract.valid_until,
            Contract.notes,
        )
        .outerjoin(Product, Product.id == Contract.product_id)
        .where(Contract.customer_id == customer_id)
    )

    def newest_calls(which: ColumnElement[bool]) -> AnySelect:
        # Ended calls only: a live call (a second line of the customer, ringing a
        # colleague) is nobody's history yet, and not every operator's to see.
        ids = (
            select(CallRecord.id)
            .where(which, not_(this_call), CallRecord.ended_at.is_not(None))
            .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
            .limit(limit)
            .subquery()
        )
        return select(ids.c.id)

    their_numbers = (
        select(CustomerNumber.number)
        .where(CustomerNumber.customer_id == customer_id)
        .order_by(CustomerNumber.id)
    )
    sources = [
        newest_calls(CallRecord.customer_id == customer_id),
        newest_calls(CallRecord.caller_number == number),
        *(
            newest_calls(CallRecord.caller_number == nth.scalar_subquery())
            for nth in (their_numbers.limit(1).offset(k) for k in range(HISTORY_NUMBERS))
        ),
        newest_calls(CallRecord.caller_number.in_(their_numbers.offset(HISTORY_NUMBERS))),
    ]
    history = (
        select(
            CallRecord.id,
            CallRecord.started_at,
            CallRecord.direction,
            CallRecord.caller_number,
            CallRecord.queue,
            func.coalesce(Operator.username, CallRecord.answered_by_device).label("answered_by"),
            CallRecord.outcome,
            CallRecord.wait_seconds,
            CallRecord.talk_seconds,
            CallRecord.category,
            CallRecord.disposition,
            func.substr(CallRecord.notes, 1, NOTES_PREVIEW + 1).label("notes"),
        )
        .outerjoin(Operator, Operator.id == CallRecord.answered_by_operator_id)
        .where(CallRecord.id.in_(union(*sources)))
        .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
        .limit(limit)
    )

    contacts = (
        select(
            Contact.id,
            Contact.customer_id,
            Contact.at,
            Contact.channel,
            Contact.subject,
            Contact.category,
            Contact.disposition,
            Operator.username.label("operator"),
            func.substr(Contact.notes, 1, NOTES_PREVIEW + 1).label("notes"),
        )
        .outerjoin(Operator, Operator.id == Contact.operator_id)
        .where(Contact.customer_id == customer_id)
        .order_by(Contact.at.desc(), Contact.id.desc())
        .limit(limit)
    )

    def agreement_rows(which: ColumnElement[bool]) -> AnySelect:
        return (
            select(
                Agreement.id,
                Agreement.kind,
                Agreement.status,
                Agreement.deadline,
                Operator.username.label("owner"),
                Agreement.call_id,
                Agreement.callback_number,
                Agreement.window_start,
                Agreement.window_end,
                func.substr(Agreement.notes, 1, NOTES_PREVIEW + 1).label("notes"),
                Agreement.created_at,
            )
            .outerjoin(Operator, Operator.id == Agreement.owner_operator_id)
            .where(which)
        )

    # An unknown caller's earlier promises are found by the number to call back.
    open_ones = union(
        select(Agreement.id).where(
            Agreement.customer_id == customer_id, Agreement.status == "open"
        ),
        select(Agreement.id).where(
            Agreement.callback_number == number,
            Agreement.status == "open",
            customer_id.is_(None),
        ),
    )
    agreements = (
        agreement_rows(Agreement.id.in_(open_ones))
        .order_by(Agreement.deadline.is_(None), Agreement.deadline, Agreement.id)
        .limit(MAX_AGREEMENTS)
    )
    callback = agreement_rows(Agreement.id == bindparam("agreement_id", type_=Integer))

    their_products: CompoundSelect[Any] = union(
        select(CustomerProduct.product_id).where(CustomerProduct.customer_id == customer_id),
        select(Contract.product_id).where(Contract.customer_id == customer_id),
    )
    newer = aliased(Script, name="newer")
    scripts = (
        select(
            Script.product_id,
            Product.code.label("product_code"),
            Product.name.label("product_name"),
            Script.name,
            Script.version,
            Script.title,
            Script.body,
            Script.created_at,
        )
        .join(Product, Product.id == Script.product_id)
        .where(
            Script.product_id.in_(their_products),
            # The newest version only: no version above it (the unique index answers).
            ~exists().where(
                newer.product_id == Script.product_id,
                newer.name == Script.name,
                newer.version > Script.version,
            ),
        )
    )

    return select(
        select(CallRecord.id).where(this_call).scalar_subquery().label("call_id"),
        json.one(customer).label("customer"),
        json.all(numbers).label("numbers"),
        json.all(products).label("products"),
        json.all(contracts).label("contracts"),
        json.all(history).label("history"),
        json.all(contacts).label("contacts"),
        json.all(agreements).label("agreements"),
        json.one(callback).label("agreement"),
        json.all(scripts).label("scripts"),
    )
