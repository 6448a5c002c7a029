"""The memory twin of ``store/fences.py``: the PBXs' fencing tokens in a dict, checked
under the tables' one lock (as SQLite checks them under its one write lock)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cti_bridge.lease import FenceRefused

from .tables import Tables

__all__ = ["MemoryPbxFences", "check_fence", "check_fences"]


def check_fence(tables: Tables, pbx: str, token: int) -> None:
    """Call with ``tables.lock`` held, in the write it guards."""
    row = tables.fences.get(pbx)
    current = None if row is None else row["token"]
    if current != token:
        raise FenceRefused(pbx, token, current)


def check_fences(tables: Tables, fences: Mapping[str, int]) -> None:
    for pbx in sorted(fences):
        check_fence(tables, pbx, fences[pbx])


class MemoryPbxFences:
    def __init__(self, tables: Tables, *, clock: Callable[[], float] = time.time) -> None:
        self._t = tables
        self._clock = clock

    def raise_fence(self, pbx: str, token: int, owner: str) -> int:
        with self._t.lock:
            row = self._t.fences.get(pbx)
            if row is None or row["token"] < token:
                at = datetime.fromtimestamp(self._clock(), UTC)
                row = {"pbx": pbx, "token": token, "owner": owner[:64], "granted_at": at}
                self._t.fences[pbx] = row
            elif row["token"] == token and row["owner"] != owner[:64]:
                raise FenceRefused(pbx, token, token)
            return int(row["token"])

    def current_fence(self, pbx: str) -> int | None:
        with self._t.lock:
            row = self._t.fences.get(pbx)
            return None if row is None else int(row["token"])
