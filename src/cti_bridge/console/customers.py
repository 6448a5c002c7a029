"""Store reads behind the operator console's search screens.

Blocking (the console's service runs them in the node's pool). The customer view is the
pop's own context builder (``pop/context.py``), so a customer found by search reads
exactly like a pop and the page draws both with one renderer. The search itself is the
store's (``store/search.py``; the console's port is ``console/ports.py``).
"""

from __future__ import annotations

from typing import Any

from cti_bridge.pop.context import PopContextBuilder
from cti_bridge.store import Store

__all__ = ["console_customer_context", "console_search_customers"]


def console_search_customers(store: Store, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose name, company or reference contains ``text``, or with a number that
    is ``text`` (in any format) or contains its digits; best matches first."""
    return store.search.search_customers(text, limit)


def console_customer_context(
    store: Store, customer_id: int, zone: str | None = None
) -> dict[str, Any] | None:
    """Everything the console shows about one customer: exactly what a pop shows (its
    contracts judged on the site's day in ``zone``)."""
    return PopContextBuilder(store.pop_read, zone=zone).customer_context(customer_id)
