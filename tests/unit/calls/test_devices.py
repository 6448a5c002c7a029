"""Devices, topology and caller-ID decoding: the vocabulary of the call model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_bridge.calls import Topology, device_of_channel, device_of_interface
from cti_bridge.calls.callerid import is_withheld, unescape_c, withheld_by_presentation


@pytest.mark.parametrize(
    ("channel", "device"),
    [
        ("PJSIP/1001-0000001d", "PJSIP/1001"),
        ("PJSIP/pstn-0000001b", "PJSIP/pstn"),
        ("Local/1001@agents-000000a7;1", "Local/1001@agents"),
        ("Local/1001@agents-000000a7;2", "Local/1001@agents"),
        ("Local/hold14@sim-caller-000000a5;1", "Local/hold14@sim-caller"),
        ("Local/0470123456@pstn-out-000000be;1", "Local/0470123456@pstn-out"),
        ("PJSIP/my-trunk-0000001b", "PJSIP/my-trunk"),
        ("PJSIP/my-trunk", "PJSIP/my-trunk"),  # no Asterisk suffix: keep the dash
        ("PJSIP/pstn-out", "PJSIP/pstn-out"),
        ("SIP/1001-abc", "SIP/1001-abc"),  # too short to be the %08x counter
    ],
)
def test_device_of_channel(channel: str, device: str) -> None:
    assert device_of_channel(channel) == device


@pytest.mark.parametrize(
    ("interface", "device"),
    [
        ("Local/1001@agents/n", "Local/1001@agents"),
        ("Local/1001@agents", "Local/1001@agents"),
        ("PJSIP/1001", "PJSIP/1001"),
        ("Local/0478554433@pstn-out/n", "Local/0478554433@pstn-out"),
        ("PJSIP/0470123456@trunk", "PJSIP/0470123456@trunk"),
    ],
)
def test_device_of_interface(interface: str, device: str) -> None:
    assert device_of_interface(interface) == device


def test_member_interface_and_ringing_channel_name_the_same_device() -> None:
    assert device_of_interface("Local/1001@agents/n") == device_of_channel(
        "Local/1001@agents-000000a7;1"
    )
    assert device_of_interface("PJSIP/1001") == device_of_channel("PJSIP/1001-0000001d")


def test_default_topology_fits_the_traces() -> None:
    topology = Topology()
    assert topology.is_trunk("PJSIP/pstn")
    assert topology.is_trunk("Local/hold14@sim-caller")
    assert topology.is_trunk("Local/0470123456@pstn-out")
    assert not topology.is_trunk("PJSIP/1001")
    assert not topology.is_trunk("Local/1001@agents")
    assert topology.is_inbound_context("from-pstn")
    assert topology.is_inbound_context("from-pstn-sip")
    assert not topology.is_inbound_context("agents")
    assert topology.is_not_rung("Local/hold14@sim-caller")
    assert not topology.is_not_rung("Local/0470123456@pstn-out")


def test_topology_is_configurable_and_its_cache_bounded() -> None:
    topology = Topology(trunk_devices=("PJSIP/provider*",), inbound_contexts=("incoming",))
    assert topology.is_trunk("PJSIP/provider-a")
    assert not topology.is_trunk("PJSIP/pstn")
    assert topology.is_inbound_context("incoming")
    for n in range(10_000):
        topology.is_trunk(f"Local/{n}@pstn-out")
    assert len(topology._cache) <= 4096


@pytest.mark.parametrize(
    ("escaped", "raw"),
    [
        (
            'Jan \\"de Baas\\" O\\\'Brien & Zonen; <b>bv</b>',
            'Jan "de Baas" O\'Brien & Zonen; <b>bv</b>',
        ),
        ("Piet Fraude\\r\\nEvent: Hangup", "Piet Fraude\r\nEvent: Hangup"),
        ("back\\\\slash", "back\\slash"),
        ("tab\\tend", "tab\tend"),
        ("unknown \\q escape", "unknown \\q escape"),
        ("trailing \\", "trailing \\"),
        ("Zoë Müller", "Zoë Müller"),
    ],
)
def test_unescape_c(escaped: str, raw: str) -> None:
    assert unescape_c(escaped) == raw


def escape_c(text: str) -> str:
    """What Asterisk's ast_escape_c does (for the round-trip property)."""
    table = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
    return "".join(table.get(ch, ch) for ch in text)


@given(st.text())
def test_unescape_inverts_asterisk_escaping(text: str) -> None:
    assert unescape_c(escape_c(text)) == text


@pytest.mark.parametrize(
    ("pres", "withheld"),
    [
        ("0 (Presentation Allowed, Not Screened)", False),
        ("35 (Presentation Prohibited, Network Number)", True),
        ("67 (Number Unavailable)", True),
        ("1 (Presentation Allowed, Passed Screen)", False),
        ("prohib", True),
    ],
)
def test_withheld_by_presentation(pres: str, withheld: bool) -> None:
    assert withheld_by_presentation(pres) is withheld


@pytest.mark.parametrize(
    ("number", "withheld"),
    [
        ("anonymous", True),
        ("Anonymous", True),
        ("<unknown>", True),
        ("unknown", True),
        ("", True),
        (None, True),
        ("0470123456", False),
        ("+3250123456", False),
    ],
)
def test_is_withheld(number: str | None, withheld: bool) -> None:
    assert is_withheld(number) is withheld
