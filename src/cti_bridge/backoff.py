"""How long to wait before trying again: one policy for every retry loop (pure).

Exponential, capped, and jittered *below* the cap (Twisted's ``backoffPolicy`` adds its
jitter on top, so its delays overshoot the cap): many nodes that lost the same PBX or
database at the same moment do not come back in step, and none waits longer than the
cap. The AMI link's reconnect, the record writer's retry after a database failure and
the callback dialer's retry timing all use it; time and randomness are the caller's
(the random source is injected, so tests know every delay).

The browser's WebSocket (``web/static/js/socket.js``) has its own, in JavaScript.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Backoff", "RandomSource"]


class RandomSource(Protocol):
    """What the policy needs of ``random.Random``: a draw in ``[0, 1)``."""

    def random(self) -> float: ...


@dataclass
class Backoff:
    """Delays between attempts: exponential, capped, jittered below the cap.

    ``delay(n)`` after ``n`` failures in a row is ``min(cap, initial * factor ** (n-1))``
    reduced by a random share of up to ``jitter``.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    #: Each delay is reduced by up to this share, so many nodes do not retry in step.
    jitter: float = 0.25
    #: After a refusal that a quick retry cannot cure (a refused AMI login: retrying
    #: quickly only floods the PBX's security log), this long instead, jittered alike.
    auth_failure: float = 60.0
    rng: RandomSource = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` after ``attempt`` failures in a row."""
        base = min(self.cap, self.initial * self.factor ** min(max(attempt - 1, 0), 64))
        return base * (1.0 - self.jitter * self.rng.random())

    def auth_delay(self) -> float:
        """Seconds before trying again after a refusal (see :attr:`auth_failure`)."""
        return self.auth_failure * (1.0 - self.jitter * self.rng.random())
