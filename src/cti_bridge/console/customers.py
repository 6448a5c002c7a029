"""Store reads behind the operator console's search screens.

Blocking (the console's service runs them in the node's pool). The customer view is the
pop's own context builder (``pop/context.py``), so a customer found by search reads
exactly like a pop and the page draws both with one renderer. The search itself is the
store's (``store/search.py``; the console's port is ``console/ports.py``).
"""

from __future__ import annotations

from typing import Any

from cti_bridge.app.config import CallHistory
from cti_bridge.pop.context import PopContextBuilder
from cti_bridge.store import CallNotFound, Store
from cti_bridge.web.auth import Principal

from .rules import may_see_call

__all__ = ["console_customer_context", "console_search_customers"]


def console_search_customers(store: Store, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose name, company or reference contains ``text``, or with a number that
    is ``text`` (in any format) or contains its digits; best matches first."""
    return store.search.search_customers(text, limit)


def console_customer_context(
    store: Store,
    customer_id: int,
    zone: str | None = None,
    *,
    principal: Principal | None = None,
    history: CallHistory = "shared",
) -> dict[str, Any] | None:
    """Everything the console shows about one customer: exactly what a pop shows (its
    contracts judged on the site's day in ``zone``), its history's calls those the
    ``principal`` may read (``may_see_call``: with ``history = "own"`` an operator's own)."""
    found = PopContextBuilder(store.pop_read, zone=zone).customer_context(customer_id)
    if found is None or principal is None or principal.sees_everything or history != "own":
        return found
    kept = []
    for item in found["history"]:
        if item["type"] == "call":
            try:
                call = store.queries.get_call(item["id"])
            except CallNotFound:
                continue
            if not may_see_call(principal, call, history):
                continue
        kept.append(item)
    return {**found, "history": kept}
