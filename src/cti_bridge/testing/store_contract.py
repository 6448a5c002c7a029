"""Which backends a store test runs on (imported by test modules; not a pytest plugin, so
importing it does not stop pytest from rewriting the fixtures' asserts).

``@every_backend`` marks a contract test: one that goes through the store's interfaces
only, and so runs on the memory twin as well as on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

__all__ = ["BACKENDS", "EVERY_BACKEND", "every_backend"]

#: What the ``store`` fixture runs on by default.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
#: The memory twin and both databases: what a contract test runs on.
EVERY_BACKEND = ["memory", *BACKENDS]
every_backend = pytest.mark.parametrize("store_db", EVERY_BACKEND, indirect=True)
