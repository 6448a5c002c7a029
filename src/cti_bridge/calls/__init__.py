"""Calls: the pure model that turns AMI events into calls and domain events."""

from cti_bridge.calls.devices import Topology, device_of_channel, device_of_interface
from cti_bridge.calls.model import CallModel

__all__ = ["CallModel", "Topology", "device_of_channel", "device_of_interface"]
