"""pytest fixtures: one store test suite, run on SQLite and on PostgreSQL (and the twin).

Use from a test module with ``pytest_plugins = ["cti_bridge.testing.store_fixtures"]``;
then a test that takes ``store`` runs twice, on a fresh SQLite file and on a scratch
PostgreSQL database (marked ``postgres``; it fails, not skips, when the server is
missing). Each session creates its own PostgreSQL database and drops it at the end.

A contract test, one that only goes through the store's interfaces, is marked
``@every_backend`` (``cti_bridge.testing.store_contract``): it then runs a third time,
on the memory twin (``cti_bridge.store.memory``; ``store`` is a ``MemoryStore``,
``store_url`` is ``"memory:"``). That is how the twin is proven to answer like the databases.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from cti_bridge.store import Store, open_store
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import FakeTime, cheap_hasher, empty_tables, scratch_postgres
from cti_bridge.testing.store_contract import BACKENDS

__all__ = ["fake_time", "store", "store_db", "store_url"]


@pytest.fixture(scope="session", params=BACKENDS)
def store_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(backend, url of a database at the head revision) for the whole session."""
    backend: str = request.param
    if backend == "memory":
        yield backend, "memory:"
        return
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("store") / "template.sqlite3"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield backend, url
        return
    with scratch_postgres() as url:
        upgrade(url)
        yield backend, url


@pytest.fixture
def store_url(store_db: tuple[str, str], tmp_path: Path) -> str:
    """A database at the head revision with no rows, for one test."""
    backend, template = store_db
    if backend == "memory":
        return template
    if backend == "sqlite":
        source = Path(make_url(template).database or "")
        target = tmp_path / "store.sqlite3"
        shutil.copyfile(source, target)
        return f"sqlite:///{target}"
    empty_tables(template)
    return template


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def store(store_url: str, fake_time: FakeTime) -> Iterator[Store | MemoryStore]:
    options: dict[str, Any] = {"hasher": cheap_hasher()}
    if store_url == "memory:":
        yield open_memory_store(clock=fake_time, accounts=options)
        return
    opened = open_store(store_url, clock=fake_time, accounts=options)
    try:
        yield opened
    finally:
        opened.close()
