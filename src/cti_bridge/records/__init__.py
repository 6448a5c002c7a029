"""The records room (see docs/architecture.md)."""
