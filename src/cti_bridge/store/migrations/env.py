"""Alembic environment, driven from code (``cti_bridge.store.schema``), not alembic.ini.

``schema.upgrade`` hands in an open connection (so SQLite gets the same WAL and
transaction setup as the daemon); the ``alembic`` command line works too when a URL
is given with ``-x url=...`` for writing new revisions during development.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cti_bridge.store.db import create_database_engine
from cti_bridge.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database: pass -x url=... or use cti_bridge.store.schema")
    engine = create_database_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
