"""Delivery from one PBX link to its listeners, each isolated from the others.

magic-wormhole's ``eventual`` habit: a listener that raises is logged with its traceback
and the next one gets the event all the same; nothing a listener does drops the link.
The listeners' promises (``wanted_events``, see :func:`~cti_bridge.ami.listener.wanted_by`)
add up to the filter the parser applies, so events nobody wants are never even built.

Delivery iterates the listeners as they were when the event arrived: one added or
removed by a listener during delivery takes effect from the next event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cti_bridge.ami.listener import ResyncSnapshot, wanted_by
from cti_bridge.ami.parser import EventFilter, Message
from cti_bridge.log import get_logger

__all__ = ["Fanout"]

log = get_logger("cti_bridge.ami.client")


class Fanout:
    """The listeners of one PBX link and the isolated calls into them."""

    def __init__(self, pbx: str, listeners: Iterable[object] = ()) -> None:
        self.pbx = pbx
        self.listeners: list[object] = list(listeners)
        #: ``(listener, its ami_event)``, rebuilt (never changed in place) when listeners
        #: come and go: delivery iterates it as it was when the event arrived.
        self.handlers: tuple[tuple[object, Callable[[Message, float], None]], ...] = ()
        #: What the parser builds for these listeners and the client (``None``: all).
        self.wanted: EventFilter | None = None
        self._changed()

    def add(self, listener: object) -> None:
        self.listeners.append(listener)
        self._changed()

    def remove(self, listener: object) -> None:
        self.listeners.remove(listener)
        self._changed()

    def _changed(self) -> None:
        self.handlers = tuple(
            (listener, handler)
            for listener in self.listeners
            if (handler := getattr(listener, "ami_event", None)) is not None
        )
        self.wanted = wanted_by(self.listeners)

    def event(self, msg: Message, at: float) -> None:
        """One live event to every listener with ``ami_event`` (the hot path)."""
        for listener, handler in self.handlers:
            try:
                handler(msg, at)
            except Exception:
                self._failed(listener, "ami_event")

    def resync(self, snapshot: ResyncSnapshot, at: float) -> None:
        self._call_all("ami_resync", snapshot, at)

    def link_lost(self, reason: str, at: float) -> None:
        self._call_all("ami_link_lost", reason, at)

    def _call_all(self, method: str, *args: Any) -> None:
        for listener in list(self.listeners):
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                self._failed(listener, method)

    def _failed(self, listener: object, method: str) -> None:
        log.exception(
            "ami_listener_failed",
            pbx=self.pbx,
            listener=type(listener).__qualname__,
            method=method,
        )
