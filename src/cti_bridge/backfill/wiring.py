"""``install(node)``: after each resync of a PBX with ``cdr_url``, the calls its CDRs hold
that no link saw are given to the node's consumers (records, missed calls) as ended calls.

Which calls: the CDR rows of calls that started since the PBX's newest record of a call
begun before the resync and not live (less a margin for the writer's lag), and at most
``cdr_lookback_seconds`` before the resync; of those, the calls that had ended before the
resync (what came after, the link saw), are not live, and have no record with a seen
end: none, an open one, or one a resync closed with an estimated end
(``ended_at_approximate``), which the CDR's end then replaces. The record writer merges
them like any call (keyed by PBX + linkedid, under the node's fencing token), so a call
read twice, or seen by another node meanwhile, is still one record.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from twisted.python.failure import Failure

from cti_bridge.calls.events import Call

from .cdr import calls_from_cdr, ended_events
from .reader import MAX_ROWS, CdrReader

if TYPE_CHECKING:
    from collections.abc import Collection

    from cti_bridge.app.config import PbxConfig
    from cti_bridge.app.node import Node

__all__ = ["MARGIN", "Backfill", "install"]

log = structlog.get_logger("cti_bridge.backfill")

#: Before the newest record's start, how far back a resync still looks: calls the last
#: link saw begin whose first write had not landed (the writer's batches, a crash).
MARGIN = 120.0


class Backfill:
    """One PBX's CDR read after its resyncs."""

    def __init__(self, node: Node, pbx: PbxConfig, reader: CdrReader) -> None:
        self._node = node
        self._pbx = pbx
        self._reader = reader
        self._topology = node.pipelines[pbx.name].model.topology
        self.reads = 0
        self.calls = 0
        self.last_error: str | None = None
        self.last_read_at: float | None = None

    def resynced(self, pbx: str, live: Collection[str], at: float) -> None:
        if pbx != self._pbx.name:
            return
        live = frozenset(live)
        work = self._node.run(lambda: self._find(live, at))
        work.addCallbacks(self._found, self._failed)

    def _find(self, live: frozenset[str], at: float) -> list[Call]:
        """In the pool: the CDR rows, less the calls that have a record."""
        calls = self._node.store.calls
        since = at - self._pbx.cdr_lookback_seconds
        # The newest call a link saw before this resync: not one up now (the resync
        # writes those as it finds them), nor one begun after it.
        latest = calls.latest_start(self._pbx.name, before=at, excluding=live)
        if latest is not None:
            since = max(since, latest - MARGIN)
        rows = self._reader.rows_since(since)
        if len(rows) >= MAX_ROWS:
            log.warning(
                "more CDR rows since the last recorded call than one read takes: the"
                " oldest calls of the window are not read",
                pbx=self._pbx.name,
                rows=len(rows),
            )
        candidates = {str(r["linkedid"]) for r in rows if r.get("linkedid")} - live
        known: set[str] = set()
        ordered = sorted(candidates)
        for i in range(0, len(ordered), 500):
            known.update(calls.settled(self._pbx.name, ordered[i : i + 500]))
        return calls_from_cdr(
            self._pbx.name, rows, self._topology, ended_before=at, skip=live | known
        )

    def _found(self, calls: list[Call]) -> None:
        self.reads += 1
        self.calls += len(calls)
        self.last_read_at, self.last_error = time.time(), None
        if not calls:
            return
        log.warning(
            "calls no link saw, recorded from the PBX's CDRs",
            pbx=self._pbx.name,
            calls=len(calls),
            linkedids=[c.linkedid for c in calls[:20]],
        )
        self._node.pipelines[self._pbx.name].deliver(ended_events(calls))

    def _failed(self, failure: Failure) -> None:
        self.last_error = failure.getErrorMessage()
        log.warning(
            "the PBX's CDRs could not be read: calls no link saw have no record",
            pbx=self._pbx.name,
            error=self.last_error,
        )

    def close(self) -> None:
        self._reader.close()

    def status(self) -> dict[str, Any]:
        # No ``status``: a failed read is told here and logged, the database is not down.
        return {
            "reads": self.reads,
            "calls_recorded": self.calls,
            "last_read_at": self.last_read_at,
            "error": self.last_error,
        }


def install(node: Node) -> None:
    if node.config.node.role == "web":
        return  # a web node has no PBX link
    found: dict[str, Backfill] = {}
    for pbx in node.config.pbx:
        if pbx.cdr_url is None or pbx.name not in node.pipelines:
            continue
        backfill = Backfill(node, pbx, CdrReader(pbx.cdr_url, pbx.cdr_table))
        found[pbx.name] = backfill
        node.add_resync_hook(backfill.resynced)
    if not found:
        return
    node.health.add_detail(
        "database", "cdr", lambda: {name: b.status() for name, b in found.items()}
    )

    def close() -> None:
        for backfill in found.values():
            backfill.close()

    node.on_flush(close)
    node.provide("backfill", found)
