"""The queues room: the supervisors' view.

Today that is a supervisor's screen on the WebSocket (``screens.py``): it listens on the
``supervisors`` topic and may watch an operator's pops. The live queues and agents, the
KPIs, the wallboard and their pushes (a later issue) grow here, beside it.
"""

from .wiring import install

__all__ = ["install"]
