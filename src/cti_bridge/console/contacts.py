"""``POST /api/contacts``: what the body of a contact that is not a call may hold.

Pure checks of the JSON's shape (no store, no Twisted); a refusal is ``BadRequest`` (400)
naming the field. The values themselves - the channel, the disposition, the lengths, the
time - are the store's to check (``store/contacts.checked_contact``, the same for the SQL
store and its twin), and ``console/service.py`` turns its ``InvalidRecord`` into a 400
with the store's words, which name the field too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cti_bridge.web.http import BadRequest

from .rules import _when

__all__ = ["CONTACT_FIELDS", "MAX_ID", "contact_request"]

CONTACT_FIELDS = frozenset(
    {"customer_id", "channel", "at", "subject", "notes", "category", "disposition"}
)
_TEXTS = ("subject", "notes", "category", "disposition")
#: The largest id a row can have (PostgreSQL's ``integer``); beyond it no customer exists.
MAX_ID = 2**31 - 1


def contact_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a POST /api/contacts body: ``customer_id`` and ``channel`` required,
    ``at`` an ISO 8601 time (without a zone: UTC) or absent for now, the texts strings or
    null."""
    unknown = sorted(set(body) - CONTACT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    customer_id = body.get("customer_id")
    if customer_id is None:
        raise BadRequest("customer_id is required")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
        raise BadRequest("customer_id must be a positive whole number")
    if customer_id > MAX_ID:
        raise BadRequest("customer_id: no such customer")
    channel = body.get("channel")
    if not isinstance(channel, str) or not channel:
        raise BadRequest("channel is required")
    request: dict[str, Any] = {
        "customer_id": customer_id,
        "channel": channel,
        "at": _when(body, "at"),
    }
    for name in _TEXTS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string or null")
        request[name] = value or None
    return request
