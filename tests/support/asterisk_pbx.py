"""The real Asterisk 22 of the test suite as pytest fixtures, for every test folder.

``tests/conftest.py`` imports the fixtures, so integration and browser tests share one
session PBX. Tests that use ``asterisk`` or ``asterisk_factory`` are marked ``asterisk``
(``mark_asterisk_tests``). They run on every CI run and fail (never skip) when the PBX
cannot be had: a missing root is built by ``scripts/asterisk-root`` on the spot, and a
PBX that does not boot fails the tests with Asterisk's own last words.
``CTI_SKIP_ASTERISK=1`` skips them for quick local runs only; it is ignored when ``CI``
is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from cti_bridge.testing.asterisk import AsteriskError, AsteriskInstance, asterisk_root, root_problem
from tests.support.paths import REPO

__all__ = [
    "asterisk",
    "asterisk_factory",
    "cdr_config_dir",
    "ensure_asterisk_root",
    "mark_asterisk_tests",
    "start_asterisk",
]

#: The fixtures that make a test an ``asterisk`` test.
ASTERISK_FIXTURES = frozenset({"asterisk", "asterisk_factory"})


def _skip_requested() -> bool:
    return os.environ.get("CTI_SKIP_ASTERISK") == "1" and not os.environ.get("CI")


def mark_asterisk_tests(items: Iterable[pytest.Item]) -> None:
    """``pytest_collection_modifyitems``' part: the ``asterisk`` mark (and the local skip).

    Every test on the real Asterisk is in one xdist group: one worker runs them all, one
    after the other, on one PBX (the session fixture), while the others run the rest."""
    for item in items:
        if ASTERISK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.asterisk)
        if item.get_closest_marker("asterisk"):
            item.add_marker(pytest.mark.xdist_group("asterisk"))
        if _skip_requested() and item.get_closest_marker("asterisk"):
            item.add_marker(pytest.mark.skip(reason="CTI_SKIP_ASTERISK=1 (local runs only)"))


def ensure_asterisk_root() -> Path:
    """The cached root, built now if a previous step did not build it; fails with the reason."""
    root = asterisk_root()
    if root_problem(root) is None:
        return root
    if os.geteuid() != 0:
        pytest.fail(f"{root_problem(root)}; building it needs root (chroot, mount)")
    done = subprocess.run(
        [str(REPO / "scripts" / "asterisk-root")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    problem = root_problem(root)
    if done.returncode != 0 or problem:
        pytest.fail(
            f"scripts/asterisk-root failed ({done.returncode}): {problem}\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return root


def cdr_config_dir(folder: Path, db_url: str) -> Path:
    """The project's PBX configuration with Asterisk's CDRs written by ``cdr_pgsql`` into
    the PostgreSQL database ``db_url``, its table made from ``config/asterisk/cdr-table.sql``
    (what docs/asterisk.md tells a PBX administrator to do)."""
    source = REPO / "config" / "asterisk"
    target = folder / "asterisk-cdr"
    shutil.copytree(source, target)
    # unanswered: a call nobody answered (a direct call that rang out) and the members
    # a queue rang in vain have rows too (docs/asterisk.md).
    (target / "cdr.conf").write_text("[general]\nenable = yes\nunanswered = yes\n")
    modules = (target / "modules.conf").read_text()
    if "noload => cdr_pgsql.so\n" not in modules:
        raise AssertionError("modules.conf no longer keeps cdr_pgsql from loading")
    (target / "modules.conf").write_text(modules.replace("noload => cdr_pgsql.so\n", ""))
    url = make_url(db_url)
    settings = (source / "cdr_pgsql.conf.example").read_text()
    for key, value in {
        "hostname": url.host or "127.0.0.1",
        "port": str(url.port or 5432),
        "dbname": url.database or "",
        "user": url.username or "postgres",
    }.items():
        settings = settings.replace(f"{key} = {_example(settings, key)}", f"{key} = {value}")
    (target / "cdr_pgsql.conf").write_text(settings)
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            text = (source / "cdr-table.sql").read_text()
            code = "\n".join(ln for ln in text.splitlines() if not ln.startswith("--"))
            for statement in code.split(";"):
                if statement.strip():
                    connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    return target


def _example(settings: str, key: str) -> str:
    for line in settings.splitlines():
        if line.startswith(f"{key} = "):
            return line.split(" = ", 1)[1]
    raise AssertionError(f"cdr_pgsql.conf.example sets no {key}")


def start_asterisk(**kwargs: object) -> AsteriskInstance:
    """A started instance from the cached root, or a test failure that says why not."""
    root = ensure_asterisk_root()
    instance = AsteriskInstance(root, **kwargs)  # type: ignore[arg-type]
    try:
        instance.start()
    except AsteriskError as e:
        pytest.fail(f"Asterisk did not start: {e}")
    return instance


@pytest.fixture(scope="session")
def asterisk() -> Iterator[AsteriskInstance]:
    """One real Asterisk 22 for the session; tests leave it idle (``wait_idle``) when done."""
    instance = start_asterisk()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def asterisk_factory() -> Iterator[Callable[..., AsteriskInstance]]:
    """Starts extra instances (own ports and directories) for one test, e.g. to restart a
    PBX without disturbing the session's; all are stopped after the test."""
    started: list[AsteriskInstance] = []

    def start(**kwargs: object) -> AsteriskInstance:
        instance = start_asterisk(**kwargs)
        started.append(instance)
        return instance

    try:
        yield start
    finally:
        for instance in reversed(started):
            instance.stop()
