"""The agi room (see docs/architecture.md)."""
