"""Claiming a callback attempt in a test with the Originate's ids filled in."""

from __future__ import annotations

from datetime import datetime

from cti_bridge.dialer.ports import CallbackBook

__all__ = ["claim"]


def claim(
    book: CallbackBook,
    agreement_id: int,
    number: int,
    now: datetime,
    *,
    operator: str | None = None,
    node: str | None = "node-1",
    pbx: str = "main",
    channel_id: str | None = None,
) -> bool:
    """``book.claim_attempt`` with a channel id (default ``cb-<agreement>-<number>``) and
    an ActionID derived from it, as the dialer makes fresh ones per attempt."""
    channel = channel_id or f"cb-{agreement_id}-{number}"
    return book.claim_attempt(
        agreement_id,
        number,
        now=now,
        operator=operator,
        node=node,
        pbx=pbx,
        channel_id=channel,
        action_id=f"action-{channel}",
    )
