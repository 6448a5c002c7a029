"""Helpers shared by several test rooms (recorded traces and their facts, pop rigs)."""
