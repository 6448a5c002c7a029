"""The call records' ports, here until their users have rooms of their own (the record
writer, ``records/``; the calls API): what they need of the store, as small interfaces.

``CallStore`` and ``CallQueries`` implement them on SQL, ``memory/calls.py`` on dicts,
and ``tests/unit/store/test_records.py``, ``test_traces.py`` and ``test_queries.py``
(``@every_backend``) are their contract. The pop's port is ``pop/ports.py``, the
console's (search, agreement book) ``console/ports.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cti_bridge.calls.events import DomainEvent

    from .compaction import CallKey
    from .records import NewCall

__all__ = ["CallReads", "CallRecords", "CallViewer"]


@dataclass(frozen=True)
class CallViewer:
    """An operator asking for the call list (docs/security.md, "Which calls an operator
    sees"): they see the calls they are involved in (rang for, answered, talked on: by
    ``operator_id``, or by one of their ``devices`` where the record names no operator),
    and, unless ``own``, every ended call too. Supervisors and admins pass no viewer."""

    operator_id: int
    devices: tuple[str, ...] = ()
    own: bool = False


class CallRecords(Protocol):
    """Writes call records: idempotent merges of the call model's snapshots."""

    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int:
        """Merge ``events`` in order, at once; how many calls changed. ``fences``: per
        PBX the writer's fencing token, checked in the same transaction
        (``lease.FenceRefused``: nothing written)."""
        ...

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[CallKey], bool] | None = None,
        fence: int | None = None,
    ) -> int:
        """Close the open records of ``pbx`` started before ``at`` that are not live."""
        ...

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        """The call's record id, made when missing."""
        ...


class CallReads(Protocol):
    """Call records as the API shows them, and operators' annotations. Errors:
    ``CallNotFound``, ``InvalidAnnotation``."""

    def list_calls(
        self,
        number: str | None = None,
        since: datetime | str | float | None = None,
        limit: int = 50,
        operator_id: int | None = None,
        *,
        until: datetime | str | float | None = None,
        before_id: int | None = None,
        queue: str | None = None,
        customer_id: int | None = None,
        outcome: str | None = None,
        viewer: CallViewer | None = None,
    ) -> list[dict[str, Any]]: ...

    def get_call(self, call_id: int) -> dict[str, Any]: ...

    def find_call(self, pbx: str, linkedid: str) -> dict[str, Any] | None: ...

    def patch_call(
        self,
        call_id: int,
        *,
        notes: str | None = ...,
        category: str | None = ...,
        disposition: str | None = ...,
        by_operator: int | None = None,
    ) -> dict[str, Any]: ...
