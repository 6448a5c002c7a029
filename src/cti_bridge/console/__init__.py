"""The console room (see docs/architecture.md)."""
