"""The handler groups: what each declares is what it handles; the model's table is their union."""

from __future__ import annotations

import inspect

import pytest

from cti_bridge.calls import CallModel, Topology
from cti_bridge.calls import handlers as handlers_module
from cti_bridge.calls.handlers import (
    CONSUMED_EVENTS,
    CONSUMED_VARIABLES,
    GROUPS,
    HandlerGroup,
    dispatch_table,
    split_variables,
)
from cti_bridge.calls.handlers.variables import VariableRouter
from cti_bridge.calls.live import LiveCalls, Msg, Out
from cti_bridge.calls.model import CONSUMED_EVENTS as MODEL_EVENTS
from cti_bridge.calls.model import CONSUMED_VARIABLES as MODEL_VARIABLES
from cti_bridge.calls.state import ChannelState


def state() -> LiveCalls:
    return LiveCalls("main", Topology())


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_each_group_handles_exactly_what_it_declares(group: type[HandlerGroup]) -> None:
    instance = group(state())
    assert set(instance.handlers()) == group.events
    assert set(instance.variable_handlers()) == group.variables
    assert "VarSet" not in group.events  # VarSet is routed by variable, see below
    for handler in [*instance.handlers().values(), *instance.variable_handlers().values()]:
        assert getattr(handler, "__self__", None) is instance  # a bound method


def test_groups_are_disjoint() -> None:
    for i, first in enumerate(GROUPS):
        for second in GROUPS[i + 1 :]:
            assert not first.events & second.events, (first, second)
            assert not first.variables & second.variables, (first, second)


def test_consumed_events_and_variables_are_the_union_of_the_groups() -> None:
    events = frozenset().union(*(g.events for g in GROUPS))
    variables = frozenset().union(*(g.variables for g in GROUPS))
    assert variables == CONSUMED_VARIABLES == MODEL_VARIABLES
    assert events | {"VarSet"} == CONSUMED_EVENTS == MODEL_EVENTS
    assert {"QUEUESTATUS", "CTI_*"} == CONSUMED_VARIABLES  # what the AMI filter is told
    assert CallModel.consumed_events == CONSUMED_EVENTS


def test_every_consumed_event_has_a_handler_and_every_handler_is_consumed() -> None:
    model = CallModel("main")
    assert set(model._handlers) == CONSUMED_EVENTS
    assert set(dispatch_table(state())) == CONSUMED_EVENTS
    assert all(inspect.ismethod(h) for h in model._handlers.values())  # no wrappers


def test_the_dispatch_table_is_built_once_on_the_models_state() -> None:
    model = CallModel("main")
    table = model._handlers
    handlers = dict(table)
    model.feed({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "X"}, 1)
    model.feed({"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "X"}, 2)
    assert model._handlers is table and model._handlers == handlers
    owners = [getattr(h, "__self__", None) for h in table.values()]
    assert all(getattr(owner, "state", None) is model.state for owner in owners)


def test_two_groups_claiming_one_event_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Again(HandlerGroup):
        events = frozenset({"Hangup"})

        def handlers(self) -> dict[str, handlers_module.Handler]:
            return {"Hangup": self.on_hangup}

        def on_hangup(self, msg: Msg, rx: float, out: Out) -> None:
            pass

    monkeypatch.setattr(handlers_module, "GROUPS", (*GROUPS, Again))
    with pytest.raises(ValueError, match="Again"):
        dispatch_table(state())


def test_split_variables() -> None:
    assert split_variables({"QUEUESTATUS", "CTI_*", "B_*"}) == (
        frozenset({"QUEUESTATUS"}),
        ("B_", "CTI_"),
    )
    assert split_variables(()) == (frozenset(), ())


def test_the_variable_router_needs_a_known_channel_then_routes_by_name_or_prefix() -> None:
    live = state()
    call = live.new_call("1.1", 0.0, pbx_clock=False, complete=True)
    live.register_channel(call, "1.1", "PJSIP/1001-00000001", {}, origin=True)
    seen: list[tuple[str, str]] = []

    def exact(channel: ChannelState, msg: Msg, rx: float, out: Out) -> None:
        seen.append(("exact", msg["Variable"]))

    def prefixed(channel: ChannelState, msg: Msg, rx: float, out: Out) -> None:
        seen.append(("prefix", msg["Variable"]))

    router = VariableRouter(live, {"QUEUESTATUS": exact, "CTI_*": prefixed})
    ids = {"Uniqueid": "1.1", "Channel": "PJSIP/1001-00000001", "Linkedid": "1.1"}
    for variable in ("QUEUESTATUS", "CTI_AGREEMENT_ID", "CTI_", "OTHER", "QUEUESTATUS2"):
        router.on_varset({"Event": "VarSet", **ids, "Variable": variable}, 1.0, [])
    router.on_varset({**ids, "Linkedid": "2.2", "Variable": "QUEUESTATUS"}, 1.0, [])
    router.on_varset({**ids, "Uniqueid": "9.9", "Variable": "QUEUESTATUS"}, 1.0, [])
    assert seen == [("exact", "QUEUESTATUS"), ("prefix", "CTI_AGREEMENT_ID"), ("prefix", "CTI_")]
    assert live.rejected_events == 1  # the contradiction; the unknown channel is not ours
