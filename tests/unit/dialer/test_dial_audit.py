"""The harness's reading of the dialplan's dial audit (``database show`` output), which
the real-Asterisk dialer tests trust instead of cti-bridge's tables."""

from __future__ import annotations

from cti_bridge.testing.asterisk import DialAudit

RUNG = """\
/cti_rung/12/1/cti-callback-0a1b2c3d4e5f6a7b-2              : 1001
/cti_rung/12/2/cti-callback-99aa88bb77cc66dd-2              : 1001
/cti_rung/13/1/1796237845.11;2                              : 1002
/cti_rung/13/1/1796237845.19;2                              : 1002
4 results found.
"""
DIALLED = """\
/cti_dialled/12/1/cti-callback-0a1b2c3d4e5f6a7b             : 0478554433
/cti_dialled/13/1/1796237845.10                             : 0470123456
/agentsim/1001/ring                                         : 1
/cti_dialled/not-a-number/1/x                               : 0470123456
3 results found.
"""


def test_every_leg_is_one_entry_per_agreement_and_attempt() -> None:
    audit = DialAudit.parse(RUNG, DIALLED)
    assert audit.rung == {(12, 1): ("1001",), (12, 2): ("1001",), (13, 1): ("1002", "1002")}
    assert audit.dialled == {(12, 1): ("0478554433",), (13, 1): ("0470123456",)}
    assert audit.rung_for(13, 1) == ("1002", "1002")  # an attempt rung twice shows twice
    assert audit.dialled_for(12, 2) == ()
    assert audit.attempts_rung(12) == [1, 2]


def test_an_empty_audit() -> None:
    audit = DialAudit.parse("0 results found.\n", "0 results found.\n")
    assert (audit.rung, audit.dialled, audit.attempts_rung(1)) == ({}, {}, [])
