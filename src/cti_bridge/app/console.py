"""Store reads and request checks behind the operator console's search screens.

Blocking (the backend runs them in its thread pool). The customer view is the pop's own
context builder (``pop/context.py``), so a customer found by search reads exactly like a
pop and the page draws both with one renderer. The search itself is the store's
(``store/search.py``, the console's port in ``console/ports.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cti_bridge.pop import PopContextBuilder
from cti_bridge.store import Store
from cti_bridge.web.api import BadRequest

__all__ = ["agreement_request", "console_customer_context", "console_search_customers"]

MAX_NOTES = 20_000


def console_search_customers(store: Store, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose name, company or reference contains ``text``, or with a number that
    is ``text`` (in any format) or contains its digits; best matches first."""
    return store.search.search_customers(text, limit)


def console_customer_context(store: Store, customer_id: int) -> dict[str, Any] | None:
    """Everything the console shows about one customer: exactly what a pop shows."""
    return PopContextBuilder(store.pop_read).customer_context(customer_id)


# -- POST /api/agreements ---------------------------------------------------------------


def _when(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date and time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date and time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _id(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive whole number or null")
    return value


def _text(body: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string or null")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


AGREEMENT_FIELDS = frozenset(
    {"kind", "deadline", "call_id", "customer_id", "callback_number", "window_start",
     "window_end", "notes"}
)  # fmt: skip


def agreement_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The checked fields of a POST /api/agreements body (BadRequest names the field)."""
    unknown = sorted(set(body) - AGREEMENT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("kind is required")
    start, end = _when(body, "window_start"), _when(body, "window_end")
    if (start is None) != (end is None):
        raise BadRequest("window_start and window_end go together")
    return {
        "kind": kind,
        "deadline": _when(body, "deadline"),
        "call_id": _id(body, "call_id"),
        "customer_id": _id(body, "customer_id"),
        "callback_number": _text(body, "callback_number", 64),
        "window": None if start is None or end is None else (start, end),
        "notes": _text(body, "notes", MAX_NOTES),
    }
