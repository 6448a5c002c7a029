"""Creating and checking the schema with Alembic, without an ``alembic.ini``.

The daemon never migrates on its own: a schema change is an operator's decision
(backups, several nodes). It checks on start-up and refuses to run against a schema
that is not the one it was built for, with a message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy.engine import URL, Engine

from .db import create_database_engine, safe_url

__all__ = [
    "SchemaOutOfDate",
    "alembic_config",
    "check_current",
    "head_revision",
    "new_revision",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_HINT = "run `cti-bridge db upgrade --config FILE`"


class SchemaOutOfDate(Exception):
    """The database's schema is not the one this cti-bridge needs."""

    user_facing = True


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def upgrade(url: str | URL, revision: str = "head") -> None:
    """``alembic upgrade head`` for a sqlite:/// or postgresql+psycopg:// URL."""
    engine = create_database_engine(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade_engine(engine: Engine, revision: str) -> None:
    """For tests and emergencies: every revision can be taken back."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def new_revision(url: str | URL, message: str) -> None:
    """For developers: upgrade ``url`` to head, then autogenerate the next revision from
    the difference between it and ``models.py``. Review the file it writes."""
    upgrade(url)
    engine = create_database_engine(url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True)
    finally:
        engine.dispose()


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def check_current(engine: Engine) -> None:
    """Raise ``SchemaOutOfDate`` unless the database is at this code's head revision."""
    where = safe_url(engine.url)
    head = head_revision()
    current = current_revisions(engine)
    if current == (head,):
        return
    if not current:
        raise SchemaOutOfDate(f"the database {where} has no cti-bridge schema: {UPGRADE_HINT}")
    scripts = ScriptDirectory.from_config(alembic_config())
    unknown = [rev for rev in current if not _known(scripts, rev)]
    if unknown:
        raise SchemaOutOfDate(
            f"the database {where} is at schema revision {', '.join(unknown)}, which this "
            f"cti-bridge does not know (a newer version migrated it); run the newer version"
        )
    raise SchemaOutOfDate(
        f"the database {where} is at schema revision {', '.join(current)}, "
        f"this cti-bridge needs {head}: {UPGRADE_HINT}"
    )


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False
