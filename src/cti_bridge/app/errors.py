"""Turning the exceptions a user can cause into one readable line."""

from __future__ import annotations


def user_message(error: BaseException) -> str | None:
    """The line to print for a failure the user can fix, or None for a real bug."""
    if getattr(error, "user_facing", False):
        return str(error)
    try:
        from sqlalchemy.exc import OperationalError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return None
    if isinstance(error, OperationalError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return f"database unreachable: {reason}"
    return None
