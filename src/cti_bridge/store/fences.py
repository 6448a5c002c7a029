"""The PBXs' fencing tokens: the database's word on who owns each PBX (``pbx_fences``).

A node granted a PBX's lease (``lease.py``) raises the PBX's row to its token before it
acts (``raise_fence``; never lowered, so a late raise by a stale holder changes nothing).
Every write that matters - a call record (``CallStore.apply``, ``close_stale``), a
callback attempt's claim and its outcome (``Agreements.claim_attempt``,
``finish_attempt``) - calls :func:`check_fence` first, in its own transaction: the token
it was handed must still be the row's, or it is refused with ``lease.FenceRefused`` and
nothing of it is written.

Why in the transaction, and not before it: a holder paused between its check and its
write would write after all. On PostgreSQL the check reads the row ``FOR SHARE``: writes
of one owner run side by side, a takeover's raise (an ``UPDATE`` of the row) waits for
those under way to commit, and every write that starts after it reads the new token and
is refused. SQLite has one writer at a time (``BEGIN IMMEDIATE``), so there the order is
the write lock's. A write without a token (no fencing in use: one node, the in-process
bus) checks nothing and costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from sqlalchemy import Connection, Executable, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from cti_bridge.lease import FenceRefused

from .db import StoreService, writing
from .models import PbxFence

__all__ = ["FenceRefused", "PbxFences", "check_fence", "check_fences"]

FENCES = cast(Table, PbxFence.__table__)

_CURRENT = select(FENCES.c.token).where(FENCES.c.pbx == bindparam("pbx"))
_SHARED = _CURRENT.with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite: no clause
_HOLDER = select(FENCES.c.token, FENCES.c.owner).where(FENCES.c.pbx == bindparam("pbx"))


def _raise(statement: postgresql.Insert | sqlite.Insert) -> Executable:
    """Insert the row, or raise its token: never lower it."""
    return statement.on_conflict_do_update(
        index_elements=["pbx"],
        set_={
            "token": statement.excluded.token,
            "owner": statement.excluded.owner,
            "granted_at": statement.excluded.granted_at,
        },
        where=FENCES.c.token < statement.excluded.token,
    )


_RAISE = {
    "postgresql": _raise(postgresql.insert(FENCES)),
    "sqlite": _raise(sqlite.insert(FENCES)),
}


def check_fence(connection: Connection, pbx: str, token: int) -> None:
    """Refuse (``FenceRefused``) unless ``token`` is ``pbx``'s current fencing token;
    the row stays locked ``FOR SHARE`` until the caller's transaction ends."""
    current = connection.execute(_SHARED, {"pbx": pbx}).scalar()
    if current != token:
        raise FenceRefused(pbx, token, None if current is None else int(current))


def check_fences(connection: Connection, fences: Mapping[str, int]) -> None:
    """Every PBX's token, in name order (two writers never lock in opposite orders)."""
    for pbx in sorted(fences):
        check_fence(connection, pbx, fences[pbx])


class PbxFences(StoreService):
    """The one owner of ``pbx_fences``. Synchronous: run it in a pool thread."""

    def raise_fence(self, pbx: str, token: int, owner: str) -> int:
        """Make ``token`` ``pbx``'s fencing token unless a greater one is there already;
        the token the row holds afterwards (``token`` itself when this node is the
        owner now). Waits, on PostgreSQL, for writes under way with the old token.

        The same token raised by another ``owner`` (the lease's holder) is refused
        (``FenceRefused``): a bus that lost its counters hands out tokens again, and two
        holders must never write with one token."""
        with writing(self._sessions) as session:
            connection = session.connection()
            holder = owner[:64]
            values = {"pbx": pbx, "token": token, "owner": holder, "granted_at": self._now()}
            connection.execute(_RAISE[connection.dialect.name], values)
            row = connection.execute(_HOLDER, {"pbx": pbx}).one()
            if row.token == token and row.owner != holder:
                raise FenceRefused(pbx, token, int(row.token))
            return int(row.token)

    def current_fence(self, pbx: str) -> int | None:
        """``pbx``'s fencing token now (``None``: never granted)."""
        with self._sessions() as session:
            current = session.execute(_CURRENT, {"pbx": pbx}).scalar()
            return None if current is None else int(current)
