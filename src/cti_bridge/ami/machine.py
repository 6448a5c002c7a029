"""The AMI link's reconnect loop as one table of states, inputs and outputs (pure).

Twisted's ``ClientService`` keeps its loop in an ``automat`` machine; this is the same
idea as a plain table, because the loop here has steps ClientService does not (login,
boot, snapshot) and a refused login must be told apart from a refused connection::

             start              connection_made          logged_in            resynced
    stopped ──────▶ connecting ────────────────▶ logging_in ───────▶ resyncing ───────▶ connected
       ▲              │    ▲                          │                   │                 │
       │              │    │ retry_due                │ lost              │ lost            │ lost
       │  connect_    │    │                          ▼                   ▼                 ▼
       │  failed      └──▶ disconnected ◀─────────────┴───────────────────┴─────────────────┘
       │
       └── stop, from every state (logs off, cancels the retry timer; nothing reconnects)

    refused / setup_failed (logging_in, resyncing): note why, drop the link; its ``lost``
    then schedules the retry: the long delay after a refused login, the back-off else.

An input that does not apply in the current state is ignored (``start`` while running,
a late snapshot after ``stop``). The state changes before the outputs run, so an output
that feeds the machine again (a connection that fails at once) sees the new state.
Outputs are names; the machine's owner (``AMIClient``) implements each as a method
``_<name>``, called with the input's arguments. :class:`Machine` checks they all exist
when it is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "LOGGING_IN",
    "RESYNCING",
    "STOPPED",
    "TRANSITIONS",
    "Machine",
]

# -- states (the strings ``status()`` reports) -------------------------------------------
STOPPED = "stopped"
DISCONNECTED = "disconnected"  # waiting for the retry timer
CONNECTING = "connecting"
LOGGING_IN = "logging_in"
RESYNCING = "resyncing"  # logged in; waiting for FullyBooted and the snapshot
CONNECTED = "connected"

# -- inputs -------------------------------------------------------------------------------
START = "start"
STOP = "stop"
CONNECTION_MADE = "connection_made"  # (proto)
CONNECT_FAILED = "connect_failed"  # (failure)
LOGGED_IN = "logged_in"  # (session)
REFUSED = "refused"  # (session, failure): the PBX refused the login
SETUP_FAILED = "setup_failed"  # (session, failure): no boot, no snapshot, a crash
RESYNCED = "resynced"  # (session, snapshot): FullyBooted seen and the snapshot taken
LOST = "lost"  # (reason): the current connection is gone
RETRY_DUE = "retry_due"  # the back-off timer fired


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    outputs: tuple[str, ...]


def _table() -> dict[tuple[str, str], Transition]:
    t: dict[tuple[str, str], Transition] = {
        (STOPPED, START): Transition(CONNECTING, ("reset_attempts", "connect")),
        (DISCONNECTED, RETRY_DUE): Transition(CONNECTING, ("connect",)),
        (CONNECTING, CONNECT_FAILED): Transition(DISCONNECTED, ("connect_failed", "retry_later")),
        (CONNECTING, CONNECTION_MADE): Transition(LOGGING_IN, ("open_session",)),
        (STOPPED, CONNECTION_MADE): Transition(STOPPED, ("close_unwanted",)),
        (LOGGING_IN, LOGGED_IN): Transition(RESYNCING, ("logged_in",)),
        (LOGGING_IN, REFUSED): Transition(LOGGING_IN, ("login_refused", "drop_session")),
        (STOPPED, REFUSED): Transition(STOPPED, ("login_refused", "drop_session")),
        (RESYNCING, RESYNCED): Transition(CONNECTED, ("go_live",)),
        (STOPPED, LOST): Transition(STOPPED, ("finish_stopping",)),
    }
    for state in (LOGGING_IN, RESYNCING, STOPPED):
        # Also while stopped: the set-up of the link being closed reports why it ended.
        t[state, SETUP_FAILED] = Transition(state, ("setup_failed", "drop_session"))
    for state in (LOGGING_IN, RESYNCING, CONNECTED):
        t[state, LOST] = Transition(DISCONNECTED, ("link_lost", "retry_later"))
    for state in (STOPPED, DISCONNECTED, CONNECTING, LOGGING_IN, RESYNCING, CONNECTED):
        t[state, STOP] = Transition(STOPPED, ("cancel_retry", "fail_waiters", "cancel_connect"))
    return t


#: ``(state, input) -> Transition``; pairs not listed are ignored.
TRANSITIONS: Mapping[tuple[str, str], Transition] = _table()


class Machine:
    """Feeds inputs through :data:`TRANSITIONS` and calls the owner's outputs."""

    def __init__(self, owner: object, on_state: Callable[[str], None]) -> None:
        names = {name for t in TRANSITIONS.values() for name in t.outputs}
        missing = sorted(name for name in names if not callable(getattr(owner, f"_{name}", None)))
        if missing:
            raise TypeError(f"{type(owner).__name__} lacks the outputs {missing}")
        self._owner = owner
        self._on_state = on_state
        self.state = STOPPED

    def input(self, name: str, *args: Any) -> None:
        transition = TRANSITIONS.get((self.state, name))
        if transition is None:
            return
        if transition.to != self.state:
            self.state = transition.to
            self._on_state(transition.to)
        for output in transition.outputs:
            getattr(self._owner, f"_{output}")(*args)
