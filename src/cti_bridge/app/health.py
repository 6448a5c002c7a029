"""``/healthz``: the sections the node and its features registered, read when asked.

A section is a callable returning a dict with a ``status`` (``"ok"`` or ``"degraded"``);
the node is ok when every section that counts is. A feature may also add a detail to
another's section (the record writer under ``database``): the detail shows there, and a
detail that is not ok makes that section degraded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Health", "Part"]

Part = Callable[[], dict[str, Any]]


@dataclass(slots=True)
class _Section:
    read: Part
    counts: bool
    details: list[tuple[str, Part]] = field(default_factory=list)


class Health:
    def __init__(self) -> None:
        self._sections: dict[str, _Section] = {}

    def add(self, name: str, read: Part, *, counts: bool = True) -> None:
        """A section of its own; ``counts=False``: shown, but never makes the node
        degraded (figures such as the screens' sockets or the pops)."""
        if name in self._sections:
            raise ValueError(f"health section {name!r} is taken")
        self._sections[name] = _Section(read, counts)

    def add_detail(self, section: str, name: str, read: Part) -> None:
        """``read()`` shown as ``section.name``; its ``status`` counts for the section."""
        self._sections[section].details.append((name, read))

    def section(self, name: str) -> dict[str, Any]:
        entry = self._sections[name]
        part = entry.read()
        if entry.details:
            part = dict(part)
            for detail, read in entry.details:
                value = read()
                part[detail] = value
                if value.get("status") != "ok":
                    part["status"] = "degraded"
        return part

    def report(self) -> dict[str, Any]:
        parts = {name: self.section(name) for name in self._sections}
        overall = all(
            parts[name]["status"] == "ok" for name, entry in self._sections.items() if entry.counts
        )
        return {"status": "ok" if overall else "degraded", **parts}
