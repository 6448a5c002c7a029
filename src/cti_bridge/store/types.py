"""Time as the store keeps it: timezone-aware UTC in, timezone-aware UTC out.

SQLite has no timestamp type and PostgreSQL's ``timestamptz`` answers in the session's
time zone; this column type hides both, so every datetime the store hands out is aware
and in UTC, and a naive datetime (whose zone nobody knows) is refused at the door.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = ["UTCDateTime", "from_posix", "iso_utc", "parse_time"]


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; naive UTC text on SQLite (sorts correctly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def from_posix(seconds: float | None) -> datetime | None:
    """The call model speaks POSIX seconds; the store speaks aware datetimes."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` and millisecond precision, as the API promises."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_time(value: datetime | str | float | None) -> datetime | None:
    """Accept what an API caller may pass for a time filter; naive means UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time, not a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
