"""Caller number normalisation: Belgian formats, shrunk numbers, withheld and hostile."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_bridge.store.numbers import caller_number, is_withheld, normalize_number


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+3250123456", "+3250123456"),  # trace 01
        ("050123456", "+3250123456"),  # trace 02: national
        ("0032470654321", "+32470654321"),  # trace 13: international prefix
        ("0470123456", "+32470123456"),
        ("0470 12 34 56", "+32470123456"),
        ("0470/12.34.56", "+32470123456"),
        ("+32 470 12-34-56", "+32470123456"),
        ("092300051", "+3292300051"),  # burst: Ghent landline
        ("+32092345678", "+3292345678"),  # trace 13: shrunk by Asterisk, trunk 0 kept
        ("+32 (0)9 234.56.78", "+3292345678"),  # the same before shrinking
        ("0032 0 9 234 56 78", "+3292345678"),
        ("+44 (0)20 7946 0958", "+442079460958"),  # foreign numbers keep their country
        ("+36012345678", "+3612345678"),  # a trunk 0 phonenumbers itself does not drop
        ("  +3250123456  ", "+3250123456"),
    ],
)
def test_belgian_and_international_formats(raw: str, e164: str) -> None:
    assert normalize_number(raw, "BE") == e164


def test_the_region_decides_what_a_national_number_means() -> None:
    assert normalize_number("020 7946 0958", "GB") == "+442079460958"
    assert normalize_number("020 7946 0958", "BE") is None
    assert normalize_number("0612345678", "NL") == "+31612345678"


@pytest.mark.parametrize(
    "raw",
    [
        "1001",  # an extension
        "3200",  # a DID as the PBX shows it
        "112",
        "+",
        "++32470123456",
        "+32+470123456",
        "0800-FLOWERS",  # no vanity letters: caller ID is text, not a keypad
        "'; DROP TABLE calls;--",
        "<script>alert(1)</script>",
        "+3250123456\r\nEvent: Hangup",
        "0470123456\x00",
        "9" * 300,
        "",
        "   ",
        "anonymous",
    ],
)
def test_what_is_not_a_phone_number(raw: str) -> None:
    assert normalize_number(raw, "BE") is None


@pytest.mark.parametrize(
    "raw", [None, "", "  ", "anonymous", "Anonymous", "<unknown>", "unknown", "Private"]
)
def test_withheld_values(raw: str | None) -> None:
    assert is_withheld(raw)
    number = caller_number(raw, "BE")
    assert number.withheld is True
    assert number.e164 is None
    assert number.raw == raw  # the raw value is kept for the record


def test_presentation_prohibited_hides_even_a_real_number() -> None:
    number = caller_number("+3250123456", "BE", withheld=True)
    assert (number.e164, number.raw, number.withheld) == (None, "+3250123456", True)


def test_a_number_that_does_not_parse_keeps_its_raw_text() -> None:
    number = caller_number("1001", "BE")
    assert (number.e164, number.raw, number.withheld) == (None, "1001", False)


@given(st.text(max_size=80))
def test_any_text_gives_e164_or_none(raw: str) -> None:
    result = normalize_number(raw, "BE")
    assert result is None or (result.startswith("+") and result[1:].isdigit())
    assert len(result or "") <= 16  # E.164: at most 15 digits


@given(st.from_regex(r"0[1-9][0-9]{7,8}", fullmatch=True))
def test_every_format_of_one_number_agrees(national: str) -> None:
    e164 = normalize_number(national, "BE")
    if e164 is None:
        return  # not an allocated Belgian range
    assert normalize_number("0032" + national[1:], "BE") == e164
    assert normalize_number("+32" + national[1:], "BE") == e164
    assert normalize_number("+32" + national, "BE") == e164  # shrunk
    assert normalize_number(" ".join(national), "BE") == e164
