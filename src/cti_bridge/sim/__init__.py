"""The demo PBX: an AMI server on loopback that plays realistic helpdesk traffic.

See ``docs/simulator.md``. The parts, one concern each: ``pbx`` (channels, bridges,
devices and the events they emit), ``queues`` (app_queue), ``dialplan`` (inbound
calls, ``Dial()``, conversations), ``transfers``, ``originate``, ``phones`` (how the
far ends answer), ``scenarios`` (one function per call flow), ``traffic`` (the random
day), ``reports`` (list actions and CLI output), ``server`` (the AMI protocol) and
``harness`` (driving it from tests without a network).
"""

from .dialplan import Callee, CallPlan, TransferPlan
from .phones import Reply
from .queues import QueueConfig
from .scenarios import SCENARIOS
from .simulator import (
    CALLBACK_NUMBERS,
    DEFAULT_CUSTOMERS,
    DEFAULT_OPERATORS,
    PlacedCall,
    SimulatedPBX,
)

__all__ = [
    "CALLBACK_NUMBERS",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_OPERATORS",
    "SCENARIOS",
    "CallPlan",
    "Callee",
    "PlacedCall",
    "QueueConfig",
    "Reply",
    "SimulatedPBX",
    "TransferPlan",
]
