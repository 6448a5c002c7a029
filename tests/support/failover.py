"""Failover scenarios' common parts (issue 12): owner-capable nodes as separate processes
on one private Redis and one scratch PostgreSQL, a thread that samples who owns which PBX
(and the fencing tokens), a call burst on the real Asterisk, and the record checks.

No reactor: the store is read with its own connection, the PBX through the harness, the
nodes through ``/healthz``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cti_bridge.store import Store
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.dialer_support import DaemonProcess, config_data, free_port, wait_until

__all__ = [
    "OwnerSampler",
    "burst",
    "owner_nodes",
    "owns",
    "records_by_number",
    "wait_owner",
]


def owner_nodes(
    folder: Path,
    db_url: str,
    redis_url: str,
    pbxs: Mapping[str, AsteriskInstance],
    names: Sequence[str] = ("node-a", "node-b"),
    *,
    pbx_settings: Mapping[str, Any] | None = None,
) -> list[DaemonProcess]:
    """Owner-capable nodes (``role = "all"``, dialer off) on ``redis_url``, each with every
    PBX of ``pbxs`` as a ``[[pbx]]`` entry (not started); ``pbx_settings``: more keys of
    every ``[[pbx]]`` (e.g. ``cdr_url``)."""
    first = next(iter(pbxs.values()))
    nodes = []
    for name in names:
        config = config_data(db_url, first, node=name, web_port=free_port())
        template = config["pbx"][0]
        config["pbx"] = [
            {
                **template,
                "name": pbx_name,
                "host": pbx.ami_host,
                "port": pbx.ami_port,
                "username": pbx.username,
                "secret": pbx.secret,
                **(pbx_settings or {}),
            }
            for pbx_name, pbx in pbxs.items()
        ]
        config["bus"] = {"url": redis_url}
        config["node"]["role"] = "all"
        config["dialer"]["enabled"] = False
        nodes.append(DaemonProcess(folder, name, config))
    return nodes


def owns(node: DaemonProcess, pbx: str = "main") -> bool:
    return pbx in node.health().get("node", {}).get("owns", [])


def wait_owner(
    nodes: Sequence[DaemonProcess], pbx: str = "main", timeout: float = 20.0
) -> DaemonProcess:
    """The node that owns ``pbx`` (waiting until one does)."""

    def find() -> DaemonProcess | None:
        for node in nodes:
            if owns(node, pbx):
                return node
        return None

    return wait_until(find, timeout, f"a node owns {pbx}", every=0.1)


@dataclass
class OwnerSampler:
    """Which nodes own which PBX, from every node's ``/healthz`` every 0.2 s, and the
    PBXs' fencing tokens from the store, in a thread of its own for the whole scenario.

    A node that does not answer (SIGKILLed, SIGSTOPped, restarting) samples as owning
    nothing: it cannot act either while it does not run, and what it does once it runs
    again is sampled then."""

    nodes: Sequence[DaemonProcess]
    store: Store
    pbxs: Sequence[str] = ("main",)
    every: float = 0.2
    #: (monotonic time, {pbx: names of the nodes that say they own it})
    samples: list[tuple[float, dict[str, tuple[str, ...]]]] = field(default_factory=list)
    #: {pbx: every fencing token read, in order}
    fences: dict[str, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            healths = [(n.name, n.health()) for n in self.nodes]
            at = time.monotonic()
            sample = {
                pbx: tuple(name for name, h in healths if pbx in h.get("node", {}).get("owns", []))
                for pbx in self.pbxs
            }
            self.samples.append((at, sample))
            for pbx in self.pbxs:
                try:
                    token = self.store.fences.current_fence(pbx)
                except Exception:  # the database may be away on purpose
                    continue
                if token is not None:
                    self.fences.setdefault(pbx, []).append(token)
            self._stop.wait(self.every)

    def __enter__(self) -> OwnerSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def two_owners(self) -> list[tuple[float, str, tuple[str, ...]]]:
        """Samples where a PBX had more than one node saying it owned it."""
        return [
            (at, pbx, names)
            for at, sample in self.samples
            for pbx, names in sample.items()
            if len(names) > 1
        ]

    def fences_only_grew(self) -> bool:
        return all(a <= b for seq in self.fences.values() for a, b in itertools.pairwise(seq))

    def owners_after(self, since: float, pbx: str = "main") -> set[str]:
        return {name for at, s in self.samples if at >= since for name in s.get(pbx, ())}


def burst(
    pbx: AsteriskInstance,
    numbers: Iterable[str],
    *,
    gap: float = 0.7,
    hold: int = 8,
    at: int | None = None,
    action: Any = None,
) -> float | None:
    """Place a call per number, ``gap`` s apart; before the ``at``-th call (0-based) run
    ``action()`` and return the monotonic time it ran at."""
    acted: float | None = None
    for i, number in enumerate(numbers):
        if at is not None and i == at and action is not None:
            acted = time.monotonic()
            action()
        pbx.place_call("3200", number, "Klant", hold=hold)
        time.sleep(gap)
    return acted


def records_by_number(store: Store, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Every stored record per caller number (all of them, ended or not)."""
    return {n: store.queries.list_calls(number=n, limit=10) for n in numbers}


def all_recorded_once_and_ended(
    store: Store, numbers: Sequence[str]
) -> dict[str, list[dict[str, Any]]] | None:
    """The records when every number has exactly one and it is ended; else ``None``."""
    found = records_by_number(store, numbers)
    if all(len(r) == 1 and r[0]["ended_at"] for r in found.values()):
        return found
    return None
