"""cti-bridge: computer-telephony middleware for technical helpdesks on Asterisk."""

__version__ = "0.1.0.dev0"
