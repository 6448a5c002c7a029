"""The reconnect loop's table (``ami/machine.py``), on its own: no reactor, no socket."""

from __future__ import annotations

from typing import Any

import pytest

from cti_bridge.ami import machine as m
from cti_bridge.ami.client import AMIClient

STATES = (m.STOPPED, m.DISCONNECTED, m.CONNECTING, m.LOGGING_IN, m.RESYNCING, m.CONNECTED)


class Owner:
    """Records the outputs it is asked to run."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, tuple[Any, ...]]] = []
        self.states: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.outputs.append((name.removeprefix("_"), args))


def run(*inputs: tuple[Any, ...]) -> tuple[m.Machine, Owner]:
    owner = Owner()
    machine = m.Machine(owner, owner.states.append)
    for name, *args in inputs:
        machine.input(name, *args)
    return machine, owner


def test_every_output_is_a_method_of_the_client() -> None:
    names = {name for t in m.TRANSITIONS.values() for name in t.outputs}
    assert all(callable(getattr(AMIClient, f"_{name}", None)) for name in names)
    with pytest.raises(TypeError, match="lacks the outputs"):
        m.Machine(object(), lambda state: None)


def test_the_happy_path_and_a_reconnect() -> None:
    machine, owner = run(
        (m.START,),
        (m.CONNECTION_MADE, "proto"),
        (m.LOGGED_IN, "session"),
        (m.RESYNCED, "session", "snapshot"),
        (m.LOST, "session", "reset"),
        (m.RETRY_DUE,),
    )
    assert owner.states == [
        m.CONNECTING,
        m.LOGGING_IN,
        m.RESYNCING,
        m.CONNECTED,
        m.DISCONNECTED,
        m.CONNECTING,
    ]
    assert [name for name, _ in owner.outputs] == [
        "reset_attempts",
        "connect",
        "open_session",
        "logged_in",
        "go_live",
        "link_lost",
        "retry_later",
        "connect",
    ]
    assert ("go_live", ("session", "snapshot")) in owner.outputs, "outputs get the input's data"
    assert machine.state == m.CONNECTING


def test_a_refused_login_drops_and_waits_for_the_close() -> None:
    machine, owner = run((m.START,), (m.CONNECTION_MADE, "p"), (m.REFUSED, "s", "why"))
    assert machine.state == m.LOGGING_IN
    assert [name for name, _ in owner.outputs][-2:] == ["login_refused", "drop_session"]
    machine.input(m.LOST, "s", "closed")
    assert machine.state == m.DISCONNECTED


@pytest.mark.parametrize("state", STATES)
def test_stop_works_from_every_state(state: str) -> None:
    assert m.TRANSITIONS[state, m.STOP].to == m.STOPPED


def test_inputs_that_do_not_apply_are_ignored() -> None:
    machine, owner = run((m.START,), (m.START,), (m.STOP,), (m.RESYNCED, "s", "late"))
    assert machine.state == m.STOPPED
    assert [name for name, _ in owner.outputs] == [
        "reset_attempts",
        "connect",
        "cancel_retry",
        "fail_waiters",
        "cancel_connect",
    ]
    machine.input(m.CONNECT_FAILED, "cancelled")
    machine.input(m.LOGGED_IN, "s")
    assert machine.state == m.STOPPED and len(owner.outputs) == 5
