"""Caller numbers: E.164 where possible, the raw text always, withheld callers told apart.

A number is how a call finds its customer and its history, so one formatting rule must
hold everywhere: the trunk sends ``+3250123456``, ``050123456`` and ``0032 50 12 34 56``
for the same line, and all of them become ``+3250123456``. Asterisk's caller ID parser
also "shrinks" ``+32 (0)9 234.56.78`` to ``+32092345678``, keeping the national trunk
``0`` after the country code; that is not E.164 and is repaired here.

Caller ID is attacker text. Only digits, ``+`` and the usual separators are ever read as
a number (no vanity letters, nothing longer than a phone number); everything else stays
raw text that is stored and shown but never interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = ["CallerNumber", "caller_number", "is_withheld", "normalize_number"]

#: What trunks and Asterisk send instead of a number when the caller hides it.
WITHHELD_VALUES = frozenset(
    {
        "",
        "anonymous",
        "<anonymous>",
        "unknown",
        "<unknown>",
        "unavailable",
        "private",
        "restricted",
        "withheld",
        "prohibited",
        "presentation restricted",
    }
)

_NUMBERISH = re.compile(r"\+?[0-9 ()./\-]{2,40}")
_SEPARATORS = re.compile(r"[ ()./\-]")


@dataclass(frozen=True, slots=True)
class CallerNumber:
    e164: str | None  # None when withheld or not a phone number
    raw: str | None  # exactly what the PBX said, or None when it said nothing
    withheld: bool


def is_withheld(raw: str | None) -> bool:
    """True for an empty caller ID or one of the placeholders for a hidden number."""
    return raw is None or raw.strip().lower() in WITHHELD_VALUES


def normalize_number(raw: str | None, region: str = "BE") -> str | None:
    """``raw`` in E.164 (``+3250123456``), or None when it is not a valid phone number.

    National numbers are read in ``region`` (an ISO 3166 code such as ``BE``).
    """
    if raw is None:
        return None
    return _normalize(raw, region)


@lru_cache(maxsize=8192)  # every event of a call carries its number again; parsing is slow
def _normalize(raw: str, region: str) -> str | None:
    text = raw.strip()
    if not _NUMBERISH.fullmatch(text):
        return None
    compact = _SEPARATORS.sub("", text)
    if not compact.lstrip("+").isdigit():  # a lone "+" or a "+" in the middle
        return None
    number = _parse(compact, region)
    if number is not None and phonenumbers.is_valid_number(number):
        return _e164(number)
    repaired = _without_trunk_zero(compact, region)
    if repaired is not None:
        return repaired
    return None


def caller_number(raw: str | None, region: str = "BE", *, withheld: bool = False) -> CallerNumber:
    """Everything the store keeps about a caller's number.

    ``withheld`` is the call model's own judgement (e.g. presentation prohibited); a
    withheld caller never gets an E.164 number, even if the PBX leaked one.
    """
    hidden = withheld or is_withheld(raw)
    return CallerNumber(
        e164=None if hidden else normalize_number(raw, region),
        raw=raw,
        withheld=hidden,
    )


def _parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _without_trunk_zero(compact: str, region: str) -> str | None:
    """``+<cc>0<national>`` or ``00<cc>0<national>`` with the trunk ``0`` dropped, when
    that (and only that) makes a valid number. phonenumbers already does this for most
    regions; this covers the ones where it does not."""
    international = compact[1:] if compact.startswith("+") else None
    if international is None and compact.startswith("00"):
        international = compact[2:]
    if international is None:
        return None
    for length in (1, 2, 3):  # country codes have 1 to 3 digits
        code, rest = international[:length], international[length:]
        if code.startswith("0") or not rest.startswith("0"):
            continue
        if phonenumbers.region_code_for_country_code(int(code)) != phonenumbers.UNKNOWN_REGION:
            number = _parse(f"+{code}{rest[1:]}", region)
            if number is not None and phonenumbers.is_valid_number(number):
                return _e164(number)
    return None
