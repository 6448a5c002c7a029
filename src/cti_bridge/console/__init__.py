"""The console room: what the operator console asks besides the pops (docs/console.md).

Call history and annotations, customer search and view, agreements made from the
console: ``rules`` (who may change what, what a request holds; pure), ``customers``
(the searches, blocking), ``service`` (the store work in the node's pool), ``http``
(the endpoints), ``wiring`` (``install``).
"""

from .wiring import install

__all__ = ["install"]
