"""The callback dialer: a due callback agreement rings its operator, then the customer.

``policy`` decides, purely, when the next attempt of an agreement may be dialled and who
may be rung for it (calling hours and holidays in the customer's time zone, the
customer's window, retry intervals, maximum attempts, owner first); ``attempt`` follows
one attempt from its claim to its outcome (a table of states and inputs; pure);
``request`` is what its ``Originate`` says (pure); ``ports`` what the dialer needs of
the store and of the queues room; ``service`` runs it all on the reactor; ``wiring``
(``install``) puts it on the node when ``[dialer] enabled``. See docs/dialer.md.
"""

from .wiring import install

__all__ = ["install"]
