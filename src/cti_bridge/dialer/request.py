"""What a callback's ``Originate`` says, worked out from the agreement (pure).

The operator's device is rung first (``Channel``); once answered, the PBX runs
``[dialer] context`` with the customer's number as ``Exten``, so the number goes out in
the form that context dials (``number_format``). The operator's phone shows the
customer as the caller (``CallerID``): the customer's name is text from outside (typed
by an operator, imported from a CRM), so it is cut down to what a caller-ID name can
carry, and nothing that could end the quoted name or the header.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = [
    "CALLER_NAME_MAX",
    "DEFAULT_CALLER_NAME",
    "caller_id",
    "caller_name",
    "dial_number",
    "operator_channel",
    "originate_variables",
]

#: What the operator's phone shows when the customer has no name.
DEFAULT_CALLER_NAME = "Callback"
#: Caller-ID names longer than this are cut (phones show 20-40 characters).
CALLER_NAME_MAX = 40

#: Values that may go into an Originate ``Variable`` (Asterisk splits them on ``,``).
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
#: Characters that end a quoted name, open or close the number, or escape.
_NAME_BREAKERS = str.maketrans("", "", '"\\<>')


def operator_channel(device: str) -> str:
    """The channel to ring for a device: ``Local/<x>@<ctx>`` gets ``/n`` (no local
    optimisation, so the call keeps the ChannelId's channel), others are rung as they
    are (``PJSIP/1001``)."""
    if device.startswith("Local/") and not device.endswith("/n"):
        return f"{device}/n"
    return device


def dial_number(e164: str, number_format: str, region: str) -> str:
    """The customer's number as ``[dialer] context`` wants it, digits only (``+`` for
    ``e164``): ``e164`` ``+32470123456``; ``national`` ``0470123456`` (a number of
    another country than ``region``: as dialled from ``region``, ``0033…``);
    ``international`` as dialled from ``region`` to abroad, ``0032470123456``.
    ``ValueError`` for a number that is not one."""
    try:
        number = phonenumbers.parse(e164, region)
    except NumberParseException as exc:
        raise ValueError(f"{e164!r} is not a phone number: {exc}") from None
    if number_format == "e164":
        text = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        return "+" + _digits(text)
    if number_format == "national" and phonenumbers.region_code_for_number(number) == region:
        text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    elif number_format in ("national", "international"):
        national = phonenumbers.national_significant_number(number)
        text = f"{_international_prefix(region)}{number.country_code}{national}"
    else:
        raise ValueError(f"{number_format!r} is not a number format")
    digits = _digits(text)
    if not digits:
        raise ValueError(f"{e164!r} has no digits to dial")
    return digits


def _international_prefix(region: str) -> str:
    """What is dialled in ``region`` before a country code (``00`` in most of Europe)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is not None:
        for prefix in (metadata.preferred_international_prefix, metadata.international_prefix):
            if prefix and prefix.isdigit():
                return prefix
    return "00"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


def caller_name(name: str | None) -> str:
    """The customer's name fit for a caller-ID name: no control characters (CR/LF
    included), no quotes, backslashes or angle brackets, spaces collapsed, at most
    ``CALLER_NAME_MAX`` characters; ``DEFAULT_CALLER_NAME`` when nothing is left."""
    if not name:
        return DEFAULT_CALLER_NAME
    kept = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" else ch for ch in name.translate(_NAME_BREAKERS)
    )
    cleaned = " ".join(kept.split())[:CALLER_NAME_MAX].strip()
    return cleaned or DEFAULT_CALLER_NAME


def caller_id(name: str | None, number: str) -> str:
    """``"<name>" <number>``: what the operator's phone shows while it rings."""
    shown = "".join(ch for ch in number if ch in "+0123456789")
    return f'"{caller_name(name)}" <{shown}>'


def originate_variables(agreement_id: int, number: int, operator: str | None) -> Mapping[str, str]:
    """The channel variables that tie the call to its agreement and attempt (the call
    model records ``CTI_AGREEMENT_ID``; a restart finds the call by them). A value that
    could split into another variable is left out."""
    variables = {"CTI_AGREEMENT_ID": str(agreement_id), "CTI_ATTEMPT": str(number)}
    if operator is not None and _SAFE_VALUE.fullmatch(operator):
        variables["CTI_OPERATOR"] = operator
    return variables
