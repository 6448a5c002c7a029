"""The missed-calls room: a queue call abandoned after a long wait becomes a callback.

``rules`` (pure) reads each ended call: a caller who gave up in a queue after the
queue's threshold is owed a call back, an answered inbound call from that number keeps
the promise. ``service`` (``MissedCallService``) queues what that means for the store
and drains it, in order, in the node's thread pool; ``ports`` says what it needs from
the store (``MissedCallBook``, ``NumberOwners``); ``wiring`` puts it on the node's call
events when ``[missed_calls]`` is on for some queue. See docs/missed-calls.md.
"""

from .wiring import install

__all__ = ["install"]
