"""Screen-pop: who is calling, on the screen of the operator whose phone rings.

``core`` decides (pure), ``context`` reads what the pop shows (database, in the pool),
``service`` runs it on the reactor, ``wiring`` installs it on the node (``install``).
See docs/screen-pop.md.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from cti_bridge.bus import Bus

from .context import ContextRequest, PopContextBuilder, involved_in
from .core import OperatorRef, PopCore, operator_topic
from .service import POP_REPLAY_TOPIC, OperatorDirectory, PopService, Runner, operators_of

__all__ = [
    "POP_REPLAY_TOPIC",
    "ContextRequest",
    "OperatorDirectory",
    "OperatorRef",
    "PopContextBuilder",
    "PopCore",
    "PopService",
    "install",
    "make_pop_service",
    "operator_topic",
    "operators_of",
]


def make_pop_service(
    store: Any,
    reactor: IReactorTime,
    bus: Bus,
    run: Runner,
    *,
    build_in: Runner | None = None,
    default_region: str = "BE",
    zone: str | None = None,
    own_history: bool = False,
) -> PopService:
    """The production wiring: ``store`` is a ``cti_bridge.store.Store``, ``run`` runs
    blocking work in the database pool (e.g. ``Node.run``); ``build_in``, when given,
    runs the context builds and call id fetches instead (the node's pop pool); ``zone``
    is the site's (``[dialer] timezone``), in which the customers' contracts are dated;
    ``own_history``: ``[web] call_history = "own"`` (an operator's pop lists only the
    earlier calls they were involved in)."""
    builder = PopContextBuilder(
        store.pop_read,
        default_region=default_region,
        zone=zone,
        seen_by=(lambda call_id: involved_in(store, call_id)) if own_history else None,
    )
    return PopService(
        reactor,
        bus,
        run,
        builder.build,
        operators_of(store.accounts),
        default_region=default_region,
        call_id=builder.call_id,
        build_in=build_in,
    )


from .wiring import install  # noqa: E402  (wiring uses make_pop_service)
