"""What a callback's Originate says, as tables: the channel, the number, the caller ID."""

from __future__ import annotations

import pytest

from cti_bridge.ami.parser import format_action
from cti_bridge.dialer.request import (
    CALLER_NAME_MAX,
    caller_id,
    caller_name,
    dial_number,
    operator_channel,
    originate_variables,
)


@pytest.mark.parametrize(
    ("device", "channel"),
    [
        ("Local/1001@agents", "Local/1001@agents/n"),
        ("Local/1001@agents/n", "Local/1001@agents/n"),
        ("PJSIP/1001", "PJSIP/1001"),
        ("SIP/anna", "SIP/anna"),
    ],
)
def test_local_devices_are_rung_without_optimisation(device: str, channel: str) -> None:
    assert operator_channel(device) == channel


@pytest.mark.parametrize(
    ("e164", "number_format", "region", "dialled"),
    [
        ("+32470123456", "national", "BE", "0470123456"),
        ("+3250123456", "national", "BE", "050123456"),
        ("+32470123456", "e164", "BE", "+32470123456"),
        ("+32470123456", "international", "BE", "0032470123456"),
        ("+33612345678", "national", "BE", "0033612345678"),  # abroad: as dialled from BE
        ("+33612345678", "national", "FR", "0612345678"),
        ("+32470123456", "international", "US", "01132470123456"),
    ],
)
def test_the_number_in_each_format(
    e164: str, number_format: str, region: str, dialled: str
) -> None:
    assert dial_number(e164, number_format, region) == dialled


@pytest.mark.parametrize("bad", ["", "not a number", "+"])
def test_a_number_that_is_none_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        dial_number(bad, "national", "BE")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Jan Peeters", "Jan Peeters"),
        ('Jan "de Baas" O\'Brien', "Jan de Baas O'Brien"),
        ("<script>alert(1)</script>", "scriptalert(1)/script"),
        ("Marie\r\nEvent: Hangup\r\nChannel: x", "Marie Event: Hangup Channel: x"),
        ("back\\slash\x00nul\x1bescape\u202eright-to-left", "backslash nul escape right-to-left"),
        ("Łódź \u2013 Ślęża ☎ 日本", "Łódź \u2013 Ślęża ☎ 日本"),
        ("   ", "Callback"),
        ('"<>"', "Callback"),
        (None, "Callback"),
        ("x" * 300, "x" * CALLER_NAME_MAX),
    ],
)
def test_the_customers_name_is_text_that_cannot_break_the_caller_id(
    name: str | None, shown: str
) -> None:
    assert caller_name(name) == shown
    header = caller_id(name, "0470123456")
    assert header == f'"{shown}" <0470123456>'
    format_action("Originate", {"CallerID": header})  # never a CR/LF to refuse


def test_the_variables_tie_the_call_to_its_attempt_and_drop_what_could_split() -> None:
    assert originate_variables(7, 2, "anna") == {
        "CTI_AGREEMENT_ID": "7",
        "CTI_ATTEMPT": "2",
        "CTI_OPERATOR": "anna",
    }
    assert "CTI_OPERATOR" not in originate_variables(7, 2, "anna,CTI_AGREEMENT_ID=1")
    assert "CTI_OPERATOR" not in originate_variables(7, 2, None)
