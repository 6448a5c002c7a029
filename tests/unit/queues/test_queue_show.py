"""``tests/support/asterisk_queues.parse_queue_show`` on Asterisk 22's own words (copied
from the harness's PBX): the browser test compares the wallboard with them, so the
parser must read them right and refuse what it does not know."""

from __future__ import annotations

import pytest

from tests.support.asterisk_queues import parse_queue_show

IDLE = (
    "\n".join(
        (
            "support has 0 calls (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), W:0, C:0, A:0, SL:0.0%, SL2:0.0% within 20s",  # noqa: E501
            "   Members: ",
            "      Anna (Local/1001@agents/n from Local/1001@agents) (ringinuse disabled) (Not in use) has taken no calls yet (login was 0 secs ago)",  # noqa: E501
            "      Bart (Local/1002@agents/n from Local/1002@agents) (ringinuse disabled) (Not in use) has taken no calls yet (login was 0 secs ago)",  # noqa: E501
            "   No Callers",
        )
    )
    + "\n\n"
)

WAITING = (
    "\n".join(
        (
            "support has 1 calls (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), W:0, C:0, A:0, SL:0.0%, SL2:0.0% within 20s",  # noqa: E501
            "   Members: ",
            "      Anna (Local/1001@agents/n from Local/1001@agents) (ringinuse disabled) (paused:lunch was 1 secs ago) (Not in use) has taken no calls yet (login was 1 secs ago)",  # noqa: E501
            "      Bart (Local/1002@agents/n from Local/1002@agents) (ringinuse disabled) (in call) (In use) has taken 1 calls (last was 75 secs ago) (login was 80 secs ago)",  # noqa: E501
            "   Callers: ",
            "      1. Local/hold120@sim-caller-00000000;1 (wait: 1:07, prio: 0)",
        )
    )
    + "\n\n"
)


def test_an_idle_queue() -> None:
    shown = parse_queue_show(IDLE)
    assert (shown.name, shown.calls, shown.callers) == ("support", 0, [])
    assert shown.members == {
        "Local/1001@agents/n": ("available", None),
        "Local/1002@agents/n": ("available", None),
    }
    assert shown.count("available") == 2


def test_a_caller_waiting_a_member_paused_and_one_in_a_call() -> None:
    shown = parse_queue_show(WAITING)
    assert shown.calls == 1
    assert shown.callers == [(1, "Local/hold120@sim-caller-00000000;1", 67)]
    assert shown.members == {
        "Local/1001@agents/n": ("paused", "lunch"),
        "Local/1002@agents/n": ("on_call", None),
    }


@pytest.mark.parametrize(
    "text",
    [
        "No such queue: 'nope'\n",
        WAITING.replace("   Callers: \n", ""),  # a caller line under the members
        WAITING.replace("support has 1 calls", "support has 2 calls"),  # count disagrees
    ],
)
def test_what_it_does_not_understand_fails(text: str) -> None:
    with pytest.raises(AssertionError):
        parse_queue_show(text)
