"""The queues room: the supervisors' view (queues, agents, KPIs; a later issue).

Today a supervisor's part is only in the WebSocket (``web/ws.py``): a supervisor's
socket also listens on the ``supervisors`` topic and may watch an operator's pops. That
is the socket's routing, which stays with the hub; ``install`` adds nothing yet.
"""

from .wiring import install

__all__ = ["install"]
