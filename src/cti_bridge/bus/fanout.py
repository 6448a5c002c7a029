"""This node's subscribers: the delivery half that the memory and Redis buses share."""

from __future__ import annotations

import json
from collections.abc import Callable

import structlog
from twisted.internet.interfaces import IReactorTime

from .base import Handler, TextHandler

log = structlog.get_logger("cti_bridge.bus")


class _Subscription:
    """One ``subscribe`` call: the same handler subscribed twice is two of these, so each
    unsubscribe function ends its own subscription only, however often it is called."""

    __slots__ = ("active", "handler", "text")

    def __init__(self, handler: Handler | TextHandler, text: bool = False):
        self.handler = handler
        self.text = text
        self.active = True


class LocalFanout:
    """Subscribers of this process, called one reactor turn after a message reaches it.

    Who gets a message is decided when it arrives (``deliver``); a subscription that ends
    before its turn comes, also by an earlier handler of the same message, is skipped.
    """

    def __init__(self, reactor: IReactorTime):
        self._reactor = reactor
        self._subscriptions: dict[str, list[_Subscription]] = {}

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._add(topic, _Subscription(handler))

    def subscribe_text(self, topic: str, handler: TextHandler) -> Callable[[], None]:
        return self._add(topic, _Subscription(handler, text=True))

    def _add(self, topic: str, subscription: _Subscription) -> Callable[[], None]:
        self._subscriptions.setdefault(topic, []).append(subscription)

        def unsubscribe() -> None:
            if not subscription.active:
                return
            subscription.active = False
            subscriptions = self._subscriptions.get(topic, [])
            subscriptions.remove(subscription)
            if not subscriptions:
                self._subscriptions.pop(topic, None)

        return unsubscribe

    def topics(self) -> list[str]:
        return list(self._subscriptions)

    def has_subscribers(self, topic: str) -> bool:
        return topic in self._subscriptions

    def deliver(self, topic: str, payload: str) -> None:
        """Schedule delivery of an encoded message to this node's subscribers of now."""
        subscriptions = self._subscriptions.get(topic)
        if subscriptions:
            self._reactor.callLater(0, self._run, topic, tuple(subscriptions), payload)

    def _run(self, topic: str, subscriptions: tuple[_Subscription, ...], payload: str) -> None:
        for subscription in subscriptions:
            if not subscription.active:
                continue
            try:
                if subscription.text:  # the text as published: a str, no one can change it
                    subscription.handler(payload)  # type: ignore[arg-type]
                else:
                    # Each handler gets its own copy: one cannot change what the next sees.
                    subscription.handler(json.loads(payload))
            except Exception:
                log.exception("bus handler failed", topic=topic, handler=repr(subscription.handler))
